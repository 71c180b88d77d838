"""How long a run will take on this machine, said before Start, and how long it took.

A finished run leaves its measured speed in an index beside the runs (runs/.throughput.json), under a key of
the device, the model's shape and the setting that decides speed (4-bit, micro-batch, checkpointing, packing,
GPUs): `remember(run_dir)`, called by the worker when it ends. What is kept of each run:
    tokens_per_s  training tokens (non-padding) per second between log events, evaluations left out
    eval_s        what one evaluation added (eval pass, the fixed prompts' answers, the checkpoint it saves)
    startup_s     from the worker's start to the first step (imports, model load, data, prepare, trainer set-up)
    fixed_s       the rest of the run that is not tokens or evaluations (the first step's warm-up, the save)
so that the run it came from is reproduced exactly: startup + fixed + tokens / tokens_per_s + evaluations x eval_s.

`plan(cfg, ...)` (the Train tab, and jobs.start, which keeps it in the run folder as estimate.json) sums the same
terms for the next run (each term the median of the newest three runs of the key: a shared machine's load
changes): its tokens are its rows (max_steps x rows per step, or epochs over the rows) times their mean length,
from the fit model's seeded sample of token lengths. With no earlier run of that key here, the speed
is a guess: on a GPU the fit model's tokens/s (studio/fit.py, measured on an H100), on a CPU a FLOPs figure;
scaled by how far the guess was off for an earlier run on this device, when there is one.

Accuracy: bench/estimate_accuracy.py (the bundled default on a CPU; the chapter's recipe on a GPU), docs/benchmarks.md.
"""
from __future__ import annotations

import fcntl
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

INDEX_FILE = ".throughput.json"
ESTIMATE_FILE = "estimate.json"  # in a run folder: what the Train tab said before Start (written by jobs.start)
KEEP = 5                          # runs remembered per key (the newest)
# Guesses, where this machine has no run of the key yet. CPU: seconds per step of Python and framework
# overhead plus FLOPs at a sustained rate per core (set from the bundled tiny model on 2 cores: 0.107 s a step of
# 382 tokens, 3,569 tokens/s).
CPU_FLOPS_PER_CORE = 25e9
CPU_STEP_S = 0.08
GUESS_STARTUP_S = {"cpu": 8.0, "gpu": 25.0}
GPU_LOAD_S_PER_GB = 4.0            # reading the weights from disk onto the GPU
GUESS_FIXED_S = {"cpu": 2.0, "gpu": 15.0}  # first-step warm-up (compilation on a GPU) and the save
DECODE_S_PER_TOKEN = {"cpu": 0.004, "gpu": 0.03}  # the fixed prompts' answers at each evaluation
SAMPLE_TOKENS = 48                 # studio.train.make_sample_callback's max_new_tokens


# ---------------------------------------------------------------- the key

@lru_cache(maxsize=1)
def gpu_name() -> str | None:
    """The first visible GPU's name (asked once: the Train tab asks on every change of the form)."""
    from studio import gpu
    row = gpu.nvidia_smi("name")
    return row[0] if row and row[0] else None


def cpu_cores() -> int:
    """The cores this process may use (a container's share, not the host's): the estimate, the Model tab's device
    line and prepare's process count all count these."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def device_label() -> str:
    """What this machine trains on, as the index keys it: the GPU's name, or the CPU and its cores."""
    name = gpu_name()
    if name:
        return name
    return f"CPU x{cpu_cores()}"


def is_gpu(device: str) -> bool:
    return not device.startswith("CPU")


def shape_key(model_config: dict | None, model_name: str) -> str:
    """Models of the same shape train at the same speed: layers x hidden / intermediate / vocabulary."""
    if not model_config:
        return f"name:{model_name}"
    from studio import fit
    try:
        s = fit.shape(model_config)
    except (KeyError, TypeError, ValueError):
        return f"name:{model_name}"
    return f"{s['layers']}x{s['h']}/{s['inter']}/{s['vocab']}"


