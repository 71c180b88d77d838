"""Shared test set-up: offline Hub, a private runs/ folder, and our `studio` package first on the path."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the unsloth wheel ships a package named `studio` too: ours must win
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    os.environ["STUDIO_RUNS_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def launch_app():
    """The studio as `make run` builds it, on a free port, in this process (close it with .close())."""
    from studio.ui import build_app, launch_kwargs
    demo = build_app()
    kwargs = launch_kwargs()
    kwargs.update(server_port=None, prevent_thread_lock=True, quiet=True)
    demo.queue().launch(**kwargs)
    return demo


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model or takes more than 5 s")
