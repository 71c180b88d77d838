"""Every Start runs (issue 16): the launch path as people use it. The app here is started exactly as
`make run` starts it (studio.ui.serve: concurrency 4, the standby worker and the scheduler on), and Start
comes at the three ordinary moments that used to lose runs: the moment the app answers, the moment a run
ends, and a queue whose first run is stopped."""
import json
import os
import signal
import socket
import threading
import time

import pytest
from conftest import launch_app, stop_everything, wait_for

from studio import runs
from studio.config import RunConfig

pytestmark = pytest.mark.slow


def live_workers() -> list[str]:
    return [p.name for p in runs.runs_root().iterdir() if p.is_dir() and runs.worker_alive(p)]


class Watch:
    """Samples how many workers are alive, all through a test: never two."""

    def __init__(self):
        self.seen, self.done = [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.done.wait(0.05):
            self.seen.append(len(live_workers()))

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return max(self.seen or [0])


@pytest.fixture(scope="module")
def app():
    stop_everything()
    started = launch_app()
    yield started
    started.close()
    stop_everything()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client
    return Client(app.local_url, verbose=False)


def bundled(client, steps: int = 3) -> str:
    return client.predict(recipe="bundled", api_name="/default_config").replace("max_steps: 150",
                                                                                 f"max_steps: {steps}")


def completed(run_id: str, timeout: float = 240) -> dict:
    status = wait_for(runs.runs_root() / run_id, timeout=timeout)
    assert status["state"] == "completed", (status, runs.log_tail(runs.runs_root() / run_id))
    return status


def test_start_the_moment_the_app_answers(client):
    assert not runs.STANDBY.ready()  # the standby is still importing: the moment that lost 4 runs of 4
    run = client.predict(config_yaml=bundled(client), api_name="/start_training")
    assert run["state"] == "starting"
    status = completed(run["run_id"])
    worker = next(p["seconds"] for p in status["phases"] if p["phase"] == "worker")
    assert worker > 0.5  # the wait for the standby's imports is the run's first phase, not hidden


def test_start_again_the_moment_a_run_ends(client):
    first = client.predict(config_yaml=bundled(client), api_name="/start_training")
    completed(first["run_id"])
    second = client.predict(config_yaml=bundled(client), api_name="/start_training")  # at once
    assert not runs.STANDBY.ready()  # the next standby had only just started: the window of 3 lost of 3
    completed(second["run_id"])


def test_a_queue_from_three_people_at_once_all_runs_and_stopping_the_first_starts_the_next(client, app):
    from gradio_client import Client
    clients = [client] + [Client(app.local_url, verbose=False) for _ in range(2)]
    config = bundled(client)
    started: list[dict] = []
    lock, go = threading.Lock(), threading.Event()

    def starter(c):
        go.wait()
        for _ in range(2):
            status = c.predict(config_yaml=config, api_name="/start_training")
            with lock:
                started.append(status)

    watch = Watch()
    threads = [threading.Thread(target=starter, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join()
    assert len(started) == 6 and sum(s["state"] == "queued" for s in started) >= 5
    live = next(s["run_id"] for s in started if s["state"] != "queued")
    client.predict(run_id=live, api_name="/stop_training")  # the one on the machine, still starting
    results = {s["run_id"]: wait_for(runs.runs_root() / s["run_id"], timeout=300) for s in started}
    assert watch.stop() == 1  # never two workers
    assert results.pop(live)["state"] == "stopped"
    assert [r["state"] for r in results.values()] == ["completed"] * 5, results
    assert not runs.queued()


def test_a_standby_that_dies_before_it_takes_the_run_hands_it_to_a_fresh_worker(app):
    stop_everything()
    runs.SCHEDULER.start()  # stop_everything stopped the app's scheduler; the app is still up
    deadline = time.time() + 60
    while runs.STANDBY.proc is None and time.time() < deadline:
        time.sleep(0.1)
    standby = runs.STANDBY.proc.pid
    cfg = RunConfig(run_name="orphaned-hand-over")
    cfg.train.max_steps = 2
    run_dir = runs.create_run(cfg)
    assert runs.launch(run_dir) == standby
    os.kill(standby, signal.SIGKILL)  # before it could answer "A"
    status = wait_for(run_dir, timeout=240)
    assert status["state"] == "completed" and status["pid"] != standby, runs.log_tail(run_dir)


def test_a_launch_that_fails_says_why_and_the_queue_goes_on(app):
    stop_everything()
    broken = runs.create_run(RunConfig(run_name="broken-after-queueing"))
    fine_cfg = RunConfig(run_name="behind-the-broken-one")
    fine_cfg.train.max_steps = 2
    fine = runs.create_run(fine_cfg)
    runs.enqueue(broken)
    runs.enqueue(fine)
    (broken / "config.yaml").write_text("train:\n  max_steps: ture\n")  # edited by hand while it waited
    assert runs.dispatch() == broken.name
    status = runs.view(broken)
    assert status["state"] == "failed" and status["error_code"] == "err_launch"
    assert "max_steps" in status["error"] and status["hint"] == "launch"
    from conftest import EN
    from studio.ui import run_view
    assert "could not be launched" in run_view.error_text(status, EN) and "memory" not in run_view.error_text(
        status, EN)
    assert runs.dispatch() == fine.name
    assert wait_for(fine, timeout=240)["state"] == "completed"


# ---------------------------------------------------------------- Stop, in every phase

def never_answering_server() -> tuple[socket.socket, str]:
    """A 'Hub' that accepts connections and never answers: a download or a dataset read that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(64)], daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def big_file(tmp_path, rows: int = 60_000):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "word " * 60},
                                    {"role": "assistant", "content": "answer " * 60}]})
    path.write_text((line + "\n") * rows)
    return path


def stop_in(run_dir, phase: str, env: dict | None = None, timeout: float = 120) -> tuple[dict, float]:
    """Launch, wait until the worker is in `phase`, ask it to stop; (final status, seconds to stop)."""
    runs.launch(run_dir, env=env)
    deadline = time.time() + timeout
    while runs.view(run_dir).get("phase") != phase:
        assert time.time() < deadline and runs.view(run_dir)["state"] in ("starting", "created"), runs.view(run_dir)
        time.sleep(0.05)
    time.sleep(0.3)  # well inside it
    asked = time.time()
    runs.request_stop(run_dir)
    while runs.worker_alive(run_dir):
        assert time.time() - asked < 10, runs.view(run_dir)
        time.sleep(0.02)
    return runs.view(run_dir), time.time() - asked


def test_stop_is_honoured_within_2_s_in_every_phase_before_the_first_step(app, tmp_path, monkeypatch):
    stop_everything()
    runs.STANDBY.stop()  # fresh workers: each run's phases from the start (the standby is tested above)
    server, endpoint = never_answering_server()
    def hub(name):  # each its own Hub cache: one case's interrupted download is not the next one's business
        return {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / name),  # online (unsloth set the others)
                "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    cases = []
    cfg = RunConfig(run_name="stop-in-worker")
    cases.append(("worker", cfg, None))  # the imports
    cfg = RunConfig(run_name="stop-in-download")
    cfg.model.name = "someone/some-model"
    cases.append(("model_download", cfg, hub("hub-model")))
    cfg = RunConfig(run_name="stop-in-model-load")  # the tiny model loads in 0.1 s: this one takes a minute
    cases.append(("model_load", cfg, {"STUDIO_FAULT_SLOW_PHASE": "model_load"}))
    cfg = RunConfig(run_name="stop-in-dataset")
    cfg.data.source, cfg.data.path = "hub", "someone/some-dataset"
    cases.append(("data", cfg, hub("hub-data")))
    cfg = RunConfig(run_name="stop-in-prepare")
    cfg.data.source, cfg.data.path, cfg.train.max_steps = "file", str(big_file(tmp_path)), 0
    cases.append(("prepare", cfg, None))
    took = {}
    try:
        for phase, cfg, env in cases:
            run_dir = runs.create_run(cfg)
            status, seconds = stop_in(run_dir, phase, env)
            took[phase] = round(seconds, 2)
            assert status["state"] == "stopped" and status["stopped_in"] == phase, (status, runs.log_tail(run_dir, 60))
            assert not list(run_dir.glob("adapter")), "nothing was trained, nothing is saved"
    finally:
        server.close()
    print("seconds from Stop to the worker's end, by phase:", took)
    assert max(took.values()) < 2.0, took
