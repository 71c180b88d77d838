"""How close the Train tab's time estimate is: runs started as Start starts them, estimate vs actual.

    .venv/bin/python bench/estimate_accuracy.py                      # the bundled CPU default, 6 runs (~3 min, 2 cores)
    python bench/estimate_accuracy.py --recipe chapter --model /tmp/studio-bench/qwen3-4b \\
        --data /tmp/studio-bench/chat.jsonl --plan 20,30,45               # the chapter's recipe on a GPU

Each run: the estimate as the Train tab shows it, then jobs.start (what Start does: it keeps that estimate in the
run's estimate.json), in a fresh runs folder, one after another; the actual time is the worker's, from its start to its end (status.json
started_at -> ended_at; the queue's wait is not in either). The plan lists max_steps per run; "e" holds out 10%
of the rows for evaluation (evaluated every max_steps/10 steps). The first run of a plan has no history here: its
estimate is the fit model's guess; the later ones use what the earlier ones measured (runs/.throughput.json).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one_run(cfg) -> dict:
    from studio import auth, data, jobs, runs, timing
    d = cfg.data
    timing.plan_for_run(cfg, data.DATASETS.get(d.source, d.path, d.split, d.max_rows))  # the Train tab shows it
    status = jobs.start(cfg, auth.LOCAL)
    run_dir = runs.runs_root() / status["run_id"]
    while runs.view(run_dir).get("state") not in runs.FINAL_STATES or runs.worker_alive(run_dir):
        time.sleep(0.3)
    status = runs.view(run_dir)
    estimate = timing.read_plan(run_dir)
    actual = timing.actual_seconds(status)
    return {"state": status["state"], "estimate": estimate, "actual": actual,
            "error": 100 * (estimate["seconds"] - actual) / actual if actual else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="bundled", choices=["bundled", "chapter"])
    parser.add_argument("--model", help="a local model folder instead of the recipe's")
    parser.add_argument("--data", help="a local .jsonl instead of the recipe's dataset")
    parser.add_argument("--plan", default="150,150,60,150e,150e,150", help="max_steps of each run; e: eval split")
    parser.add_argument("--runs-dir", default="")
    args = parser.parse_args()
    os.environ["STUDIO_RUNS_DIR"] = args.runs_dir or tempfile.mkdtemp(prefix="estimate-")
    from studio import timing
    from studio.config import RECIPES
    print(f"device: {timing.device_label()} · recipe: {args.recipe} · runs: {os.environ['STUDIO_RUNS_DIR']}")
    print("| run | max_steps | eval | estimate from | tokens | est. tokens/s | estimate s | actual s | error |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|")
    errors = {"guess": [], "history": []}
    for n, item in enumerate(args.plan.split(","), 1):
        cfg = RECIPES[args.recipe]()
        cfg.run_name = f"estimate-{n}"
        if args.model:
            cfg.model.name = str(Path(args.model).resolve())
        if args.data:
            cfg.data.source, cfg.data.path = "file", str(Path(args.data).resolve())
        cfg.train.max_steps = int(item.rstrip("e"))
        if item.endswith("e"):
            cfg.data.eval_size = 0.1
        r = one_run(cfg)
        e = r["estimate"]
        if r["error"] is not None:
            errors[e["source"]].append(abs(r["error"]))
        actual = "–" if r["actual"] is None else f"{r['actual']:.1f}"
        error = "–" if r["error"] is None else f"{r['error']:+.0f}%"
        print(f"| {n} | {cfg.train.max_steps} | {'yes' if cfg.data.eval_size else 'no'} | {e['source']} | "
              f"{e['tokens']:,} | {e['tokens_per_s']:,.0f} | {e['seconds']:.1f} | {actual} | {error} |", flush=True)
    for source, found in errors.items():
        if found:
            print(f"{source}: mean |error| {sum(found) / len(found):.0f}%, largest {max(found):.0f}% "
                  f"over {len(found)} run(s); target within 25%: {'met' if max(found) <= 25 else 'NOT met'}")


if __name__ == "__main__":
    main()
