from pathlib import Path

import studio

REPO = Path(__file__).resolve().parent.parent


def test_our_studio_package_wins_over_unsloths():
    # The unsloth wheel installs its own top-level `studio`; importing it instead would break everything.
    assert Path(studio.__file__).resolve().is_relative_to(REPO)
