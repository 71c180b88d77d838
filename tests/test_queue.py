"""The queue (studio/runs/queue.py): a token that survives a busy machine and goes with a cancel, an app
restart that keeps the queue and asks for the token again, and entries an app left behind."""
import os
import time

import pytest
from conftest import stop_everything, wait_for

from studio import jobs, runs
from studio.auth import LOCAL
from studio.config import RunConfig
from studio.runs import folder
from studio.runs import queue as run_queue  # the module (studio.runs.queued is the list)

SECRET = "hf_QUEUEDtokenNeverWritten0123456789"


def make_run(name: str, steps: int = 2):
    cfg = RunConfig(run_name=name)
    cfg.train.max_steps = steps
    return runs.create_run(cfg)


class HeldMachine:
    """The machine's lock, held as a training worker holds it."""

    def __enter__(self):
        self.fd = folder.take_locks(runs.create_run(RunConfig(run_name="holder")))
        return self

    def __exit__(self, *exc):
        for fd in self.fd:
            os.close(fd)


def worker_environ(run_dir) -> dict:
    import psutil
    pid = runs.view(run_dir).get("pid")
    deadline = time.time() + 60
    while not pid and time.time() < deadline:
        time.sleep(0.1)
        pid = runs.view(run_dir).get("pid")
    return psutil.Process(int(pid)).environ()


@pytest.mark.slow
def test_a_queued_token_survives_a_busy_machine_and_reaches_the_worker(machine_free):
    run_dir = make_run("with-token", steps=400)
    with HeldMachine():
        runs.enqueue(run_dir, token=SECRET)
        assert runs.dispatch() is None  # busy: nothing launched, nothing forgotten
        assert runs.view(run_dir)["state"] == "queued" and run_queue.secrets[run_dir.name] == {"HF_TOKEN": SECRET}
    assert runs.dispatch() == run_dir.name
    assert worker_environ(run_dir).get("HF_TOKEN") == SECRET
    assert run_dir.name not in run_queue.secrets  # handed to its worker, gone from the app's memory
    assert all(SECRET.encode() not in p.read_bytes() for p in runs.runs_root().rglob("*") if p.is_file())


def test_cancel_drops_the_token(machine_free):
    run_dir = make_run("cancelled-with-token")
    with HeldMachine():
        runs.enqueue(run_dir, token=SECRET)
        assert runs.cancel(run_dir.name)
    assert run_dir.name not in run_queue.secrets and runs.view(run_dir)["state"] == "cancelled"


@pytest.mark.slow
def test_after_a_restart_a_run_that_needs_its_token_waits_and_the_others_go_first(machine_free):
    needs = make_run("needs-token")
    other = make_run("no-token-needed")
    with HeldMachine():
        runs.enqueue(needs, token=SECRET)
        runs.enqueue(other)
    run_queue.secrets.clear()  # what an app restart does to the process's memory
    status = jobs.status(needs.name, LOCAL)
    assert status["state"] == "queued" and status["waiting_for"] == "token"
    from conftest import KO
    from studio.ui import run_view
    assert "토큰을 다시" in run_view.progress_line(status, [], needs.name, KO)
    assert runs.dispatch() == other.name  # the run behind it is not held up
    assert wait_for(other, timeout=240)["state"] == "completed"
    jobs.resume(needs.name, LOCAL, token=SECRET)  # the person gives it again
    assert runs.view(needs)["state"] in ("starting", "running")
    assert worker_environ(needs).get("HF_TOKEN") == SECRET
    runs.kill(needs)


def test_the_queue_survives_a_restart_and_forgets_entries_already_launched(machine_free):
    waiting = make_run("waits-across-restart")
    launched = make_run("launched-then-app-died")
    with HeldMachine():
        runs.enqueue(waiting)
        runs.enqueue(launched)
    # the app died between launching `launched` and removing its entry: its worker wrote a later start
    folder.write_json_atomic(launched / "status.json", {"state": "completed", "started_at": time.time() + 1})
    assert [e["run"] for e in runs.queued()] == [waiting.name, launched.name]  # files: a restart keeps them
    with HeldMachine():
        assert runs.dispatch() is None
    assert [e["run"] for e in runs.queued()] == [waiting.name]  # never launched twice
    runs.cancel(waiting.name)


def test_a_run_resumed_twice_is_queued_once(machine_free):
    run_dir = make_run("twice")
    (run_dir / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    with HeldMachine():
        jobs.resume(run_dir.name, LOCAL)
        jobs.resume(run_dir.name, LOCAL)  # the same run queued once, not twice
        assert sum(e["run"] == run_dir.name for e in runs.queued()) == 1
    stop_everything()


def test_the_minutes_cap_counts_the_time_of_earlier_attempts():
    from studio.train import earlier_seconds
    assert earlier_seconds({}) == 0
    assert earlier_seconds({"started_at": 100.0, "ended_at": 160.0}) == 60
    assert earlier_seconds({"started_at": 100.0, "ended_at": 160.0, "trained_before_s": 30}) == 90
    assert earlier_seconds({"started_at": 100.0, "updated_at": 130.0}) == 30  # died without an end: its last word
