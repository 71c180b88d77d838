"""Sweeps: a small grid over one or two fields of a run's config (learning rate x r, say), queued as one run per
combination through jobs.start_many, so the owner checks, the deployment's caps and the person's queue limit apply
to every run, and a sweep that does not fit is refused before anything is queued.

The runs of a sweep differ only in the swept fields, so those that leave the prepared rows as they are (anything
but max_length and what picks the rows: batch, accumulation, max_steps, seed) hit the same entry of the prepared
rows' cache (studio/prepare.py cache_key): the first run prepares, the others say `prepared ... reused: true`.

A sweep is remembered in runs/.sweeps/<id>.json (owner, fields, values, runs), written once when it is queued. Its
ranking reads each run's metrics: best eval loss, or the final train loss where the runs hold out no rows.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path

from studio import jobs, runs
from studio.config import RunConfig, _coerce

# The fields a sweep can vary: config key -> the short name that run names carry.
FIELDS = {
    "train.learning_rate": "lr", "lora.r": "r", "lora.lora_alpha": "alpha", "lora.lora_dropout": "dropout",
    "train.max_steps": "steps", "train.num_train_epochs": "epochs", "train.warmup_steps": "warmup",
    "train.weight_decay": "wd", "train.lr_scheduler_type": "sched", "train.per_device_train_batch_size": "batch",
    "train.gradient_accumulation_steps": "accum", "train.max_length": "len", "train.seed": "seed",
    "lora.random_state": "init",
}
# Fields that change which rows are prepared, or how: each of their values prepares its rows once.
CHANGES_PREPARATION = ("train.max_length", "train.per_device_train_batch_size", "train.gradient_accumulation_steps",
                       "train.max_steps", "train.seed")
MAX_RUNS = 12
SWEEPS_DIR = ".sweeps"


def parse_values(field: str, text: str) -> list:
    """'2e-4, 5e-4 1e-3' -> [0.0002, 0.0005, 0.001], each checked as the config checks that field; repeats dropped."""
    if field not in FIELDS:
        raise jobs.Refused("err_sweep_field", field=field)
    default = RunConfig().to_flat([field])[0]
    values = []
    for word in str(text or "").replace(",", " ").split():
        try:
            value = _coerce(word, default, field)
        except ValueError:
            raise jobs.Refused("err_sweep_value", field=field, value=word[:40]) from None
        if value not in values:
            values.append(value)
    if not values:
        raise jobs.Refused("err_sweep_no_values", field=field)
    return values


def grid(cfg: RunConfig, axes: list[tuple[str, list]]) -> list[RunConfig]:
    """One config per combination of the axes' values, named after them ('base-lr0.0005-r8'), in order."""
    fields = [f for f, _ in axes]
    if not axes:
        raise jobs.Refused("err_sweep_empty")
    if len(set(fields)) != len(fields):
        raise jobs.Refused("err_sweep_same_field", field=fields[0])
    size = math.prod(len(v) for _, v in axes)
    if size > MAX_RUNS:
        raise jobs.Refused("err_sweep_size", n=size, most=MAX_RUNS)
    out = []
    for combo in itertools.product(*(values for _, values in axes)):
        run = RunConfig.from_dict(cfg.to_dict())  # a deep copy
        for field, value in zip(fields, combo):
            section, name = field.split(".")
            setattr(getattr(run, section), name, value)
        run.run_name = "-".join([cfg.run_name] + [f"{FIELDS[f]}{_short(v)}" for f, v in zip(fields, combo)])
        out.append(run)
    return out


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def shares_preparation(fields: list[str]) -> bool:
    """Whether every run of a sweep over `fields` prepares the same rows (one preparation, reused)."""
    return not any(f in CHANGES_PREPARATION for f in fields)


# ---------------------------------------------------------------- queue and remember

def sweeps_dir() -> Path:
    path = runs.runs_root() / SWEEPS_DIR
    path.mkdir(exist_ok=True)
    return path


