"""Who starts workers and who ends them: launch (fresh or through the standby worker), kill, the scheduler.

A launch takes the machine's lock and the run's lock here, atomically, and hands both to the worker
(inherited fds), so exactly one worker trains and the OS releases the machine the moment it dies, however it
dies. Every process this module starts is watched by a thread: when one ends without having written its end,
its exit code or signal goes into the run's exit.json, which the view turns into a cause a person can read.

The standby worker is a process started ahead of time with Unsloth, torch and TRL already imported (about 8 s
on 2 CPU cores, 20-25 s on a GPU host). A run handed to it is never lost, whatever the moment: the app keeps
its own copies of the locks until the standby says it has the run ("A"); if it dies first, the run starts in
a fresh process with those same locks. A standby still importing simply takes the run when it is done.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from studio import gpu
from studio.config import REPO_ROOT, RunConfig
from studio.runs.folder import (ACTIVE_STATES, Busy, app_environment, environment_changes, machine_holder, pid_alive,
                                read_json, runs_root, take_locks, worker_alive, write_json_atomic)


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


def launch(run_dir: Path, resume: bool = False, env: dict | None = None) -> int | None:
    """Take the locks and start the worker on this run; returns its pid at once, or None when the launch
    failed (the reason is in the run's status.json). Raises Busy when the machine is taken."""
    run_dir = Path(run_dir)
    planned = planned_gb(run_dir)
    locks = gpu.reserve_training(planned, lambda: take_locks(run_dir, planned))
    if locks is None:  # a chat or an export holds too much of the card: the run waits
        raise WaitForGpu(run_dir.name, planned)
    fds = list(locks)
    try:
        (run_dir / "STOP").unlink(missing_ok=True)
        (run_dir / "exit.json").unlink(missing_ok=True)
        fds.append(os.open(run_dir / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644))
        command = worker_command(run_dir, resume)
        extra = {**worker_env(run_dir), **(env or {})}
        if command[1:3] == ["-m", "studio.train"]:  # one process: the standby can run it
            pid = STANDBY.hand_over(run_dir, resume, extra, *fds)
            if pid is not None:
                fds = []  # the hand-over owns them now
                return pid
        return start_fresh(run_dir, command, extra, *fds)
    except Exception as exc:  # a config that no longer reads, no memory to fork: said, not "out of memory"
        launch_failed(run_dir, exc)
        return None
    finally:
        for fd in fds:
            os.close(fd)


class WaitForGpu(Busy):
    """The machine is free but the GPU's memory is not: the run stays queued."""

    def __init__(self, run_id: str, planned_gb: float):
        self.planned_gb = planned_gb
        super().__init__(run_id)


_planned: dict[str, float] = {}


def planned_gb(run_dir: Path) -> float:
    """The run's GPU memory by the fit model (0 without a GPU), worked out once per run."""
    name = Path(run_dir).name
    if name not in _planned:
        try:
            _planned[name] = gpu.planned_training_gb(RunConfig.load(Path(run_dir) / "config.yaml"))
        except (OSError, ValueError):
            _planned[name] = 0.0  # a config that no longer reads: the launch says so
    return _planned[name]


def start_fresh(run_dir: Path, command: list[str], env: dict, gpu: int, run: int, log: int, after=None) -> int:
    """A new worker process (the caller keeps, and closes, its own copies of the fds)."""
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            pass_fds=(gpu, run), env={**os.environ, **env, "STUDIO_LOCK_FDS": f"{gpu},{run}"},
                            start_new_session=True)  # closing the browser or the UI never kills it
    watch(proc, run_dir, after)
    return proc.pid


def launch_failed(run_dir: Path, exc: BaseException) -> None:
    """No worker ran: the launcher, holding the run's lock, is the one writer of its status."""
    detail = f"{type(exc).__name__}: {exc}"[:2000]
    write_json_atomic(Path(run_dir) / "status.json", {
        "state": "failed", "error": f"the run could not be launched: {detail}", "error_code": "err_launch",
        "error_params": {"detail": detail}, "hint": "launch", "started_at": time.time(), "ended_at": time.time(),
        "resumable": False})


