"""The run-folder protocol, for both sides: the worker that trains and the app that shows and queues.

A run folder (runs/<id>/) holds, with who writes each file:
  config.yaml     the app, once at creation: the whole RunConfig (the worker's only input)
  meta.json       the app, once at creation: owner, created_at
  status.json     the worker (atomic rewrites): state, phase, step counters, error + hint. Before any worker
                  ran, the app writes it once for a launch that failed (holding the run's lock) or a Start
                  taken out of the queue (holding the queue's lock): "cancelled".
  metrics.jsonl   the worker alone: one JSON object per event (phase, log, end), appended
  worker.log      the worker's stdout and stderr
  exit.json       the launcher, after a worker it started ended without writing its end: exit code or signal
  lock            an OS lock (flock) the worker holds for its whole life: held = alive
  STOP            the app's request to stop (the worker saves a checkpoint and the adapter, then ends; before
                  its first step it ends at once, within a second)
  checkpoints/    Trainer checkpoints (resume);  adapter/  the saved LoRA adapter and tokenizer
Beside the runs: .queue/ (studio/runs/queue.py), .gpu.lock (the machine's lock: held by the one worker that
trains; released by the OS when it dies), .dispatch.lock.

What the app shows (`view`) is derived: a worker whose lock is free while its status says it is active died
without a word (SIGKILL, OOM killer, reboot) and is shown as failed, with the cause the launcher saw.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import REPO_ROOT, RunConfig

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("completed", "stopped", "failed", "interrupted", "cancelled")  # cancelled: left the queue unrun
LOCAL_OWNER = "local"


def runs_root() -> Path:
    root = Path(os.environ.get("STUDIO_RUNS_DIR", REPO_ROOT / "runs"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sanitize_name(name: str) -> str:
    """A run name becomes one safe folder name: no separators, no dots at the front, no '..'."""
    cleaned = re.sub(r"[^\w\-.]+", "-", str(name).strip(), flags=re.UNICODE)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".-_")
    return cleaned[:64] or "run"


def new_run_dir(name: str) -> Path:
    root = runs_root()
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{sanitize_name(name)}"
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    assert path.resolve().parent == root.resolve()
    return path


def resolve_run(run_id: str) -> Path:
    """A run id from the UI or the API, refused unless it names a run folder directly under runs/."""
    root = runs_root().resolve()
    text = str(run_id or "")
    path = (root / text).resolve()
    if not text or "/" in text or "\\" in text or path.parent != root or not (path / "config.yaml").is_file():
        raise ValueError(f"no such run: {run_id!r}")
    return path


def write_json_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (a temporary file per writer, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def create_run(cfg: RunConfig, owner: str = LOCAL_OWNER) -> Path:
    """A new run folder: config.yaml and meta.json, written once; nothing starts yet."""
    for _ in range(20):
        run_dir = new_run_dir(cfg.run_name)
        try:
            run_dir.mkdir(parents=True)
            break
        except FileExistsError:  # another Start in the same second took that name
            continue
    else:
        raise RuntimeError("could not create a run folder")
    cfg.save(run_dir / "config.yaml")
    write_json_atomic(run_dir / "meta.json", {"owner": owner, "created_at": time.time()})
    return run_dir


def read_meta(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / "meta.json")


def delete_run(run_dir: Path) -> None:
    """Remove a run folder that no worker holds (the caller checked the owner and took it out of the queue).
    Renamed first, so no reader ever sees half a folder."""
    run_dir = Path(run_dir)
    if worker_alive(run_dir):
        raise Busy(run_dir.name)
    trash = run_dir.with_name(f".deleting-{run_dir.name}-{os.getpid()}")
    os.replace(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)


# ---------------------------------------------------------------- locks

def try_flock(path: Path, exclusive: bool = True) -> int | None:
    """An open, locked fd, or None when another process holds the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def worker_alive(run_dir: Path) -> bool:
    """Is a worker holding this run's lock? Asked of the OS, so a dead worker can never look alive."""
    path = Path(run_dir) / "lock"
    if not path.exists():
        return False
    fd = try_flock(path, exclusive=False)
    if fd is None:
        return True
    os.close(fd)
    return False


def gpu_lock_path() -> Path:
    return runs_root() / ".gpu.lock"


def machine_holder() -> str | None:
    """The run id that holds the machine, if a worker is alive (the lock file names it)."""
    fd = try_flock(gpu_lock_path(), exclusive=False)
    if fd is not None:
        os.close(fd)
        return None
    try:
        return (gpu_lock_path().read_text().splitlines() or ["?"])[0].strip() or "?"
    except OSError:
        return "?"


