"""Issue 7 on the GPU: an epoch run on 100,000 rows, with and without TRL's own pass over the prepared rows.

    python bench/gpu_trl_pass.py --model DIR --skip 0   # TRL's pass (truncate + filter, serial Python)
    python bench/gpu_trl_pass.py --model DIR --skip 1   # skip_prepare_dataset: the rows go in as prepared

The worker prepares every row itself (studio/prepare.py: tokenized, masked, truncated, reply-less rows dropped;
tests/test_templates.py shows TRL's pass then changes nothing). This runs the real worker code in this process
(studio.train.run on a run folder: the chapter's recipe, a generated FineTome-shaped file, max_steps 0 = one epoch),
with `dataset_kwargs` set as --skip says, and stops the run after --steps optimizer steps (the STOP file, as the
Stop button does). It prints the phases to step 1, the rows trained on and the first losses (Unsloth says on
stdout whether it turns padding-free batches off), which must equal between --skip 0 and --skip 1 (same rows, same order).
Run --skip 0 first: the second run reuses the prepared rows from the run folder's cache, as a second Start would.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--skip", type=int, choices=(0, 1), required=True)
    ap.add_argument("--runs", default="/tmp/studio-trl-pass")
    a = ap.parse_args()
    os.environ["STUDIO_RUNS_DIR"] = a.runs
    Path(a.runs).mkdir(parents=True, exist_ok=True)
    import unsloth  # noqa: F401  (first, as in the worker)

    from bench.cpu_big_data import make_file
    from studio import runs, train
    from studio.config import chapter_recipe
    data = Path(a.runs) / f"finetome_{a.rows}.jsonl"
    if not data.exists():
        make_file(data, a.rows)

    made = train.sft_config

    def sft_config(*args, **kwargs):  # the worker's own config, TRL's pass on or off
        config = made(*args, **kwargs)
        config.dataset_kwargs = {"skip_prepare_dataset": True} if a.skip else None
        return config
    train.sft_config = sft_config

    cfg = chapter_recipe()
    cfg.run_name, cfg.model.name = f"trl-pass-{a.skip}", str(Path(a.model).resolve())
    cfg.data.source, cfg.data.path, cfg.train.max_steps = "file", str(data), 0
    run_dir = runs.create_run(cfg)
    files = train.RunFiles(run_dir, False)

    def stop_after_steps():  # as the Stop button: the worker ends the step, saves, and ends
        while True:
            logs = [e for e in runs.read_metrics(run_dir).events if e.get("event") == "log" and "loss" in e]
            if len(logs) >= a.steps or files.status.get("state") in runs.FINAL_STATES:
                runs.request_stop(run_dir)
                return
            time.sleep(0.2)
    threading.Thread(target=stop_after_steps, daemon=True).start()
    t0 = time.time()
    train.run(run_dir, files)
    wall = time.time() - t0
    events = runs.read_metrics(run_dir).events
    end = next(e for e in events if e["event"] == "end")
    phases = {p["phase"]: p["seconds"] for p in end["phases"]}
    prepared = next((e for e in events if e["event"] == "prepared"), {})
    losses = [e["loss"] for e in events if e.get("event") == "log" and "loss" in e][:a.steps]
    result = {"skip": a.skip, "rows": a.rows, "prepared": prepared, "phases": phases, "wall_s": round(wall, 1),
              "losses": losses, "state": files.status.get("state")}
    print("RESULT " + json.dumps(result))
    print(f"\n| TRL's pass | prepare s (rows) | trainer s | first step s | to step 1 s | losses of steps 1-{a.steps} |")
    print("|---|---|---:|---:|---:|---|")
    to_step1 = sum(v for k, v in phases.items() if k != "save")
    print(f"| {'skipped' if a.skip else 'run'} | {phases.get('prepare', 0):.1f} ({prepared.get('rows')}, "
          f"{'reused' if prepared.get('reused') else 'made'}) | {phases.get('trainer', 0):.1f} | "
          f"{phases.get('first_step', 0):.1f} | {to_step1:.1f} | {', '.join(f'{x:.4f}' for x in losses)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
