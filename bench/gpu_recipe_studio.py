"""Benchmark 2: the same recipe launched through the studio's worker, exactly as the UI launches it.

    python bench/gpu_recipe_studio.py --model /tmp/studio-bench/qwen3-4b --data /tmp/studio-bench/chat.jsonl \
        --warmup 4 --steps 14 --out result.json

Writes config.yaml through studio.config.RunConfig (chapter_recipe() with model.name = the local
folder, data.source="file", data.path = the .jsonl, train.max_steps = --steps), creates the run
folder and starts `python -m studio.train RUN_DIR` with studio.runs.create_run/launch (what the
Train tab's Start does), waits for a final state, then reads RUN_DIR/metrics.jsonl ("log" events:
time, tokens_seen) and status.json (memory figures). Steady tokens/s: bench.gpu_common.steady, the
same definition as the bare script's. --load-in-4bit/--micro-batch/--accum/--gc override the recipe;
--preset applies studio.fit.pick() for this GPU instead.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

T_START = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gpu_common as C  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--load-in-4bit", type=int, default=None)
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--accum", type=int, default=None)
    ap.add_argument("--gc", default=None, choices=["unsloth", "true", "false"])
    ap.add_argument("--preset", action="store_true", help="apply studio.fit.pick() for this GPU")
    ap.add_argument("--free-gb", type=float, default=None, help="with --preset: instead of nvidia-smi's figure")
    ap.add_argument("--runs-dir", default=os.environ.get("BENCH_TMP", "/tmp/studio-bench") + "/runs")
    ap.add_argument("--timeout", type=float, default=540)
    ap.add_argument("--name", default="2. studio worker (UI path)")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)

    os.environ["STUDIO_RUNS_DIR"] = a.runs_dir  # before studio.runs reads it
    from studio import runs
    from studio.config import chapter_recipe

    cfg = chapter_recipe()
    cfg.run_name = "bench-" + Path(a.model).name
    cfg.model.name = str(Path(a.model).resolve())
    cfg.data.source, cfg.data.path = "file", str(Path(a.data).resolve())
    cfg.train.max_steps = a.steps
    preset = None
    if a.preset:
        from studio import fit
        from transformers import AutoTokenizer  # the rows' lengths, as the Dataset tab can measure them
        tok = AutoTokenizer.from_pretrained(cfg.model.name)
        rows = [json.loads(x) for x in Path(a.data).read_text(encoding="utf-8").splitlines() if x.strip()]
        lengths = [x + 1 for x in C.token_lengths(tok, rows, cfg.train.max_length)]
        free = a.free_gb or fit.free_gpu_gb()
        preset = fit.pick_for_run(cfg, free_gb=free, lengths=lengths)
        print(f"preset for {free:.1f} GiB free: {preset.to_dict()}")
        fit.apply(cfg, preset)
    if a.load_in_4bit is not None:
        cfg.model.load_in_4bit = bool(a.load_in_4bit)
    if a.micro_batch is not None:
        cfg.train.per_device_train_batch_size = a.micro_batch
    if a.accum is not None:
        cfg.train.gradient_accumulation_steps = a.accum
    if a.gc is not None:
        cfg.lora.use_gradient_checkpointing = a.gc

    run_dir = runs.create_run(cfg)
    t0 = time.time()
    pid = runs.launch(run_dir)

    def _term(signum, frame):  # an outer `timeout` must not leave the worker (its own session) on the GPU
        runs.kill(run_dir)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, _term)
    status = {}
    while time.time() - t0 < a.timeout:
        status = runs.view(run_dir)
        if status.get("state") in runs.FINAL_STATES:
            break
        time.sleep(0.25)
    else:
        runs.kill(run_dir)
        status = runs.view(run_dir)
        status["bench_timeout"] = True
    wall = time.time() - t0

    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    logs = [e for e in tail.logs]
    ev = {e["event"]: e for e in tail.events}
    res = {"name": a.name, "runner": "studio", "model": a.model, "run_dir": str(run_dir), "pid": pid,
           "load_in_4bit": cfg.model.load_in_4bit, "micro_batch": cfg.train.per_device_train_batch_size,
           "accum": cfg.train.gradient_accumulation_steps, "gc": cfg.lora.use_gradient_checkpointing,
           "max_length": cfg.train.max_length, "steps": a.steps, "warmup": a.warmup,
           "state": status.get("state"), "error": status.get("error"), "hint": status.get("hint"),
           "status": {k: v for k, v in status.items() if k != "traceback"},
           "adapter_saved": sorted(p.name for p in (run_dir / "adapter").glob("*")) if (run_dir / "adapter").is_dir()
           else [], "events": sorted({e["event"] for e in tail.events}), "wall_s": wall,
           "logs": [{"step": e["step"], "time": e["time"], "tokens": e.get("tokens_seen"),
                     "tokens_per_s": e.get("tokens_per_s"), "loss": e.get("loss"),
                     "peak_reserved_gb": e.get("peak_reserved_gb")} for e in logs],
           "start_reserved_gb": ev.get("memory_start", {}).get("start_reserved_gb"),
           "peak_reserved_gb": status.get("peak_reserved_gb"), "config": cfg.to_dict()}
    if preset is not None:
        res["preset"] = preset.to_dict()
    if logs:
        try:
            res.update(C.steady(res["logs"], a.warmup))
        except ValueError as exc:
            res["steady_error"] = str(exc)
    # phases as the worker saw them (event times)
    t_begin = ev.get("train_begin", {}).get("time")
    if t_begin:
        res["startup_s"] = t_begin - t0
    C.save_result(res, a.out)
    print(C.table([res], C.RESULT_COLUMNS))
    mem = {k: status.get(k) for k in ("gpu_name", "peak_reserved_gb", "peak_training_gb", "peak_pct", "total_gb",
                                      "train_runtime")}
    print(f"state={res['state']} adapter={res['adapter_saved']} events={res['events']} status={json.dumps(mem)}")
    if res["state"] != "completed":
        print(runs.log_tail(run_dir, 40))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