def setting(cfg, device: str) -> dict:
    """What decides tokens/s besides the shape (learning rate, r, steps do not)."""
    from studio.distributed import world_plan
    gpu = is_gpu(device)
    return {"load_in_4bit": bool(cfg.model.load_in_4bit and gpu), "micro_batch": cfg.train.per_device_train_batch_size,
            "gradient_checkpointing": cfg.lora.use_gradient_checkpointing, "packing": bool(cfg.train.packing),
            "world": world_plan(cfg.distributed).world_size}


def key(device: str, shape: str, settings: dict) -> str:
    return "|".join([device, shape] + [f"{k}={settings[k]}" for k in sorted(settings)])


# ---------------------------------------------------------------- what a finished run measured

def measure(run_dir: Path) -> dict | None:
    """The figures of one finished run (see the module docstring), or None when it has too few to tell."""
    from studio.runs import folder
    run_dir = Path(run_dir)
    status = folder.read_json(run_dir / "status.json")
    events = folder.read_metrics(run_dir).events
    begin = next((e for e in events if e.get("event") == "train_begin"), None)
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    logs = [e for e in events if e.get("event") == "log" and e.get("tokens_seen") is not None]
    if begin is None or end is None or len(logs) < 3 or status.get("resume"):
        return None  # a Resume's start-up and tokens are not a whole run's
    eval_steps = {e["step"] for e in events if e.get("event") == "eval" and e.get("step", 0) > 0}
    steady_tokens = steady_time = 0.0
    eval_spans = []
    for a, b in zip(logs, logs[1:]):
        tokens, seconds = b["tokens_seen"] - a["tokens_seen"], b["time"] - a["time"]
        if tokens <= 0 or seconds <= 0:
            continue
        if any(a["step"] <= step < b["step"] for step in eval_steps):  # an evaluation ran between a and b
            eval_spans.append((tokens, seconds))
        else:
            steady_tokens += tokens
            steady_time += seconds
    if steady_time <= 0:
        return None
    rate = steady_tokens / steady_time
    eval_s = statistics.mean(max(0.0, s - t / rate) for t, s in eval_spans) if eval_spans else None
    base_eval_s = next((p["seconds"] for p in status.get("phases") or [] if p["phase"] == "base_eval"), 0.0)
    started = status.get("started_at") or begin["time"]
    tokens_total = end.get("tokens_seen") or logs[-1]["tokens_seen"]
    loop_s = end["time"] - begin["time"]
    fixed_s = loop_s - tokens_total / rate - len(eval_steps) * (eval_s or 0.0)
    dataset = next((e for e in events if e.get("event") == "dataset"), {})
    return {"run": run_dir.name, "at": round(end["time"], 1), "tokens_per_s": round(rate, 2),
            "startup_s": round(max(0.0, begin["time"] - started - base_eval_s), 2), "fixed_s": round(max(0.0, fixed_s), 2),
            "eval_s": round(eval_s, 3) if eval_s is not None else None, "base_eval_s": round(base_eval_s, 2),
            "eval_rows": dataset.get("eval_rows") or 0, "tokens": tokens_total, "steps": end.get("step") or 0,
            "total_s": round(end["time"] - started, 2), "device": end.get("gpu_name") if end.get("device") == "cuda"
            else None}


def index_path() -> Path:
    from studio.runs import runs_root
    return runs_root() / INDEX_FILE


def read_index() -> dict:
    from studio.runs.folder import read_json
    return read_json(index_path()).get("entries", {})