class Busy(RuntimeError):
    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(f"another training run holds the machine: {holder}")


def take_locks(run_dir: Path, planned_gb: float = 0.0) -> tuple[int, int]:
    """The machine's lock and the run's lock, both or neither (fds the worker keeps for its life). The machine's
    lock file names the run and the GiB of GPU memory it plans to use (studio/gpu.py reads it)."""
    gpu = try_flock(gpu_lock_path())
    if gpu is None:
        raise Busy(machine_holder() or "?")
    run = None
    for _ in range(40):  # a viewer's probe holds the run's lock shared for a few microseconds
        run = try_flock(Path(run_dir) / "lock")
        if run is not None:
            break
        time.sleep(0.025)
    if run is None:
        os.close(gpu)
        raise Busy(Path(run_dir).name)
    os.ftruncate(gpu, 0)
    os.pwrite(gpu, f"{Path(run_dir).name}\n{planned_gb:.3f}\n".encode(), 0)
    return gpu, run


# ---------------------------------------------------------------- what the app shows

def view(run_dir: Path, queued: dict | None = None) -> dict:
    """The run's status as it really is: status.json, corrected by the lock and the queue.
    `queued`: the queue's entries by run id, when the caller read it once for many runs."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    state = status.get("state")
    if worker_alive(run_dir):
        if state not in ACTIVE_STATES and not pid_alive(status.get("pid")):
            status = {**status, "state": "starting", "phase": "worker"}  # launched, no status of its own yet
        if (run_dir / "STOP").exists() and status["state"] in ("starting", "running"):
            status["state"] = "stopping"
        return status
    if queued is None:
        from studio.runs.queue import queue_entry
        entry = queue_entry(run_dir.name)
    else:
        entry = queued.get(run_dir.name)
    if entry is not None:
        out = {**status, "state": "queued", "queued_at": entry.get("queued_at"), "resume": entry.get("resume")}
        for key in ("waiting_for", "needs_gb"):
            if entry.get(key) is not None:
                out[key] = entry[key]
        return out
    if state in ACTIVE_STATES or (not status and (run_dir / "worker.log").exists()):
        if (run_dir / "STOP").exists():  # stopped before its worker wrote a word (the standby still importing)
            return {**status, "state": "stopped", "stopped_in": status.get("phase") or "worker",
                    "resumable": bool(last_checkpoint(run_dir))}
        return {**status, **vanished(run_dir), "state": "failed", "resumable": bool(last_checkpoint(run_dir))}
    return status or {"state": "created"}


def vanished(run_dir: Path) -> dict:
    """Why a worker ended without writing its end, as far as anyone saw: the exit the launcher recorded
    (a signal, an exit code), else the app was not there to see it (restarted, or the machine did)."""
    tail = log_tail(run_dir)
    ended = read_json(Path(run_dir) / "exit.json")
    sig = ended.get("signal")
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        code, params = ("err_killed_oom" if sig == signal.SIGKILL else "err_killed"), {"signal": name}
        hint = "oom" if sig == signal.SIGKILL else "crash"
        text = f"the training process was killed ({name}): out of memory, or killed by hand" \
            if sig == signal.SIGKILL else f"the training process was ended by {name}"
    elif ended.get("returncode") is not None:
        code, params, hint = "err_exit_code", {"code": ended["returncode"]}, "crash"
        text = f"the training process exited with code {ended['returncode']} before it wrote its status"
    else:
        code, params, hint = "err_vanished", {}, ("oom" if "Killed" in tail else "crash")
        text = "the training process ended while the app was not watching (the app or the machine restarted)"
    return {"error": text, "error_code": code, "error_params": params, "hint": hint, "traceback": tail}


WORKER_ENV_PREFIXES = ("STUDIO_", "HF_", "UNSLOTH_", "CUDA_", "PYTORCH_", "TORCH", "TRANSFORMERS_", "NCCL_")


def app_environment() -> dict[str, str]:
    """The app's settings a worker reads."""
    return {k: v for k, v in os.environ.items() if k.startswith(WORKER_ENV_PREFIXES)}


def environment_changes(since: dict[str, str]) -> dict:
    """What changed in the app's settings since `since` (when a standby started): the standby applies it with the
    run, so a token or a STUDIO_ setting changed meanwhile reaches the run as it would reach a fresh worker.
    (Only the change: what the standby's own imports set, as Unsloth sets its UNSLOTH_ flags, stays.)"""
    now = app_environment()
    return {"set": {k: v for k, v in now.items() if since.get(k) != v}, "unset": [k for k in since if k not in now]}