def start(cfg: RunConfig, axes: list[tuple[str, list]], user, token: str | None = None) -> dict:
    """Queue the sweep's runs (all or none) and remember the sweep. Returns its record."""
    configs = grid(cfg, axes)
    statuses = jobs.start_many(configs, user, token)
    record = {"owner": user.name, "name": cfg.run_name, "axes": [[f, list(v)] for f, v in axes],
              "runs": [s["run_id"] for s in statuses], "created_at": time.time()}
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{runs.sanitize_name(cfg.run_name)}"
    for n in range(1, 100):
        sweep_id = base if n == 1 else f"{base}-{n}"
        try:  # O_EXCL: two sweeps started in the same second get two files
            fd = os.open(sweeps_dir() / f"{sweep_id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"id": sweep_id, **record}, f, ensure_ascii=False)
        return {"id": sweep_id, **record}
    raise RuntimeError("could not name the sweep")


def list_sweeps(user) -> list[dict]:
    """The person's sweeps (an admin: everyone's), newest first."""
    out = []
    for path in sorted(sweeps_dir().glob("*.json"), reverse=True):
        record = runs.read_json(path)
        if record.get("runs") and user is not None and user.can_see(record.get("owner")):
            out.append(record)
    return out


def open_sweep(sweep_id: str, user) -> dict:
    """A sweep's record, if it exists and `user` may see it; the same refusal either way."""
    record = next((r for r in list_sweeps(user) if r["id"] == sweep_id), None)
    if record is None:
        raise jobs.Refused("err_no_such_sweep", sweep=str(sweep_id)[:80])
    return record


# ---------------------------------------------------------------- ranking

def run_result(run_dir: Path) -> dict:
    """What ranks a run: its best eval loss (the adapter it saved is that checkpoint), final train loss, curves."""
    status = runs.view(run_dir)
    events = runs.read_metrics(run_dir).events
    evals = [e for e in events if e.get("event") == "eval"]
    trained = [e for e in evals if e.get("step", 0) > 0]  # step 0: the base model
    logs = [e for e in events if e.get("event") == "log" and e.get("loss") is not None]
    best = status.get("best_eval_loss")
    if best is None and trained:
        best = min(e["eval_loss"] for e in trained)
    final = status.get("train_loss") if status.get("train_loss") is not None else (logs[-1]["loss"] if logs else None)
    return {"id": run_dir.name, "state": status.get("state"), "best_eval_loss": best, "final_train_loss": final,
            "last_loss": logs[-1]["loss"] if logs else None, "evals": evals, "logs": logs,
            "has_adapter": (run_dir / "adapter" / "adapter_config.json").is_file()}


def ranking(record: dict, user) -> dict:
    """The sweep's runs, best first: by best eval loss when its runs evaluate, else by final train loss (`metric`
    says which). Runs with no figure yet (queued, running, failed early) come last, in queue order."""
    results = []
    for run_id in record["runs"]:
        try:
            run_dir = jobs.open_run(run_id, user)
        except jobs.Refused:
            continue  # deleted since
        cfg = RunConfig.load(run_dir / "config.yaml")
        result = run_result(run_dir)
        result["values"] = dict(zip([f for f, _ in record["axes"]], cfg.to_flat([f for f, _ in record["axes"]])))
        results.append(result)
    metric = "eval" if any(r["best_eval_loss"] is not None for r in results) else "train"
    figure = "best_eval_loss" if metric == "eval" else "final_train_loss"
    done = [r for r in results if r[figure] is not None and r["state"] in ("completed", "stopped")]
    done.sort(key=lambda r: r[figure])
    rest = [r for r in results if r not in done]
    best = next((r["id"] for r in done if r["has_adapter"]), None)
    return {"metric": metric, "rows": done + rest, "best": best, "ranked": len(done)}


MESSAGES = {
    "err_sweep_field": ("'{field}' cannot be swept.", "'{field}'은(는) 스윕할 수 없는 항목입니다."),
    "err_sweep_value": ("{field}: '{value}' is not a value of this field.",
                        "{field}: '{value}'은(는) 이 항목에 맞는 값이 아닙니다."),
    "err_sweep_no_values": ("Give at least one value for {field}.", "{field}에 값을 하나 이상 넣으세요."),
    "err_sweep_empty": ("Pick a field and its values for the sweep.", "스윕할 항목과 값을 고르세요."),
    "err_sweep_same_field": ("Pick two different fields ({field} twice).", "서로 다른 두 항목을 고르세요 ({field}가 두 번)."),
    "err_sweep_size": ("A sweep of {n} runs is too large: at most {most}.", "실행 {n}개짜리 스윕은 너무 큽니다: 최대 {most}개."),
    "err_no_such_sweep": ("No such sweep: {sweep}.", "그런 스윕이 없습니다: {sweep}."),
    "err_queue_full": ("This server lets one person have {limit} run(s) waiting or training; you have {have}, and "
                       "this would add {asked}. Nothing was queued.",
                       "이 서버에서는 한 사람이 대기 중이거나 훈련 중인 실행을 {limit}개까지 둘 수 있습니다. 지금 {have}개가 "
                       "있고 {asked}개를 더하려 했습니다. 아무것도 대기열에 넣지 않았습니다."),
}
