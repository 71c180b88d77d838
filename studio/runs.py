"""The run-folder protocol, for both sides: the worker that trains and the app that shows and queues.

A run folder (runs/<id>/) holds, with who writes each file:
  config.yaml     the app, once at creation: the whole RunConfig (the worker's only input)
  meta.json       the app, once at creation: owner, created_at
  status.json     the worker alone: state, phase, step counters, error + hint (atomic rewrites)
  metrics.jsonl   the worker alone: one JSON object per event (phase, log, end), appended
  worker.log      the worker's stdout and stderr
  lock            an OS lock (flock) the worker holds for its whole life: held = alive
  STOP            the app's request to stop (the worker saves a checkpoint and the adapter, then ends)
  checkpoints/    Trainer checkpoints (resume);  adapter/  the saved LoRA adapter and tokenizer
Beside the runs:
  .queue/         one file per queued Start or Resume, oldest first; survives an app restart
  .gpu.lock       the machine's lock (flock), held by the one worker that trains; released by the OS when it dies
  .dispatch.lock  serializes dispatchers across app processes

Nothing but the worker writes status.json. What the app shows (`view`) is derived: a worker whose lock is free
while its status says it is active died without a word (SIGKILL, OOM killer, reboot) and is shown as failed.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import REPO_ROOT, RunConfig

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("completed", "stopped", "failed", "interrupted")
LOCAL_OWNER = "local"


def runs_root() -> Path:
    root = Path(os.environ.get("STUDIO_RUNS_DIR", REPO_ROOT / "runs"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sanitize_name(name: str) -> str:
    """A run name becomes one safe folder name: no separators, no dots at the front, no '..'."""
    cleaned = re.sub(r"[^\w\-.]+", "-", name.strip(), flags=re.UNICODE)
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
    path = (root / str(run_id or "")).resolve()
    if path.parent != root or not (path / "config.yaml").is_file():
        raise ValueError(f"no such run: {run_id!r}")
    return path


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
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


# ---------------------------------------------------------------- locks

def _try_flock(path: Path, exclusive: bool = True) -> int | None:
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
    fd = _try_flock(path, exclusive=False)
    if fd is None:
        return True
    os.close(fd)
    return False


def gpu_lock_path() -> Path:
    return runs_root() / ".gpu.lock"


def machine_holder() -> str | None:
    """The run id that holds the machine, if a worker is alive (the lock file names it)."""
    fd = _try_flock(gpu_lock_path(), exclusive=False)
    if fd is not None:
        os.close(fd)
        return None
    try:
        return gpu_lock_path().read_text().strip() or "?"
    except OSError:
        return "?"


class Busy(RuntimeError):
    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(f"another training run holds the machine: {holder}")


def take_locks(run_dir: Path) -> tuple[int, int]:
    """The machine's lock and the run's lock, both or neither (fds the worker keeps for its life)."""
    gpu = _try_flock(gpu_lock_path())
    if gpu is None:
        raise Busy(machine_holder() or "?")
    run = None
    for _ in range(40):  # a viewer's probe holds the run's lock shared for a few microseconds
        run = _try_flock(Path(run_dir) / "lock")
        if run is not None:
            break
        time.sleep(0.025)
    if run is None:
        os.close(gpu)
        raise Busy(Path(run_dir).name)
    os.ftruncate(gpu, 0)
    os.pwrite(gpu, Path(run_dir).name.encode(), 0)
    return gpu, run


# ---------------------------------------------------------------- what the app shows

def view(run_dir: Path) -> dict:
    """The run's status as it really is: status.json, corrected by the lock and the queue."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json")
    state = status.get("state")
    if worker_alive(run_dir):
        if state not in ACTIVE_STATES and not pid_alive(status.get("pid")):
            status = {**status, "state": "starting", "phase": "worker"}  # launched, no status of its own yet
        if (run_dir / "STOP").exists() and status["state"] in ("starting", "running"):
            status["state"] = "stopping"
        return status
    entry = queue_entry(run_dir.name)
    if entry is not None:
        return {**status, "state": "queued", "queued_at": entry.get("queued_at"), "resume": entry.get("resume")}
    if state in ACTIVE_STATES or (not status and (run_dir / "worker.log").exists()):
        # the worker died without writing its end (or before its first word)
        tail = log_tail(run_dir)
        killed = "Killed" in tail or not tail.strip()
        return {**status, "state": "failed", "error": status.get("error") or
                "the training process ended without a word (killed, out of memory, or the machine restarted)",
                "error_code": "err_vanished", "hint": "oom" if killed else "crash", "traceback": tail,
                "resumable": bool(last_checkpoint(run_dir))}
    return status or {"state": "created"}


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


