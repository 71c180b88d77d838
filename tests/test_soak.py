"""The soak of the launch path (bench/soak.py) for a short while: several clients Start, Stop, Resume, cancel
and reload at once while workers are killed and the app restarts; every invariant holds (issue 16).
`bench/soak.py --minutes 10` runs the same for longer."""
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_a_short_soak_keeps_every_invariant(capsys):
    sys.path.insert(0, str(REPO / "bench"))
    import soak
    code = soak.Soak(minutes=1.0, clients=3, seed=7).run()
    out = capsys.readouterr().out
    assert code == 0, out
    assert '"runs_started": 0' not in out, out
