"""The queue: Starts and Resumes waiting for the machine, oldest first, one file each in runs/.queue/.

It survives an app restart (files), and any number of app processes or threads may enqueue and dispatch
(every change happens under .dispatch.lock). An entry leaves the queue only once its run has been launched:
a launch refused because the machine is busy leaves it where it was.

A Hub token lives in this process's memory only (`secrets`), never in a file: it survives a busy machine and
goes with a cancel. After an app restart the token is gone: the entry waits ("needs your token again"),
without holding up the runs behind it, until the person gives it again (`provide_token`).
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from studio.runs.folder import Busy, machine_holder, read_json, runs_root, worker_alive, write_json_atomic

secrets: dict[str, dict] = {}  # run id -> env for its worker (HF_TOKEN): memory only, never on disk
waiting_for_gpu: dict[str, float] = {}  # run id -> GiB it needs, while chat or an export holds the card


def queue_dir() -> Path:
    d = runs_root() / ".queue"
    d.mkdir(exist_ok=True)
    return d


def queued() -> list[dict]:
    """Queued Starts and Resumes, oldest first; `waiting_for: "token"` on one whose token this process lacks."""
    entries = []
    for path in sorted(queue_dir().glob("*.json")):
        entry = read_json(path)
        if entry.get("run"):
            if entry.get("needs_token") and entry["run"] not in secrets:
                entry["waiting_for"] = "token"
            elif entry["run"] in waiting_for_gpu:
                entry["waiting_for"], entry["needs_gb"] = "gpu_memory", waiting_for_gpu[entry["run"]]
            entries.append({**entry, "file": path.name})
    return entries


def queue_entry(run_id: str) -> dict | None:
    return next((e for e in queued() if e["run"] == run_id), None)


@contextmanager
def dispatch_lock():
    fd = os.open(runs_root() / ".dispatch.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def enqueue(run_dir: Path, resume: bool = False, owner: str = "local", token: str | None = None) -> None:
    """Queue a Start or Resume; `dispatch` launches it when the machine is free. One entry per run."""
    run_dir = Path(run_dir)
    with dispatch_lock():
        if worker_alive(run_dir):
            raise Busy(run_dir.name)
        if token:
            secrets[run_dir.name] = {"HF_TOKEN": token}
        if queue_entry(run_dir.name) is not None:
            return
        (run_dir / "STOP").unlink(missing_ok=True)
        write_json_atomic(queue_dir() / f"{time.time_ns():020d}-{run_dir.name}.json",
                          {"run": run_dir.name, "resume": resume, "owner": owner, "queued_at": time.time(),
                           "needs_token": bool(token)})


def provide_token(run_id: str, token: str) -> bool:
    """A queued run's token, given again (after an app restart); True if the run was waiting in the queue."""
    with dispatch_lock():
        if queue_entry(run_id) is None:
            return False
        secrets[run_id] = {"HF_TOKEN": token}
        return True


def cancel(run_id: str) -> bool:
    """Take a queued run out of the queue, and its token out of memory; True if it was there."""
    with dispatch_lock():
        secrets.pop(run_id, None)
        entry = queue_entry(run_id)
        if entry is None:
            return False
        (queue_dir() / entry["file"]).unlink(missing_ok=True)
        status = Path(runs_root() / run_id / "status.json")
        if not status.exists():  # a Start that never ran ends here (a Resume keeps the state it had)
            write_json_atomic(status, {"state": "cancelled", "ended_at": time.time()})
        return True


def request_stop(run_dir: Path) -> None:
    """Ask politely: the worker finishes the optimizer step, saves a checkpoint and the adapter (before its
    first step it simply ends)."""
    (Path(run_dir) / "STOP").touch()


def _already_launched(entry: dict, run_dir: Path) -> bool:
    """An entry left behind by an app that died between launching its run and removing it."""
    started = read_json(run_dir / "status.json").get("started_at") or 0
    return worker_alive(run_dir) or started >= (entry.get("queued_at") or 0)


def dispatch() -> str | None:
    """Launch the oldest launchable queued run if the machine is free; returns its id. Safe from any thread or
    process."""
    from studio.runs import launcher
    with dispatch_lock():
        entries = []
        for entry in queued():
            run_dir = runs_root() / entry["run"]
            if not (run_dir / "config.yaml").is_file() or _already_launched(entry, run_dir):
                (queue_dir() / entry["file"]).unlink(missing_ok=True)  # deleted while it waited, or launched
                continue                                                 # by an app that then died
            entries.append(entry)
        for entry in entries:
            if entry.get("waiting_for") == "token":
                continue  # its token is not in this process: the runs behind it go first
            if machine_holder() is not None:
                return None
            try:
                launcher.launch(runs_root() / entry["run"], resume=bool(entry.get("resume")),
                                env=secrets.get(entry["run"]))
            except launcher.WaitForGpu as exc:
                waiting_for_gpu[entry["run"]] = exc.planned_gb
                return None
            except Busy:
                return None
            waiting_for_gpu.pop(entry["run"], None)
            (queue_dir() / entry["file"]).unlink(missing_ok=True)
            secrets.pop(entry["run"], None)
            return entry["run"]
    return None
