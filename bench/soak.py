"""Soak the launch path (issue 16): for N minutes, several clients at once Start, Stop, Resume, cancel and
reload, while the soak itself kills workers and restarts the app; invariants are checked all the way through.

    .venv/bin/python bench/soak.py --minutes 10 [--clients 3] [--seed 1]

The app is started exactly as `make run` starts it (`python app.py`, in its own process, standby and
concurrency as shipped), on the bundled model, in a fresh runs folder. Invariants:
  - every accepted run reaches a final state, with a cause a person can read (a known code, said in words);
  - never two workers (no two run folders with a held lock, sampled every 0.1 s from outside the app);
  - no process is left after the app exits (once the run it leaves behind has ended);
  - no run folder lost or corrupted (config.yaml and meta.json of every accepted run still read);
  - the queue survives a restart (what was queued before it is queued, live or final after it).
Prints the counts: runs started, completed, stopped, failed and why, actions and refusals. Exit status 1 on any
violation. tests/test_soak.py runs it for a short while in the slow lane.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

READABLE_FAILURES = {"err_killed_oom", "err_killed", "err_vanished", "err_exit_code"}  # what the soak itself causes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def studio_processes(runs_dir: str) -> list[int]:
    """Workers and standbys of this soak's app (other studios on this machine are not ours to count)."""
    import psutil
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if "studio.train" in " ".join(p.info["cmdline"] or []) and \
                    p.environ().get("STUDIO_RUNS_DIR") == runs_dir and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


