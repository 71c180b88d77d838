"""Runs: three concerns, one module each.

  folder.py    the run-folder protocol both sides speak (the worker writes, the app reads): files, locks, view
  queue.py     the queue of Starts and Resumes (files in runs/.queue/), tokens in memory, dispatch
  launcher.py  who starts and ends workers: launch (fresh or through the standby), kill, the scheduler

The worker (studio/train.py) uses folder.py only. `from studio import runs` gives the names below.
"""
from studio.runs.folder import (ACTIVE_STATES, FINAL_STATES, LOCAL_OWNER, Busy, MetricsTail, create_run,
                                delete_run, gpu_lock_path, last_checkpoint, last_log, list_runs, log_tail,
                                machine_holder, new_run_dir, pid_alive, read_json, read_meta, read_metrics,
                                resolve_run, run_facts, runs_root, sanitize_name, take_locks, view, worker_alive,
                                write_json_atomic, write_text_atomic)
from studio.runs.launcher import (SCHEDULER, STANDBY, install_exit_handlers, kill, launch, shutdown,
                                  worker_command, worker_env)
from studio.runs.queue import cancel, dispatch, enqueue, provide_token, queue_entry, queued, request_stop

__all__ = [
    "ACTIVE_STATES", "Busy", "FINAL_STATES", "LOCAL_OWNER", "MetricsTail", "SCHEDULER", "STANDBY", "cancel",
    "create_run", "delete_run", "dispatch", "enqueue", "gpu_lock_path", "install_exit_handlers", "kill",
    "last_checkpoint", "last_log", "launch", "list_runs", "log_tail", "machine_holder", "new_run_dir",
    "pid_alive", "provide_token", "queue_entry", "queued", "read_json", "read_meta", "read_metrics",
    "request_stop", "resolve_run", "run_facts", "runs_root", "sanitize_name", "shutdown", "take_locks", "view",
    "worker_alive", "worker_command", "worker_env", "write_json_atomic", "write_text_atomic",
]