def watch(proc: subprocess.Popen, run_dir: Path | None, after=None) -> None:
    """Wait for the process in a thread (no zombies); if it ended without writing its end, record how."""
    def wait():
        code = proc.wait()
        if run_dir is not None:
            record_exit(run_dir, code)
        if after:
            after()
    threading.Thread(target=wait, name=f"watch-{proc.pid}", daemon=True).start()


def record_exit(run_dir: Path, code: int) -> None:
    status = read_json(Path(run_dir) / "status.json")
    if status.get("state") in ACTIVE_STATES or not status:
        write_json_atomic(Path(run_dir) / "exit.json", {"returncode": code if code >= 0 else None,
                                                        "signal": -code if code < 0 else None, "at": time.time()})


def kill(run_dir: Path) -> None:
    """SIGKILL the run's worker and all it started: under torchrun the launcher and every rank (each rank has
    its own session). For tests, and runs that ignore Stop."""
    from studio import distributed
    if not worker_alive(run_dir):
        return
    status = read_json(Path(run_dir) / "status.json")
    pid = status.get("launcher_pid") or status.get("pid")
    pids = [int(pid)] if pid and status.get("state") in ACTIVE_STATES and pid_alive(pid) \
        else lock_holders(Path(run_dir) / "lock")  # no status of its own yet: whoever holds its lock
    for p in pids:
        distributed.kill_job(p)


WORKER_COMMANDS = ("studio.train", "torchrun", "torch.distributed.run")


def lock_holders(path: Path) -> list[int]:
    """The workers that have this file open: one that has not written its pid yet. Only workers: the app holds
    a run's lock too while it hands the run to the standby, and a kill from another process (a test, the soak)
    must never end the app."""
    import psutil
    target, out = str(Path(path).resolve()), []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(proc.info.get("cmdline") or [])
        if proc.pid == os.getpid() or not any(word in command for word in WORKER_COMMANDS):
            continue
        try:
            if any(f.path == target for f in proc.open_files()):
                out.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return out