class App:
    """`python app.py` in its own process, as `make run` runs it."""

    def __init__(self, runs_dir: str, log: Path):
        self.runs_dir, self.log, self.proc, self.port = runs_dir, log, None, None

    def start(self, timeout: float = 180) -> str:
        from gradio_client import Client
        self.port = free_port()
        env = {**os.environ, "STUDIO_RUNS_DIR": self.runs_dir, "GRADIO_SERVER_PORT": str(self.port),
               "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"the app exited: {self.log.read_text()[-3000:]}"
            try:
                Client(url, verbose=False)
                return url
            except Exception:
                time.sleep(0.5)
        raise TimeoutError("the app did not answer")

    def stop(self, hard: bool = False) -> None:
        self.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        self.proc.wait(timeout=60)


class Soak:
    def __init__(self, minutes: float, clients: int, seed: int):
        self.minutes, self.n_clients, self.rng = minutes, clients, random.Random(seed)
        self.runs_dir = tempfile.mkdtemp(prefix="soak-runs-")
        os.environ["STUDIO_RUNS_DIR"] = self.runs_dir  # our own reads of the folders (studio.runs) look here
        self.app = App(self.runs_dir, Path(self.runs_dir) / "app.log")
        self.url = None
        self.accepted: dict[str, str] = {}  # run id -> client
        self.actions, self.refusals, self.violations = Counter(), Counter(), []
        self.lock, self.stop_clients, self.app_up = threading.Lock(), threading.Event(), threading.Event()
        self.app_lock = threading.Lock()  # held while the soak itself stops and starts the app
        self.max_workers = 0

    # ------------------------------------------------------------ invariants
    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)
        print("VIOLATION:", text, flush=True)

    def live_workers(self) -> list[str]:
        from studio import runs
        return [p.name for p in Path(self.runs_dir).iterdir() if p.is_dir() and runs.worker_alive(p)]

    def monitor(self) -> None:
        while not self.stop_clients.is_set():
            live = self.live_workers()
            self.max_workers = max(self.max_workers, len(live))
            if len(live) > 1:
                self.violation(f"two workers at once: {live}")
            self.app_alive()
            time.sleep(0.1)

    def app_alive(self) -> None:
        """The app ends only when the soak ends it; if it ended by itself, that is a violation, and it is started
        again so that the queue can drain."""
        if self.app_up.is_set() and self.app.proc is not None and self.app.proc.poll() is not None:
            with self.app_lock:
                if self.app.proc.poll() is None or not self.app_up.is_set():
                    return
                self.violation(f"the app ended by itself (exit {self.app.proc.returncode})")
                self.app_up.clear()
                self.url = self.app.start()
                self.app_up.set()

    def folders_intact(self) -> None:
        from studio import runs
        from studio.config import RunConfig
        for run_id in list(self.accepted):
            run_dir = Path(self.runs_dir) / run_id
            try:
                RunConfig.load(run_dir / "config.yaml")
                assert runs.read_meta(run_dir).get("owner")
            except Exception as exc:
                self.violation(f"{run_id}: folder lost or corrupted ({exc})")

    # ------------------------------------------------------------ what people do
    def client_loop(self, name: str) -> None:
        from gradio_client import Client

        from studio import runs
        client = None
        mine: list[str] = []
        while not self.stop_clients.is_set():
            if not self.app_up.wait(1):
                continue
            try:
                if client is None:
                    client = Client(self.url, verbose=False)
                action = self.rng.choices(["start", "stop", "resume", "reload", "wait"], [4, 2, 1, 2, 3])[0]
                if action == "start":
                    unfinished = [r for r in mine if runs.view(Path(self.runs_dir) / r).get("state")
                                  not in runs.FINAL_STATES]
                    if len(unfinished) >= 2:  # a person waits for their runs before queueing more
                        time.sleep(1)
                        continue
                    cfg = client.predict(recipe="bundled", api_name="/default_config").replace(
                        "max_steps: 150", f"max_steps: {self.rng.choice([3, 6, 30])}")
                    status = client.predict(config_yaml=cfg, api_name="/start_training")
                    with self.lock:
                        self.accepted[status["run_id"]] = name
                    mine.append(status["run_id"])
                elif action in ("stop", "resume") and mine:
                    states = {r: runs.view(Path(self.runs_dir) / r).get("state") for r in mine[-6:]}
                    wanted = ("running", "starting") if action == "stop" else ("stopped", "failed")
                    pick = [r for r, st in states.items() if st in wanted] or list(states)
                    api = "/stop_training" if action == "stop" else "/resume_training"
                    client.predict(run_id=self.rng.choice(pick), api_name=api)
                elif action == "reload":  # a page reload asks for the list and each run's status anew
                    client = Client(self.url, verbose=False)
                    for row in client.predict(api_name="/list_runs")[:5]:
                        client.predict(run_id=row["id"], api_name="/training_status")
                else:
                    time.sleep(self.rng.uniform(0.5, 3))
                    continue
                with self.lock:
                    self.actions[action] += 1
            except Exception as exc:  # a refusal (a run already queued, no checkpoint) or the app restarting
                text = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
                with self.lock:
                    self.refusals[text] += 1
                if not self.app_up.is_set() or "Connect" in type(exc).__name__ or "connect" in text.lower():
                    client = None
                time.sleep(0.3)

    def chaos(self) -> None:
        """The soak's own hand: kill the live worker now and then, restart the app (gently or not)."""
        from studio import runs
        while not self.stop_clients.wait(self.rng.uniform(15, 35)):
            what = self.rng.choice(["kill", "restart", "restart_hard", "nothing"])
            if what == "kill":
                live = self.live_workers()
                if live:
                    runs.kill(Path(self.runs_dir) / live[0])
                    self.actions["kill_worker"] += 1
            elif what.startswith("restart"):
                queued_before = [e["run"] for e in runs.queued()]
                with self.app_lock:
                    self.app_up.clear()
                    self.app.stop(hard=what == "restart_hard")
                    self.actions[what] += 1
                    time.sleep(1)
                    self.url = self.app.start()
                    self.app_up.set()
                for run_id in queued_before:  # the queue survived: queued still, or launched since
                    state = runs.view(Path(self.runs_dir) / run_id).get("state")
                    if state not in ("queued", "starting", "running", "stopping", *runs.FINAL_STATES):
                        self.violation(f"{run_id} was queued before a restart and is now {state}")

    # ------------------------------------------------------------ the whole soak
    def run(self) -> int:
        from studio import runs
        self.url = self.app.start()
        self.app_up.set()
        threads = [threading.Thread(target=self.monitor, daemon=True),
                   threading.Thread(target=self.chaos, daemon=True)]
        threads += [threading.Thread(target=self.client_loop, args=(f"client{i}",), daemon=True)
                    for i in range(self.n_clients)]
        for th in threads:
            th.start()
        time.sleep(self.minutes * 60)
        self.stop_clients.set()
        for th in threads:
            th.join(timeout=120)
        self.app_up.set()
        # Drain: the app stays up until every accepted run is final (the queue empties by itself).
        deadline = time.time() + 600
        states = {}
        while time.time() < deadline:
            states = {r: runs.view(Path(self.runs_dir) / r) for r in self.accepted}
            if all(s.get("state") in runs.FINAL_STATES for s in states.values()):
                break
            self.app_alive()
            time.sleep(1)
        self.folders_intact()
        from studio.ui import run_view
        from studio.ui.i18n import STRINGS
        causes = Counter()
        for run_id, s in states.items():
            state = s.get("state")
            if state not in runs.FINAL_STATES:
                self.violation(f"{run_id} never ended: {state}")
                continue
            if state == "failed":
                code = s.get("error_code") or ("data_error" if s.get("data_error") else None)
                text = run_view.error_text(s)
                if code not in READABLE_FAILURES or code not in STRINGS or not text.strip():
                    self.violation(f"{run_id} failed without a readable cause: {s.get('error')!r}")
                causes[f"failed: {code}"] += 1
            elif state == "stopped":
                causes["stopped" + (f" (before training: {s['stopped_in']})" if s.get("stopped_in") else "")] += 1
            else:
                causes[state] += 1
        # The app's exit leaves nothing behind (the last run ended above).
        self.app.stop()
        deadline = time.time() + 15
        while studio_processes(self.runs_dir) and time.time() < deadline:
            time.sleep(0.2)
        if studio_processes(self.runs_dir):
            self.violation(f"processes left after the app exited: {studio_processes(self.runs_dir)}")
        self.report(causes)
        return 1 if self.violations else 0

    def report(self, causes: Counter) -> None:
        print(json.dumps({"minutes": self.minutes, "clients": self.n_clients, "runs_started": len(self.accepted),
                          "by_final_state": dict(causes), "actions": dict(self.actions),
                          "refusals": dict(self.refusals.most_common(8)), "max_workers_at_once": self.max_workers,
                          "violations": self.violations}, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args(argv)
    return Soak(a.minutes, a.clients, a.seed).run()


if __name__ == "__main__":
    sys.exit(main())
