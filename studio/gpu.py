"""One owner of the GPU: whatever puts a model on it takes a lease first, through one protocol.

  training      holds the machine's lock (runs/.gpu.lock, studio/runs/folder.py) for its whole life; the lock
                file says how many GiB the run plans to use (its fit estimate, studio/fit.py).
  chat, export  (merge, GGUF) take a lease: a file in runs/.gpu.leases/ that says what it holds and how many
                GiB, locked (flock) by the process that holds it, so a lease dies with its holder.

What fits beside a live run by these figures may share the card; what does not waits, said in words, and never
takes the run down: a run waiting in the queue asks the app's idle chat models to let go first (`on_pressure`).
The web process learns the card's size from nvidia-smi: it never makes a CUDA context to ask.
Without a GPU there is nothing to share: every lease is granted at once (None), CPU work shares the machine.
STUDIO_GPU_GB sets the card's size (to keep part of it for something else, and in tests).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MARGIN_GB = 1.0  # kept free on a shared card: allocator slack, a CUDA context or two

_capacity: list = []


def capacity_gb() -> float | None:
    """Total memory of GPU 0 in GiB, or None without a GPU (asked once per process)."""
    if os.environ.get("STUDIO_GPU_GB"):
        return float(os.environ["STUDIO_GPU_GB"])
    if not _capacity:
        _capacity.append(_query_total_gb())
    return _capacity[0]


def _query_total_gb() -> float | None:
    row = nvidia_smi("memory.total")
    try:
        return float(row[0]) / 1024 if row else None
    except ValueError:
        return None


def nvidia_smi(fields: str) -> list[str] | None:
    """`nvidia-smi --query-gpu=FIELDS` for the first GPU this process may use (CUDA_VISIBLE_DEVICES' first), its
    values in order; None without one. The one way the web process asks about the card: never a CUDA context."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if (visible is not None and visible.strip() in ("", "-1")) or not shutil.which("nvidia-smi"):
        return None
    first = (visible or "0").split(",")[0].strip() or "0"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-i", first],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines() if out.returncode == 0 else []
    return [value.strip() for value in lines[0].split(",")] if lines else None


def leases_dir() -> Path:
    from studio.runs.folder import runs_root
    d = runs_root() / ".gpu.leases"
    d.mkdir(exist_ok=True)
    return d


def live_leases() -> list[dict]:
    """Every lease whose holder is alive."""
    from studio.runs.folder import try_flock
    out = []
    for path in sorted(leases_dir().glob("*.json")):
        fd = try_flock(path, exclusive=False)
        if fd is not None:  # nobody holds it: its holder died
            os.close(fd)
            path.unlink(missing_ok=True)
            continue
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def training_gb() -> float:
    """GiB the live training run plans to use (0 when none trains; the whole card when it did not say)."""
    from studio.runs.folder import gpu_lock_path, machine_holder
    if machine_holder() is None:
        return 0.0
    try:
        lines = gpu_lock_path().read_text().splitlines()
        return float(lines[1])
    except (OSError, ValueError, IndexError):
        return capacity_gb() or 0.0


def free_gb() -> float | None:
    """What is left of the card by the leases' own figures (None: no GPU)."""
    cap = capacity_gb()
    if cap is None:
        return None
    return cap - MARGIN_GB - training_gb() - sum(float(lease.get("need_gb") or 0) for lease in live_leases())


class GpuBusy(RuntimeError):
    """Not enough of the card is free for this: `need_gb` against `free_gb`; `training` names a live run."""

    def __init__(self, need_gb: float, free: float, training: str | None):
        self.need_gb, self.free_gb, self.training = need_gb, free, training
        super().__init__(f"the GPU is busy: {need_gb:.1f} GiB needed, {max(0.0, free):.1f} GiB free"
                         + (f" beside the training run {training}" if training else ""))


@dataclass
class Lease:
    kind: str
    need_gb: float
    path: Path
    fd: int
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.path.unlink(missing_ok=True)
            os.close(self.fd)


@contextmanager
def _leases_lock():
    from studio.runs.folder import runs_root
    fd = os.open(runs_root() / ".gpu.leases.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def take(kind: str, need_gb: float, what: str = "") -> Lease | None:
    """A lease of `need_gb` GiB for `kind` ("chat", "export"); None without a GPU. Raises GpuBusy when it does
    not fit beside what holds the card now."""
    if capacity_gb() is None:
        return None
    from studio.runs.folder import machine_holder
    with _leases_lock():
        room = free_gb()
        if need_gb > room:
            raise GpuBusy(need_gb, room, machine_holder())
        path = leases_dir() / f"{kind}-{os.getpid()}-{threading.get_ident()}-{time.time_ns()}.json"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"kind": kind, "need_gb": round(need_gb, 3), "what": what, "pid": os.getpid(),
                                 "since": time.time()}).encode())
        return Lease(kind, need_gb, path, fd)


def reserve_training(planned_gb: float, take_locks):
    """`take_locks()` (the machine's lock, which then names `planned_gb`) if a run that plans `planned_gb` fits
    beside the leases, checked and taken as one step so no lease slips in between; idle holders are asked to
    let go first. None when it does not fit (the run waits)."""
    cap = capacity_gb()
    if cap is None:
        return take_locks()
    with _leases_lock():
        def used() -> float:
            return sum(float(lease.get("need_gb") or 0) for lease in live_leases())
        if planned_gb + used() > cap - MARGIN_GB:
            for let_go in list(_pressure):
                try:
                    let_go()
                except Exception:  # a holder that cannot let go keeps its lease; the run waits
                    pass
        if planned_gb + used() > cap - MARGIN_GB:
            return None
        return take_locks()


_pressure: list = []


def on_pressure(let_go) -> None:
    """`let_go()` is called when a training run waits for memory: free what is idle (the chat service's models)."""
    _pressure.append(let_go)


def planned_training_gb(cfg) -> float:
    """A run's peak by the fit model (its settings and model shape); the whole card when the shape is unknown."""
    cap = capacity_gb()
    if cap is None:
        return 0.0
    from studio import fit
    mc = fit.model_config_for(cfg.model.name)
    if mc is None:
        return cap
    t = cfg.train
    try:
        return fit.estimate(mc, t.max_length, cfg.model.load_in_4bit, t.per_device_train_batch_size,
                            cfg.lora.use_gradient_checkpointing, r=cfg.lora.r)
    except (KeyError, TypeError, ValueError):
        return cap


def model_gb(name: str, load_in_4bit: bool, extra_gb: float = 0.5) -> float:
    """What holding a model for inference takes (weights, plus a KV cache and buffers)."""
    from studio import fit
    mc = fit.model_config_for(name)
    if mc is None:
        return capacity_gb() or 0.0
    try:
        return fit.weights_gb(fit.shape(mc), load_in_4bit) + extra_gb
    except (KeyError, TypeError, ValueError):
        return capacity_gb() or 0.0
