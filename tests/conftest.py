"""Shared test set-up: offline Hub, a private runs/ folder, and our `studio` package first on the path."""
import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the unsloth wheel ships a package named `studio` too: ours must win
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ARTIFACTS = REPO / "test-artifacts"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains a model, drives a browser or starts the app (the fast lane "
                                       "is `pytest -m 'not slow'`)")


@pytest.fixture(scope="session", autouse=True)
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    os.environ["STUDIO_RUNS_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class App:
    """The studio started as `make run` starts it (studio.ui.serve: the same queue concurrency, standby worker
    and scheduler), on a free port, in this process. close() is what the app's own exit does."""

    def __init__(self):
        from studio.ui import build_app, serve
        self.demo = build_app()
        serve(self.demo, server_port=None, prevent_thread_lock=True, quiet=True)
        self.local_url = self.demo.local_url

    def close(self):
        from studio import runs
        self.demo.close()
        runs.shutdown()


def launch_app() -> App:
    return App()


def start_run(cfg, owner="local", env=None):
    """Create a run and launch its worker, as Start does when the machine is free."""
    from studio import runs
    run_dir = runs.create_run(cfg, owner=owner)
    runs.launch(run_dir, env=env)
    return run_dir


def wait_for(run_dir, states=None, timeout=300, step=None):
    """Poll the run's view until it reaches one of `states` (default: any final state) or `step`."""
    from studio import runs
    states = states or runs.FINAL_STATES
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = runs.view(run_dir)
        if step is not None and status.get("step", 0) >= step:
            return status
        if status.get("state") in states:
            while status.get("state") in runs.FINAL_STATES and runs.worker_alive(run_dir) and time.time() < deadline:
                time.sleep(0.1)  # the worker has written its end and is exiting
            return status
        time.sleep(0.3)
    raise AssertionError(f"run did not reach {states} in {timeout}s: {runs.view(run_dir)}\n"
                         f"{runs.log_tail(run_dir, 40)}")


def stop_everything() -> None:
    """No worker alive, nothing queued, no scheduler of an earlier test's app: the machine is this test's."""
    from studio import runs
    runs.SCHEDULER.stop()
    if runs.SCHEDULER.thread is not None:
        runs.SCHEDULER.thread.join(timeout=5)
    for entry in runs.queued():
        runs.cancel(entry["run"])
    live = [p for p in runs.runs_root().iterdir() if p.is_dir() and runs.worker_alive(p)]
    for run_dir in live:
        runs.kill(run_dir)
    deadline = time.time() + 20
    while any(runs.worker_alive(p) for p in live) and time.time() < deadline:
        time.sleep(0.2)


@pytest.fixture()
def machine_free():
    stop_everything()
    yield
    stop_everything()


class BrowserRequest:
    """What the handlers read of a gr.Request: the browser's language (Accept-Language)."""

    def __init__(self, accept_language: str):
        self.headers = {"accept-language": accept_language}


KO, EN = BrowserRequest("ko-KR,ko"), BrowserRequest("en-US,en;q=0.9")


def tree(root: Path) -> set[str]:
    """Every path under root: a refused action must leave it as it was."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
