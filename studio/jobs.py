"""What a person can do with runs, checked: start (queued), resume, stop, cancel, and see the status.

The UI's handlers and the API endpoints both call these, so the same rules hold everywhere: a person acts
only on their own runs (an admin on all), and learns nothing of another person's run beyond "busy, N ahead
of you". Refusals are `Refused(code, **params)`: message codes that studio/ui/i18n.py says in either language.
"""
from __future__ import annotations

import time
from pathlib import Path

from studio import checks, config as config_mod, data, disk, models, runs
from studio.auth import User
from studio.config import ConfigError, RunConfig
from studio.limits import caps, max_queued_per_person

PREFLIGHT_ROWS = 2000  # rows checked before Start returns; the worker checks every row it uses before step 1


class Refused(Exception):
    def __init__(self, code: str, **params):
        self.code, self.params = code, params
        super().__init__(code + (f" {params}" if params else ""))


def open_run(run_id: str, user: User) -> Path:
    """The run folder, if it exists and `user` may act on it; the same refusal either way (no probing)."""
    try:
        run_dir = runs.resolve_run(run_id)
    except ValueError:
        raise Refused("err_no_such_run", run=str(run_id)[:80]) from None
    if not user.can_see(runs.read_meta(run_dir).get("owner")):
        raise Refused("err_no_such_run", run=str(run_id)[:80])
    return run_dir


def parse_config(text_or_cfg) -> RunConfig:
    if isinstance(text_or_cfg, RunConfig):
        return text_or_cfg
    try:
        return RunConfig.from_yaml(str(text_or_cfg or ""))
    except ConfigError as exc:
        raise Refused("err_config", problems=exc.problems) from None


def preflight(cfg: RunConfig, token: str | None, user: User) -> data.Dataset:
    """Everything that can be refused before a run folder exists: the form, the model, the rows it uses."""
    try:  # fails fast and clearly for a missing folder or an unreachable Hub
        context = models.load_model_config(cfg.model.name, token).get("max_position_embeddings")
    except models.ModelError as exc:
        raise Refused("err_model_load", detail=str(exc)) from None
    from studio.distributed import visible_gpus
    problems = config_mod.validate(cfg, context, visible_gpus())
    problems += [config_mod.Problem("data.drop", "err_drop_code", {"code": code, "known": ", ".join(checks.CHECKS)})
                 for code in checks.unknown_checks(cfg.data.drop)]  # data.drop names data checks (studio/checks.py)
    if problems:
        raise Refused("err_config", problems=problems)
    limits = caps()
    try:
        ds = data.DATASETS.get(cfg.data.source, cfg.data.path, cfg.data.split, cfg.data.max_rows, token,
                               data.allowed_roots(user.name))
        t = cfg.train
        rows = data.select_rows(len(ds), t.max_steps, t.per_device_train_batch_size * t.gradient_accumulation_steps,
                                t.seed)
        used = len(ds) if rows is None else len(rows)
        if limits["rows"] and used > limits["rows"]:
            raise Refused("err_cap_rows", rows=used, cap=limits["rows"])
        for i in (rows or range(len(ds)))[:PREFLIGHT_ROWS]:  # a bad row is named now, not an hour in
            try:
                ds.standardized(i)
            except data.DataError as exc:
                if not checks.covers(cfg.data.drop, ds, i, exc):  # data checks: the run leaves this row out
                    raise
    except data.DataError as exc:  # detail: English (logs, the API); the UI says `cause` in the person's language
        raise Refused("err_data", detail=str(exc), cause=exc) from None
    from studio import preference
    preference.check_start(cfg, ds, user)  # DPO/ORPO want pairs; a run to start from must be the person's own
    return ds


def start(cfg_or_yaml, user: User, token: str | None = None) -> dict:
    """Check, create the run folder, queue it; it starts at once when the machine is free."""
    return start_many([cfg_or_yaml], user, token)[0]


def start_many(configs: list, user: User, token: str | None = None) -> list[dict]:
    """Queue several runs (a sweep), in order, or none: every run passes every check, the person's room in the
    queue included, before the first is queued. Runs on the same rows, template and max_length share one data
    preparation (studio/prepare.py's cache: the first prepares, the others reuse it)."""
    if user is None:
        raise Refused("err_sign_in")
    cfgs = [parse_config(c) for c in configs]
    check_queue_room(user, len(cfgs))
    check_disk(user)
    checked = [(cfg, preflight(cfg, token or None, user)) for cfg in cfgs]
    started = []
    for cfg, ds in checked:
        run_dir = runs.create_run(cfg, owner=user.name)
        keep_estimate(run_dir, cfg, ds)
        runs.enqueue(run_dir, owner=user.name, token=token or None)
        started.append(run_dir.name)
    runs.dispatch()
    return [status(run_id, user) for run_id in started]


def check_queue_room(user: User, wanted: int) -> None:
    """A shared deployment's per-person limit on runs waiting or training (STUDIO_MAX_QUEUED_PER_PERSON).
    Checked before anything is queued; two Starts of one person in the same instant may both pass."""
    limit = max_queued_per_person()
    if not limit:
        return
    mine = sum(1 for e in runs.queued() if e.get("owner") == user.name)
    holder = runs.machine_holder()
    if holder and holder != "?" and runs.read_meta(runs.runs_root() / holder).get("owner") == user.name:
        mine += 1
    if mine + wanted > limit:
        raise Refused("err_queue_full", limit=limit, have=mine, asked=wanted)