def list_runs(owner: str | None = None) -> list[dict]:
    """Every run (newest first), or only `owner`'s."""
    rows = []
    for run_dir in sorted(runs_root().iterdir(), reverse=True):
        if not (run_dir / "config.yaml").is_file():
            continue
        meta = read_meta(run_dir)
        if owner is not None and meta.get("owner", LOCAL_OWNER) != owner:
            continue
        status = view(run_dir)
        try:
            cfg = RunConfig.load(run_dir / "config.yaml")
        except (ValueError, OSError):
            continue
        rows.append({"id": run_dir.name, "name": cfg.run_name, "owner": meta.get("owner", LOCAL_OWNER),
                     "model": cfg.model.name, "dataset": cfg.data.path, "state": status.get("state"),
                     "step": status.get("step", 0), "max_steps": status.get("max_steps", 0),
                     "train_loss": status.get("train_loss"), "runtime_s": status.get("train_runtime"),
                     "ended_at": status.get("ended_at"),
                     "has_adapter": (run_dir / "adapter" / "adapter_config.json").is_file(),
                     "resumable": bool(last_checkpoint(run_dir)) and status.get("state") in ("stopped", "failed",
                                                                                              "interrupted")})
    return rows


# ---------------------------------------------------------------- the queue

def queue_dir() -> Path:
    d = runs_root() / ".queue"
    d.mkdir(exist_ok=True)
    return d


def queue() -> list[dict]:
    """Queued Starts and Resumes, oldest first."""
    entries = []
    for path in sorted(queue_dir().glob("*.json")):
        entry = read_json(path)
        if entry.get("run"):
            entries.append({**entry, "file": path.name})
    return entries


def queue_entry(run_id: str) -> dict | None:
    return next((e for e in queue() if e["run"] == run_id), None)


def enqueue(run_dir: Path, resume: bool = False, owner: str = LOCAL_OWNER) -> None:
    """Queue a Start or Resume; `dispatch` launches it when the machine is free. One entry per run."""
    run_dir = Path(run_dir)
    with _dispatch_lock():
        if worker_alive(run_dir):
            raise Busy(run_dir.name)
        if queue_entry(run_dir.name) is not None:
            return
        (run_dir / "STOP").unlink(missing_ok=True)
        write_json_atomic(queue_dir() / f"{time.time_ns():020d}-{run_dir.name}.json",
                          {"run": run_dir.name, "resume": resume, "owner": owner, "queued_at": time.time()})


def cancel(run_id: str) -> bool:
    """Take a queued run out of the queue; True if it was there."""
    with _dispatch_lock():
        entry = queue_entry(run_id)
        if entry is None:
            return False
        (queue_dir() / entry["file"]).unlink(missing_ok=True)
        return True


def request_stop(run_dir: Path) -> None:
    """Ask politely: the worker finishes the optimizer step, saves a checkpoint and the adapter."""
    (Path(run_dir) / "STOP").touch()


