"""Run folders and the training worker's lifecycle, seen from the UI side.

A run folder (runs/<name>/) holds:
  config.yaml     the whole RunConfig (the worker's only input)
  status.json     state, pid, step counters, error + hint; written atomically by the worker
  metrics.jsonl   one JSON object per event (start, log, end); read incrementally
  worker.log      the worker's stdout and stderr
  STOP            present = the user asked to stop (the worker saves and ends)
  checkpoints/    Trainer checkpoints (resume)
  adapter/        save_pretrained of the LoRA adapter and tokenizer
One worker at a time: runs/.lock names the run that holds the machine.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.config import REPO_ROOT, RunConfig

ACTIVE_STATES = ("starting", "running", "stopping")
FINAL_STATES = ("completed", "stopped", "failed", "interrupted")


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
    """A run id from the UI or the API, refused unless it names a folder directly under runs/."""
    root = runs_root().resolve()
    path = (root / str(run_id)).resolve()
    if path.parent != root or not (path / "config.yaml").is_file():
        raise ValueError(f"no such run: {run_id!r}")
    return path


# ---------------------------------------------------------------- status

def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_status(run_dir: Path) -> dict:
    try:
        status = json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        status = {"state": "created"}
    # A worker that died without writing its end (SIGKILL, OOM killer, machine restart).
    if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
        status = mark_vanished(Path(run_dir), status)
    return status


def mark_vanished(run_dir: Path, status: dict) -> dict:
    tail = log_tail(run_dir)
    killed = "Killed" in tail or not tail.strip()
    status.update(state="failed", error=status.get("error") or "the training process ended without a word "
                  "(killed, out of memory, or the machine restarted)",
                  hint="oom" if killed else "crash", traceback=tail, ended_at=time.time(),
                  resumable=bool(last_checkpoint(run_dir)))
    write_json_atomic(run_dir / "status.json", status)
    return status


def pid_alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    try:  # a zombie child (exited, not yet reaped) is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def log_tail(run_dir: Path, lines: int = 25) -> str:
    try:
        text = (Path(run_dir) / "worker.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((Path(run_dir) / "checkpoints").glob("checkpoint-*"),
                   key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    return ckpts[-1] if ckpts else None


# ---------------------------------------------------------------- metrics

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


# ---------------------------------------------------------------- the one-job lock and the worker

def lock_path() -> Path:
    return runs_root() / ".lock"


def active_run() -> Path | None:
    """The run that holds the machine, if its worker is alive; a stale lock is cleared."""
    try:
        name = lock_path().read_text().strip()
    except OSError:
        return None
    run_dir = runs_root() / name
    if name and run_dir.is_dir() and read_status(run_dir).get("state") in ACTIVE_STATES:
        return run_dir
    lock_path().unlink(missing_ok=True)
    return None


class Busy(RuntimeError):
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        super().__init__(f"another training run is in progress: {run_dir.name}")


def create_run(cfg: RunConfig) -> Path:
    run_dir = new_run_dir(cfg.run_name)
    run_dir.mkdir(parents=True)
    cfg.save(run_dir / "config.yaml")
    write_json_atomic(run_dir / "status.json", {"state": "created", "created_at": time.time()})
    return run_dir


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


def start_worker(run_dir: Path, resume: bool = False, env: dict | None = None) -> int:
    """Take the lock and launch `python -m studio.train RUN_DIR`; returns the pid at once."""
    fd = None
    for _ in range(2):
        try:
            fd = os.open(lock_path(), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = active_run()  # clears a stale lock
            if holder is not None:
                raise Busy(holder) from None
    if fd is None:
        raise Busy(run_dir)
    os.write(fd, run_dir.name.encode())
    os.close(fd)
    (run_dir / "STOP").unlink(missing_ok=True)
    status = read_status(run_dir) if resume else {}
    status.update(state="starting", started_at=time.time(), resume=resume)
    status.pop("error", None)
    try:
        log = open(run_dir / "worker.log", "ab")
        proc = subprocess.Popen(worker_command(run_dir, resume), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **worker_env(run_dir), **(env or {})},
                                start_new_session=True)  # closing the browser or the UI never kills it
        log.close()
    except Exception:
        lock_path().unlink(missing_ok=True)
        raise
    status["pid"] = proc.pid
    write_json_atomic(run_dir / "status.json", status)
    _children.append(proc)
    return proc.pid


_children: list[subprocess.Popen] = []  # reaped by poll() so finished workers leave no zombies


def reap() -> None:
    for p in list(_children):
        if p.poll() is not None:
            _children.remove(p)


def request_stop(run_dir: Path) -> None:
    """Ask politely: the worker finishes the optimizer step, saves a checkpoint and the adapter."""
    (Path(run_dir) / "STOP").touch()
    status = read_status(run_dir)
    if status.get("state") in ("starting", "running"):
        status["state"] = "stopping"
        write_json_atomic(Path(run_dir) / "status.json", status)


def kill(run_dir: Path) -> None:
    """SIGKILL the worker and, under torchrun, the launcher and every rank (each rank has its own session)."""
    from studio import distributed
    status = read_status(run_dir)
    pid = status.get("launcher_pid") or status.get("pid")
    if pid and pid_alive(pid):
        distributed.kill_job(int(pid))


def mark_interrupted_runs() -> list[str]:
    """At start-up: runs that were active when the machine went down are marked, and resumable."""
    found = []
    for run_dir in runs_root().iterdir():
        if (run_dir / "status.json").is_file():
            before = json.loads((run_dir / "status.json").read_text() or "{}").get("state")
            if before in ACTIVE_STATES and read_status(run_dir).get("state") == "failed":
                found.append(run_dir.name)
    return found


def list_runs() -> list[dict]:
    rows = []
    for run_dir in sorted(runs_root().iterdir(), reverse=True):
        if not (run_dir / "config.yaml").is_file():
            continue
        status = read_status(run_dir)
        try:
            cfg = RunConfig.load(run_dir / "config.yaml")
        except (ValueError, OSError):
            continue
        rows.append({"id": run_dir.name, "name": cfg.run_name, "model": cfg.model.name, "dataset": cfg.data.path,
                     "state": status.get("state"), "step": status.get("step", 0),
                     "max_steps": status.get("max_steps", 0), "train_loss": status.get("train_loss"),
                     "runtime_s": status.get("train_runtime"),
                     "has_adapter": (run_dir / "adapter" / "adapter_config.json").is_file(),
                     "resumable": bool(last_checkpoint(run_dir)) and status.get("state") in ("stopped", "failed",
                                                                                              "interrupted")})
    return rows
