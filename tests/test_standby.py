"""The warm worker: the app keeps a worker with its imports done and hands it the next run (studio/runs.py)."""
import time

import pytest
from conftest import launch_app, wait_for

from studio import runs

pytestmark = pytest.mark.slow


def test_start_is_taken_by_the_standby_worker(monkeypatch):
    from gradio_client import Client
    monkeypatch.setenv("STUDIO_STANDBY", "1")
    demo = launch_app()
    try:
        deadline = time.time() + 120
        while not runs.STANDBY.ready() and time.time() < deadline:
            time.sleep(0.2)
        assert runs.STANDBY.ready()
        waiting = runs.STANDBY.proc.pid
        client = Client(demo.local_url, verbose=False)
        config = client.predict(recipe="bundled", api_name="/default_config").replace("max_steps: 150",
                                                                                       "max_steps: 3")
        run = client.predict(config_yaml=config, api_name="/start_training")
        assert runs.STANDBY.proc is None  # the next one waits for this run to end: no imports beside its steps
        status = wait_for(runs.runs_root() / run["run_id"], timeout=180)
        assert status["state"] == "completed", runs.log_tail(runs.runs_root() / run["run_id"])
        assert status["pid"] == waiting  # the waiting process ran it
        worker_start = next(p["seconds"] for p in status["phases"] if p["phase"] == "worker")
        assert worker_start < 1.0  # its imports were done before Start
        deadline = time.time() + 120  # and once it has ended, the next run's standby
        while not runs.STANDBY.ready() and time.time() < deadline:
            time.sleep(0.2)
        assert runs.STANDBY.ready() and runs.STANDBY.proc.pid != waiting
    finally:
        demo.close()
        runs.STANDBY.stop()