@contextmanager
def _dispatch_lock():
    fd = os.open(runs_root() / ".dispatch.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


_secrets: dict[str, dict] = {}  # run id -> env for its worker (the Hub token): memory only, never on disk


def dispatch() -> str | None:
    """Launch the oldest queued run if the machine is free; returns its id. Safe from any thread or process."""
    with _dispatch_lock():
        for entry in queue():
            if machine_holder() is not None:
                return None
            run_dir = runs_root() / entry["run"]
            (queue_dir() / entry["file"]).unlink(missing_ok=True)
            if not (run_dir / "config.yaml").is_file():
                continue  # deleted while it waited
            try:
                launch(run_dir, resume=bool(entry.get("resume")), env=_secrets.pop(entry["run"], None))
            except Busy:
                write_json_atomic(queue_dir() / entry["file"], {k: v for k, v in entry.items() if k != "file"})
                return None
            return entry["run"]
    return None


# ---------------------------------------------------------------- launching the worker

def worker_command(run_dir: Path, resume: bool = False) -> list[str]:
    """`python -m studio.train RUN_DIR`, or its torchrun form when the run asks for several GPUs."""
    from studio import distributed
    cfg = RunConfig.load(Path(run_dir) / "config.yaml")
    return distributed.launch_command(cfg.distributed, run_dir, resume)


def worker_env(run_dir: Path) -> dict:
    """Extra environment of every rank (UNSLOTH_FSDP2=1 for fsdp2)."""
    from studio import distributed
    cfg = RunConfig.load(Path(run_dir) / "config.yaml")
    return distributed.launch_env(cfg.distributed, cfg.model.load_in_4bit)


def launch(run_dir: Path, resume: bool = False, env: dict | None = None) -> int:
    """Take the locks and start the worker on this run; returns its pid at once.

    The locks are taken here, atomically, and handed to the worker (inherited fds), so exactly one worker
    trains and the OS releases the machine the moment it dies, however it dies."""
    run_dir = Path(run_dir)
    gpu, run = take_locks(run_dir)
    (run_dir / "STOP").unlink(missing_ok=True)
    log = os.open(run_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        command = worker_command(run_dir, resume)
        # the standby worker is one process: a torchrun job (several GPUs) starts fresh, torchrun holding the locks
        pid = STANDBY.hand_over(run_dir, resume, env or {}, [gpu, run, log]) if "studio.train" == command[2] \
            else None
        if pid is None:
            proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, pass_fds=(gpu, run),
                                    env={**os.environ, **worker_env(run_dir), **(env or {}),
                                         "STUDIO_LOCK_FDS": f"{gpu},{run}"},
                                    start_new_session=True)  # closing the browser or the UI never kills it
            _children.append(proc)
            pid = proc.pid
    finally:
        for fd in (gpu, run, log):
            os.close(fd)
    return pid


_children: list[subprocess.Popen] = []  # reaped so finished workers leave no zombies


def reap() -> None:
    for p in list(_children):
        if p.poll() is not None:
            _children.remove(p)
    STANDBY.reap()


def kill(run_dir: Path) -> None:
    """SIGKILL the run's worker and all it started: under torchrun the launcher and every rank (each rank has
    its own session). For tests, and runs that ignore Stop."""
    from studio import distributed
    status = read_json(Path(run_dir) / "status.json")
    pid = status.get("launcher_pid") or status.get("pid")
    if not worker_alive(run_dir):
        return
    pids = [int(pid)] if pid and pid_alive(pid) else lock_holders(Path(run_dir) / "lock")  # not yet written: ask /proc
    for p in pids:
        distributed.kill_job(p)


def lock_holders(path: Path) -> list[int]:
    """The processes that have this file open (Linux /proc): a worker that has not written its pid yet."""
    target, out = str(Path(path).resolve()), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") == target for fd in os.listdir(f"/proc/{entry}/fd")):
                out.append(int(entry))
        except OSError:
            continue
    return out


class Standby:
    """A worker process started ahead of time, with Unsloth, torch and TRL already imported.

    Importing them takes most of a small run's start-up (about 8 s on 2 CPU cores). The app keeps one such
    process waiting on a socket; Start hands it the run folder, the held locks and the log file (SCM_RIGHTS),
    and it runs exactly what `python -m studio.train RUN_DIR` runs. The next one starts when that run's process
    has ended: only one run trains at a time, and its imports would take CPU from the run's first steps (on
    2 cores they doubled the first step). STUDIO_STANDBY=0 turns this off (each run starts a fresh process)."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.is_ready = False
        self.lock = threading.Lock()
        self.generation = 0  # bumped by stop(): a run that ends after it starts no new standby

    def ready(self) -> bool:
        """Has the waiting process finished its imports? (It sends one byte when it has.)"""
        with self.lock:
            if not self.is_ready and self.sock is not None:
                try:
                    self.is_ready = self.sock.recv(1, socket.MSG_DONTWAIT) == b"R"
                except (BlockingIOError, OSError):
                    pass
            return self.is_ready

    def enabled(self) -> bool:
        return os.environ.get("STUDIO_STANDBY", "1") != "0"

    def start(self) -> None:
        with self.lock:
            if not self.enabled() or (self.proc is not None and self.proc.poll() is None):
                return
            parent, child = socket.socketpair()
            self.proc = subprocess.Popen([sys.executable, "-m", "studio.train", "--standby", str(child.fileno())],
                                         cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, pass_fds=(child.fileno(),),
                                         start_new_session=True)
            child.close()
            self.sock, self.is_ready = parent, False
            self.ident = os.fstat(parent.fileno()).st_ino  # the socket we made, checked before each hand-over

    def hand_over(self, run_dir: Path, resume: bool, env: dict, fds: list[int]) -> int | None:
        """Give the run to the waiting process; None when there is none (the caller starts a fresh one)."""
        with self.lock:
            proc, sock = self.proc, self.sock
            self.proc = self.sock = None
            self.is_ready = False
        if proc is None or proc.poll() is not None:
            return None
        try:  # our socket still? (if anything closed its number, another file may now hold it: never send there)
            if os.fstat(sock.fileno()).st_ino != self.ident:
                raise OSError("the standby worker's socket is gone")
        except OSError:
            proc.kill()
            return None
        try:
            message = json.dumps({"run_dir": str(run_dir), "resume": resume, "env": env}).encode()
            socket.send_fds(sock, [message], fds)
            sock.close()
        except OSError:
            proc.kill()
            return None
        _children.append(proc)
        threading.Thread(target=self._after, args=(proc, self.generation), daemon=True).start()
        return proc.pid

    def _after(self, proc: subprocess.Popen, generation: int) -> None:
        """The next run's standby, once this one's process has ended (unless the app stopped meanwhile)."""
        proc.wait()
        if generation == self.generation:
            self.start()

    def reap(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is not None:
                self.proc = self.sock = None

    def stop(self) -> None:
        with self.lock:
            self.generation += 1
            if self.proc is not None:
                self.proc.kill()
            self.proc = self.sock = None


STANDBY = Standby()


class Scheduler:
    """Launches queued runs when the machine frees; one per app, polling once a second."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.thread, self.stopped = every_s, None, threading.Event()

    def start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.stopped.clear()
            self.thread = threading.Thread(target=self._loop, name="studio-scheduler", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                reap()
                dispatch()
            except Exception as exc:  # never let one bad queue entry stop the queue
                print(f"scheduler: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self.stopped.set()


SCHEDULER = Scheduler()