def apply_environment_changes(changes: dict) -> None:
    for key in changes.get("unset", []):
        os.environ.pop(key, None)
    os.environ.update(changes.get("set", {}))


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def log_tail(run_dir: Path, lines: int = 25) -> str:
    try:
        with open(Path(run_dir) / "worker.log", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64_000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("checkpoint-*"),
                   key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    return ckpts[-1] if ckpts else None


@dataclass
class MetricsTail:
    """Reads metrics.jsonl from where it left off; a half-written last line waits for the next read."""
    path: Path
    offset: int = 0
    events: list[dict] = field(default_factory=list)

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        new = []
        for line in chunk[:end].splitlines():
            try:
                new.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.events.extend(new)
        return new

    @property
    def logs(self) -> list[dict]:
        return [e for e in self.events if e.get("event") == "log"]


def last_log(run_dir: Path, window: int = 65536) -> dict | None:
    """The newest "log" event, read from the file's end only (the status is polled every second; a long
    run's metrics.jsonl is not read whole each time)."""
    try:
        with open(Path(run_dir) / "metrics.jsonl", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - window))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a half-written last line, or the window's cut first line
        if event.get("event") == "log":
            return event
    return None


def read_metrics(run_dir: Path) -> MetricsTail:
    tail = MetricsTail(Path(run_dir) / "metrics.jsonl")
    tail.read_new()
    return tail


# A table of 1,000 runs is refreshed every few seconds: what it needs of each folder is kept here, keyed so that
# it is read again only when it changed. config.yaml and meta.json are written once (key: the folder's inode);
# a run that no worker holds and no queue entry names changes only when its status.json does (its mtime).
_facts: dict[str, tuple[tuple, dict]] = {}
_rows: dict[str, tuple[tuple, dict]] = {}
_cache_lock = threading.Lock()


def run_facts(run_dir: Path, inode: int | None = None) -> dict | None:
    """Owner, name, model, dataset, max_steps, stage of a run (None: not a readable run folder)."""
    run_dir = Path(run_dir)
    try:
        key = (inode if inode is not None else os.stat(run_dir).st_ino,)
    except OSError:
        return None
    with _cache_lock:
        hit = _facts.get(run_dir.name)
    if hit and hit[0] == key:
        return hit[1]
    try:
        cfg = RunConfig.load(run_dir / "config.yaml")
    except (ValueError, OSError):
        return None
    facts = {"owner": read_meta(run_dir).get("owner", LOCAL_OWNER), "name": cfg.run_name, "model": cfg.model.name,
             "dataset": cfg.data.path, "max_steps": cfg.train.max_steps, "stage": cfg.train.stage}
    with _cache_lock:
        _facts[run_dir.name] = (key, facts)
    return facts


def _row(run_dir: Path, facts: dict, queued: dict, live: bool) -> dict:
    """One line of the runs table; from the cache for a run that is neither live nor queued."""
    try:
        st = os.stat(run_dir / "status.json")
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    settled = not live and run_dir.name not in queued
    if settled and key is not None:
        with _cache_lock:
            hit = _rows.get(run_dir.name)
        if hit and hit[0] == key:
            return hit[1]
    status = view(run_dir, queued)
    row = {"id": run_dir.name, **{k: v for k, v in facts.items() if k != "max_steps"},
           "state": status.get("state"), "step": status.get("step", 0), "max_steps": status.get("max_steps", 0),
           "train_loss": status.get("train_loss"), "runtime_s": status.get("train_runtime"),
           "ended_at": status.get("ended_at"),
           "has_adapter": (run_dir / "adapter" / "adapter_config.json").is_file(),
           "resumable": status.get("state") in ("stopped", "failed", "interrupted") and bool(last_checkpoint(run_dir))}
    if settled and key is not None and status.get("state") in FINAL_STATES:
        with _cache_lock:
            _rows[run_dir.name] = (key, row)
    return row


def list_runs(owner: str | None = None) -> list[dict]:
    """Every run (newest first), or only `owner`'s."""
    from studio.runs.queue import queued as queued_entries
    queued = {e["run"]: e for e in queued_entries()}
    holder = machine_holder()  # the one run a worker can hold (both locks are taken together)
    rows = []
    for entry in sorted(os.scandir(runs_root()), key=lambda e: e.name, reverse=True):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        run_dir = Path(entry.path)
        facts = run_facts(run_dir, entry.inode())
        if facts is None or (owner is not None and facts["owner"] != owner):
            continue
        live = holder in (entry.name, "?")
        rows.append(_row(run_dir, facts, queued, live))
    return rows