def keep_estimate(run_dir: Path, cfg: RunConfig, ds: data.Dataset) -> None:
    """The time estimate the Train tab showed, kept in the run folder: its summary says estimate vs actual. (A
    Start from the API, where no estimate was shown, keeps none.)"""
    from studio import timing
    try:
        shown = timing.plan_shown(cfg, ds)
        if shown is not None:
            timing.save_plan(run_dir, shown)
    except Exception:  # an estimate is never a reason not to train
        pass


def resume(run_id: str, user: User, token: str | None = None) -> dict:
    """Continue from the last checkpoint (queued if the machine is busy). For a queued run that waits for its
    token (the app restarted), the token given here lets it go."""
    run_dir = open_run(run_id, user)
    if token and runs.provide_token(run_dir.name, token):
        runs.dispatch()
        return status(run_id, user)
    if not runs.last_checkpoint(run_dir):
        raise Refused("err_no_checkpoint")
    check_queue_room(user, 1)
    try:
        runs.enqueue(run_dir, resume=True, owner=user.name, token=token or None)
    except runs.Busy:
        raise Refused("err_already_running") from None
    runs.dispatch()
    return status(run_id, user)


def stop(run_id: str, user: User) -> dict:
    """Stop a live run (it saves a checkpoint and the adapter; before its first step it simply ends) or take
    a queued one out of the queue."""
    run_dir = open_run(run_id, user)
    if not runs.cancel(run_dir.name) and runs.worker_alive(run_dir):
        runs.request_stop(run_dir)
        runs.STANDBY.cancel(run_dir.name)
    return status(run_id, user)


def check_disk(user: User) -> None:
    """Before anything that writes much (Start, an export): within the person's disk budget, after the oldest
    caches and exports made room (studio/disk.py)."""
    over = disk.over_budget(user.name)
    if over:
        raise Refused(over[0], **over[1])


def delete(run_id: str, user: User) -> None:
    """Remove one of the person's runs, with its checkpoints and exports; a live run must be stopped first."""
    run_dir = open_run(run_id, user)
    runs.cancel(run_dir.name)
    try:
        runs.delete_run(run_dir)
    except runs.Busy:
        raise Refused("err_delete_live") from None


STATUS_KEYS = ("state", "phase", "progress", "phases", "step", "max_steps", "elapsed_s", "train_loss",
               "train_runtime", "error", "error_code", "error_params", "data_error", "hint", "resumable",
               "stop_reason", "stopped_in", "started_at", "ended_at", "updated_at", "traceback", "failed_rank",
               "world_size", "best_step", "best_eval_loss", "waiting_for", "needs_gb")


def status(run_id: str, user: User) -> dict:
    """training_status: the run's state, phase and progress, as plain JSON."""
    run_dir = open_run(run_id, user)
    view = runs.view(run_dir)
    out = {k: view.get(k) for k in STATUS_KEYS if view.get(k) is not None}
    out["run_id"] = run_dir.name
    last = runs.last_log(run_dir)
    if last:
        out["loss"], out["loss_step"] = last.get("loss"), last.get("step")
    if view.get("state") == "queued":
        out.update(queue_position(run_dir.name))
    return out


def queue_position(run_id: str) -> dict:
    """How many runs are ahead (the live one included) and a rough wait, never whose they are."""
    entries = [e for e in runs.queued() if e.get("waiting_for") != "token" or e["run"] == run_id]
    index = next((i for i, e in enumerate(entries) if e["run"] == run_id), len(entries))
    holder = runs.machine_holder()
    ahead = index + (1 if holder else 0)
    wait = 0.0
    known = True
    if holder and holder != "?":
        live = runs.view(runs.runs_root() / holder)
        step, total, elapsed = live.get("step") or 0, live.get("max_steps") or 0, live.get("elapsed_s") or 0
        if step and total:
            wait += elapsed / step * (total - step)
        else:
            known = False
    rates = seconds_per_step()
    for entry in entries[:index]:
        estimate = typical_duration(runs.runs_root() / entry["run"], rates)
        if estimate is None:
            known = False
        else:
            wait += estimate
    return {"position": ahead + 1, "ahead": ahead, "wait_s": round(wait) if known else None}


def seconds_per_step() -> dict[str, tuple[float, int]]:
    """Per model: (seconds a step took, steps) in the latest completed run of it (one pass over the runs)."""
    rates: dict[str, tuple[float, int]] = {}
    for row in runs.list_runs():  # newest first: the first seen wins
        if row["state"] == "completed" and row["runtime_s"] and row["step"] and row["model"] not in rates:
            rates[row["model"]] = (row["runtime_s"] / row["step"], row["step"])
    return rates


def typical_duration(run_dir: Path, rates: dict[str, tuple[float, int]]) -> float | None:
    """A queued run's expected length, from the seconds per step of the same model (an epoch run: as many
    steps as that run took)."""
    facts = runs.run_facts(run_dir)
    if facts is None or facts["model"] not in rates:
        return None
    rate, steps = rates[facts["model"]]
    return rate * (facts["max_steps"] or steps) + 10


def visible_runs(user: User) -> list[dict]:
    return runs.list_runs(owner=None if user.admin else user.name)


def wait_until(run_id: str, user: User, states=runs.FINAL_STATES, timeout: float = 600) -> dict:
    """For notebooks and tests: poll until the run reaches one of `states`."""
    deadline = time.time() + timeout
    while True:
        s = status(run_id, user)
        if s.get("state") in states or time.time() > deadline:
            return s
        time.sleep(0.5)