class Standby:
    """The worker started ahead of time (see the module docstring). STUDIO_STANDBY=0 turns it off.

    One waits while the machine is free. The next one starts when the run it took has ended, not before:
    only one run trains at a time, and its imports would take CPU from the run's first steps (on 2 cores they
    doubled the first step). A Start that finds none (a run from before an app restart just ended) starts one
    and hands the run to it: the same imports a fresh process would do, and no second standby beside the run."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.is_ready = False
        self.lock = threading.Lock()
        self.running = False  # between start() and stop(): a run that ends starts the next standby
        self.pending: dict[str, subprocess.Popen] = {}  # run id -> the standby it was handed to, until "A"
        self.spawned_under: dict[str, str] = {}  # the app's settings when the waiting one started

    def enabled(self) -> bool:
        return os.environ.get("STUDIO_STANDBY", "1") != "0"

    def ready(self) -> bool:
        """Has the waiting process finished its imports? (It sends "R" when it has.)"""
        with self.lock:
            if not self.is_ready and self.sock is not None:
                try:
                    self.is_ready = self.sock.recv(1, socket.MSG_DONTWAIT) == b"R"
                except (BlockingIOError, OSError):
                    pass
            return self.is_ready

    def start(self) -> None:
        """The app is up: a standby waits from now on, while the machine is free."""
        with self.lock:
            self.running = True
            if self.enabled() and machine_holder() is None:
                self._spawn()

    def _spawn(self) -> None:  # under self.lock
        if self.proc is not None and self.proc.poll() is None:
            return
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one message, whole
        with open(runs_root() / ".standby.log", "wb") as log:  # why it died, if it dies before a run
            self.proc = subprocess.Popen([sys.executable, "-m", "studio.train", "--standby", str(child.fileno())],
                                         cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=(child.fileno(),), start_new_session=True)
        child.close()
        self.sock, self.is_ready, self.spawned_under = parent, False, app_environment()
        watch(self.proc, None)  # reaped even if it never gets a run

    def hand_over(self, run_dir: Path, resume: bool, env: dict, gpu: int, run: int, log: int) -> int | None:
        """Give the run to the standby (started now if there is none); None when the standby is off or cannot
        take it (the caller starts a fresh process). On success the hand-over owns the three fds: they are
        closed once the standby has the run, or used to start it fresh if the standby dies first."""
        with self.lock:
            if not (self.enabled() and self.running):
                return None
            if self.proc is None or self.proc.poll() is not None:
                self._spawn()
            proc, sock, spawned_under = self.proc, self.sock, self.spawned_under
            self.proc = self.sock = None
            self.is_ready = False
        try:
            message = json.dumps({"run_dir": str(run_dir), "resume": resume, "env": env,
                                  "env_changes": environment_changes(spawned_under), "handed_at": time.time()}).encode()
            socket.send_fds(sock, [message], [gpu, run, log])
        except OSError:
            sock.close()
            proc.kill()
            return None
        with self.lock:
            self.pending[Path(run_dir).name] = proc
        threading.Thread(target=self._confirm, args=(proc, sock, run_dir, resume, env, (gpu, run, log)),
                         name=f"hand-over-{Path(run_dir).name}", daemon=True).start()
        return proc.pid

    def _confirm(self, proc, sock, run_dir: Path, resume: bool, env: dict, fds: tuple[int, int, int]) -> None:
        """Wait for the standby's "A" (it has the run); if it ends first, start the run fresh with the locks
        this process still holds. Either way the next standby comes when this run's process has ended."""
        accepted = False
        try:
            while not accepted:
                byte = sock.recv(1)  # "R" (imports done) comes first when it was still importing
                if not byte:
                    break  # the standby ended before it took the run
                accepted = byte == b"A"
        except OSError:
            pass
        finally:
            sock.close()
            with self.lock:
                self.pending.pop(Path(run_dir).name, None)
        try:
            if accepted:
                watch(proc, run_dir, after=self._next)
            elif (Path(run_dir) / "STOP").exists():  # stopped while the standby was still importing
                proc.wait()
                self._next()
            else:
                proc.wait()
                try:
                    start_fresh(run_dir, worker_command(run_dir, resume), env, *fds, after=self._next)
                except Exception as exc:
                    launch_failed(run_dir, exc)
                    self._next()
        finally:
            for fd in fds:
                os.close(fd)

    def cancel(self, run_id: str) -> None:
        """Stop for a run handed over to a standby that has not taken it yet (still importing): end that
        process now rather than after its imports; the view shows the run stopped (its STOP file)."""
        with self.lock:
            proc = self.pending.get(run_id)
        if proc is not None:
            proc.kill()

    def _next(self) -> None:
        with self.lock:
            if self.running and self.enabled() and machine_holder() is None:
                self._spawn()

    def stop(self) -> None:
        """The app is closing: no new standby, and the waiting one (not a run's) ends."""
        with self.lock:
            self.running = False
            proc, sock = self.proc, self.sock
            self.proc = self.sock = None
        if proc is not None:
            proc.kill()
        if sock is not None:
            sock.close()


STANDBY = Standby()


class Scheduler:
    """Launches queued runs when the machine frees; one per app, polling once a second."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.thread, self.stopped = every_s, None, threading.Event()

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive() and not self.stopped.is_set():
            return
        # A fresh event for a fresh thread: one told to stop a moment ago may still be alive, and reusing it (or
        # its event) left an app started right after another closed with no scheduler (CI: a queue never drained).
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(self.stopped,), name="studio-scheduler", daemon=True)
        self.thread.start()

    def _loop(self, stopped: threading.Event) -> None:
        from studio.runs.queue import dispatch
        while not stopped.wait(self.every_s):
            try:
                dispatch()
            except Exception as exc:  # never let one bad queue entry stop the queue
                print(f"scheduler: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self.stopped.set()


SCHEDULER = Scheduler()


def shutdown() -> None:
    """The app is closing: the scheduler and the standby stop; runs that train go on (they are the person's)."""
    SCHEDULER.stop()
    STANDBY.stop()


def _sigterm_to_exit(*_):  # `kill APP` ends the app through its normal exit, so the standby goes too
    raise SystemExit(0)


_exit_handlers = []


def install_exit_handlers() -> None:
    if _exit_handlers:
        return
    import atexit
    _exit_handlers.append(atexit.register(shutdown))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_to_exit)