def remember(run_dir: Path) -> dict | None:
    """Put a finished run's figures into the index (once per run; concurrent writers wait for each other)."""
    from studio.config import RunConfig
    from studio.runs import folder
    run_dir = Path(run_dir)
    figures = measure(run_dir)
    if figures is None:
        return None
    from studio import fit
    cfg = RunConfig.load(run_dir / "config.yaml")
    device = figures.pop("device") or device_label()
    model_config = fit.model_config_for(cfg.model.name)
    _, per_step, _ = run_shape(cfg, 1)
    mean_len = figures["tokens"] / max(1, figures["steps"]) / per_step
    figures["guess_tokens_per_s"] = round(guess_rate(cfg, model_config, mean_len, device), 2)  # calibration()
    the_key = key(device, shape_key(model_config, cfg.model.name), setting(cfg, device))
    path = index_path()
    fd = os.open(path.with_name(INDEX_FILE + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = read_index()
        kept = [s for s in entries.get(the_key, []) if s.get("run") != figures["run"]]
        entries[the_key] = sorted(kept + [figures], key=lambda s: s["at"])[-KEEP:]
        folder.write_json_atomic(path, {"version": 1, "entries": entries})
    finally:
        os.close(fd)
    return figures


# ---------------------------------------------------------------- the estimate

@dataclass
class Plan:
    seconds: float          # from the worker's start to the saved adapter
    source: str             # "history": earlier runs of this key here; "guess": the fit model's guess
    runs: int               # earlier runs it is based on (history)
    device: str
    tokens: int             # training tokens the run will see
    tokens_per_s: float
    steps: int
    evaluations: int        # evaluations while training (the base model's at step 0 not counted)
    startup_s: float
    eval_s: float           # all evaluations together, the base model's included
    fixed_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_shape(cfg, n_rows: int) -> tuple[int, int, int]:
    """(optimizer steps, rows per step, eval rows) as the worker will run them on a dataset of n_rows rows."""
    from studio import data
    from studio.distributed import world_plan
    t, d = cfg.train, cfg.data
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps * world_plan(cfg.distributed).world_size
    held = len(data.holdout(n_rows, d.eval_size, t.seed)) if d.eval_size and not d.eval_path else 0
    if t.max_steps > 0:
        steps = t.max_steps
    else:
        steps = max(1, math.ceil(t.num_train_epochs * math.ceil((n_rows - held) / per_step)))
    eval_rows = held or (data.EVAL_FILE_ROWS if d.eval_path else 0)
    return steps, per_step, eval_rows


def plan(cfg, lengths: list[int] | None, n_rows: int, model_config: dict | None = None, device: str | None = None,
         entries: dict | None = None) -> Plan:
    """The time the run `cfg` will take here. lengths: token lengths of a sample of its rows (None: every row is
    max_length long); n_rows: the dataset's rows; model_config: its config.json (default: looked up by name)."""
    from studio import fit
    device = device or device_label()
    entries = read_index() if entries is None else entries
    model_config = fit.model_config_for(cfg.model.name) if model_config is None else model_config
    t = cfg.train
    mean_len = statistics.mean(min(x, t.max_length) for x in lengths) if lengths else float(t.max_length)
    steps, per_step, eval_rows = run_shape(cfg, n_rows)
    tokens = steps * per_step * mean_len
    evaluating = bool(eval_rows)
    every = t.eval_steps or max(1, steps // 10)
    evaluations = steps // every if evaluating else 0
    prompts = len(t.sample_prompts) + min(2, eval_rows)
    settings = setting(cfg, device)
    shape = shape_key(model_config, cfg.model.name)
    seen = entries.get(key(device, shape, settings), [])
    kind = "gpu" if is_gpu(device) else "cpu"
    if seen:
        rate = statistics.median(s["tokens_per_s"] for s in seen[-3:])  # the newest: a machine's load changes
        startup = statistics.median(s["startup_s"] for s in seen[-3:])
        fixed = statistics.median(s["fixed_s"] for s in seen[-3:])
        with_eval = [s for s in seen if s.get("eval_s") is not None and s.get("eval_rows")]
        one_eval = statistics.median(s["eval_s"] * eval_rows / s["eval_rows"] for s in with_eval) if with_eval else None
        source = "history"
    else:
        guessed = guess_rate(cfg, model_config, mean_len, device)
        rate = guessed * calibration(entries, device)
        weights = fit.weights_gb(fit.shape(model_config), settings["load_in_4bit"]) if model_config else 0.0
        startup = GUESS_STARTUP_S[kind] + (GPU_LOAD_S_PER_GB * weights if kind == "gpu" else 0.0)
        fixed, one_eval, source = GUESS_FIXED_S[kind], None, "guess"
    if evaluating and one_eval is None:  # forward only (a third of a training step's work) + the answers
        one_eval = eval_rows * mean_len / (3 * rate) + prompts * SAMPLE_TOKENS * DECODE_S_PER_TOKEN[kind]
    eval_total = (evaluations + 1) * one_eval if evaluating else 0.0
    seconds = startup + fixed + tokens / rate + eval_total
    return Plan(round(seconds, 1), source, len(seen), device, int(tokens), round(rate, 1), steps, evaluations,
                round(startup, 1), round(eval_total, 1), round(fixed, 1))


def guess_rate(cfg, model_config: dict | None, mean_len: float, device: str) -> float:
    """Tokens/s before any run of this key: the fit model's (GPU) or a FLOPs figure (CPU)."""
    from studio import fit
    t = cfg.train
    if model_config is None:
        return 2000.0 if is_gpu(device) else 300.0
    if is_gpu(device):
        return fit.tokens_per_s(model_config, bool(cfg.model.load_in_4bit), t.per_device_train_batch_size,
                                cfg.lora.use_gradient_checkpointing, mean_len)
    s = fit.shape(model_config)
    batch_tokens = t.per_device_train_batch_size * mean_len
    flops = batch_tokens * (4 * s["params"] + 6 * s["layers"] * s["q"] * mean_len / 2)
    return batch_tokens / (CPU_STEP_S + flops / (CPU_FLOPS_PER_CORE * cpu_cores()))


def calibration(entries: dict, device: str) -> float:
    """How far the guess was off on this device (measured / guessed tokens/s of its newest remembered run): 1.0
    with none. The key carries what the guess needs."""
    newest = None
    for k, seen in entries.items():
        if k.split("|", 1)[0] == device and seen and (newest is None or seen[-1]["at"] > newest[1][-1]["at"]):
            newest = (k, seen)
    if newest is None or not newest[1][-1].get("guess_tokens_per_s"):
        return 1.0
    s = newest[1][-1]
    return max(0.1, min(10.0, s["tokens_per_s"] / s["guess_tokens_per_s"]))


# ---------------------------------------------------------------- before Start (the Train tab, jobs.start)

_lengths: dict[tuple, list[int] | None] = {}


def _lengths_key(cfg, ds) -> tuple:
    return ds.name, len(ds), cfg.model.name, cfg.data.template, cfg.train.seed, cfg.data.source, cfg.data.path


def sampled_lengths(cfg, ds, token: str | None = None) -> list[int] | None:
    """Token lengths of a seeded sample of the dataset's rows, as the fit model samples them (kept per data,
    model, template and seed: the Train tab asks on every change of the form)."""
    from studio import prepare, templates
    the_key = _lengths_key(cfg, ds)
    if the_key not in _lengths:
        try:
            tok = templates.TOKENIZERS.get(cfg.model.name, cfg.data.template, token)
            _lengths[the_key] = prepare.sample_lengths(ds, tok, n=256, seed=cfg.train.seed)
        except Exception:  # no tokenizer here (offline Hub), a row the template refuses: plan for max_length
            _lengths[the_key] = None
        if len(_lengths) > 32:
            _lengths.pop(next(iter(_lengths)))
    return _lengths[the_key]


def plan_for_run(cfg, ds, token: str | None = None) -> Plan:
    return plan(cfg, sampled_lengths(cfg, ds, token), len(ds))


def plan_shown(cfg, ds) -> Plan | None:
    """The plan the Train tab showed for this config: only where this process sampled these rows' lengths already
    (showing the estimate does), so that Start never waits for a tokenizer to load; None otherwise."""
    the_key = _lengths_key(cfg, ds)
    return plan(cfg, _lengths[the_key], len(ds)) if the_key in _lengths else None


def save_plan(run_dir: Path, estimate: Plan) -> None:
    from studio.runs.folder import write_json_atomic
    write_json_atomic(Path(run_dir) / ESTIMATE_FILE, {**estimate.to_dict(), "made_at": time.time()})


def read_plan(run_dir: Path) -> dict:
    from studio.runs.folder import read_json
    return read_json(Path(run_dir) / ESTIMATE_FILE)


def versus(estimate: dict, actual: float, say, lang: str = "en") -> str:
    """'Time: estimated 40 s before Start, took 35 s (-12%).'"""
    return say("est_vs_actual", estimate=duration(estimate["seconds"], lang), actual=duration(actual, lang),
               diff=100 * (actual - estimate["seconds"]) / estimate["seconds"])


def actual_seconds(status: dict) -> float | None:
    """A completed run's time from its worker's start to its end. None for a resumed run (it had several starts)
    and for one that did not run to its end (stopped at step 13 of 40 says nothing of the estimate)."""
    if status.get("state") != "completed" or status.get("resume") or not status.get("started_at") \
            or not status.get("ended_at"):
        return None
    return status["ended_at"] - status["started_at"]


# ---------------------------------------------------------------- words (studio/ui/i18n.py merges them)

def duration(seconds: float, lang: str = "en") -> str:
    """'42 s', '3 min', '1 h 20 min'."""
    s = max(1, int(round(seconds)))
    if s < 90:
        return f"{s} s" if lang == "en" else f"{s}초"
    m = round(s / 60)
    if m < 60:
        return f"{m} min" if lang == "en" else f"{m}분"
    return (f"{m // 60} h {m % 60} min" if lang == "en" else f"{m // 60}시간 {m % 60}분")


MESSAGES = {
    "est_history": ("**Time:** about **{time}** on this {where} ({device}), from {runs} earlier run(s) of this model "
                    "shape and setting here: {tokens:,} tokens at {rate:,.0f} tokens/s, {startup} to start{evals}.",
                    "**시간:** 이 {where}({device})에서 약 **{time}**. 여기서 같은 모델 형태·설정으로 한 이전 실행 "
                    "{runs}개 기준: 토큰 {tokens:,}개를 초당 {rate:,.0f}개로, 시작까지 {startup}{evals}."),
    "est_guess": ("**Time:** no earlier run of this shape here: **~{time}** from the fit model's guess ({tokens:,} "
                  "tokens at ~{rate:,.0f} tokens/s, {startup} to start{evals}). The first run teaches the studio this "
                  "{where}'s speed.",
                  "**시간:** 여기서 이 형태로 한 실행이 아직 없습니다: 적합 모델의 추정으로 **약 {time}** (토큰 "
                  "{tokens:,}개를 초당 약 {rate:,.0f}개로, 시작까지 {startup}{evals}). 첫 실행이 이 {where}의 속도를 "
                  "알려 줍니다."),
    "est_evals": (", {n} evaluations {time}", ", 평가 {n}번 {time}"),
    "est_where_gpu": ("GPU", "GPU"),
    "est_where_cpu": ("CPU", "CPU"),
    "est_none": ("**Time:** no estimate: {why}", "**시간:** 추정할 수 없습니다: {why}"),
    "est_vs_actual": ("Time: estimated {estimate} before Start, took {actual} ({diff:+.0f}%).",
                      "시간: 시작 전 추정 {estimate}, 실제 {actual} ({diff:+.0f}%)."),
}
