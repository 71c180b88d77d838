"""Issue 7 on the GPU: the chapter's recipe on 100,000 rows (time to step 1 against the model's load time), and
Fit to this GPU planned on the dataset's own lengths (estimate against the measured peak).

    python bench/gpu_scale.py --model /tmp/studio-bench/qwen3-4b [--rows 100000] [--steps 8] [--fit-steps 6]

Everything goes through the studio's own code: the rows are a generated FineTome-shaped file (bench/cpu_big_data.py),
each run is a run folder started with studio.runs.launch (handed to the standby worker, as Start does) and read back
from its status.json and metrics.jsonl. Prints one table per part and the targets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_worker(cfg, timeout: float) -> tuple[dict, list[dict]]:
    """As Start does in the app: the standby worker (imports done) takes the run."""
    from studio import runs
    runs.STANDBY.start()
    deadline = time.time() + 120
    while not runs.STANDBY.ready() and time.time() < deadline:
        time.sleep(0.2)
    run_dir = runs.create_run(cfg)
    t0 = time.time()
    runs.launch(run_dir)
    while time.time() - t0 < timeout:
        status = runs.view(run_dir)
        if status.get("state") in runs.FINAL_STATES:
            break
        time.sleep(0.25)
    else:
        runs.kill(run_dir)
        status = {**runs.view(run_dir), "bench_timeout": True}
    status["wall_s"] = round(time.time() - t0, 2)
    if status.get("state") != "completed":
        print(runs.log_tail(run_dir, 30))
    return status, runs.read_metrics(run_dir).events


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--fit-steps", type=int, default=6)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    os.environ.setdefault("STUDIO_RUNS_DIR", tempfile.mkdtemp(prefix="studio-scale-"))
    from bench.cpu_big_data import make_file
    from studio import fit
    from studio.config import chapter_recipe

    data = Path(os.environ["STUDIO_RUNS_DIR"]) / "finetome_100k.jsonl"
    t0 = time.time()
    make_file(data, a.rows)
    print(f"generated {a.rows:,} rows ({data.stat().st_size / 2**20:.0f} MB) in {time.time() - t0:.1f} s")
    out: dict = {}

    # 1. The chapter's recipe on 100k rows: from a fresh worker to step 1, against the model's load time.
    cfg = chapter_recipe()
    cfg.run_name, cfg.model.name = "chapter-100k", str(Path(a.model).resolve())
    cfg.data.source, cfg.data.path, cfg.train.max_steps = "file", str(data), a.steps
    status, events = run_worker(cfg, 420)
    phases = {p["phase"]: p["seconds"] for p in status.get("phases", [])}
    load = phases.get("model_download", 0) + phases.get("model_load", 0)
    to_step1 = sum(v for k, v in phases.items() if k != "save")
    prepared = next((e for e in events if e["event"] == "prepared"), {})
    out["chapter"] = {"state": status.get("state"), "phases": phases, "prepared": prepared,
                      "peak_reserved_gb": status.get("peak_reserved_gb")}
    print("\n| part | state | worker start | model load | data | prepare (rows) | trainer | first step | "
          "to step 1 | minus load |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|")
    print(f"| chapter recipe, {a.rows:,} rows | {status.get('state')} | {phases.get('worker', 0):.1f} | {load:.1f} | "
          f"{phases.get('data', 0):.1f} | {phases.get('prepare', 0):.2f} ({prepared.get('rows')}) | "
          f"{phases.get('trainer', 0):.1f} | {phases.get('first_step', 0):.1f} | {to_step1:.1f} | {to_step1 - load:.1f} |")
    print(f"target: step 1 within load + 20 s: {'met' if to_step1 - load <= 20 else 'NOT met'} "
          f"({to_step1 - load:.1f} s beyond the load)")

    # 2. Fit to this GPU, planned on a sample of these rows' own lengths; then the pick, measured.
    lengths = fit.dataset_lengths(cfg)
    free = fit.free_gpu_gb()
    if free is None:
        print("no GPU: the Fit part needs one (skipped)")
        return 0
    pick = fit.pick_for_run(cfg, free_gb=free, lengths=lengths)
    print(f"\nfree {free:.1f} GiB; {len(lengths or [])} sampled rows, mean "
          f"{sum(lengths) / len(lengths):.0f} tokens; pick: {pick.label} (est. peak {pick.peak_gb:.2f} GiB, "
          f"worst {pick.worst_gb:.2f})")
    fit.apply(cfg, pick)
    cfg.run_name, cfg.train.max_steps = "fit-pick", a.fit_steps
    status, events = run_worker(cfg, 420)
    measured = status.get("peak_reserved_gb") or 0
    err = (pick.peak_gb - measured) / measured if measured else float("nan")
    out["fit"] = {"pick": pick.to_dict(), "measured_gb": measured, "error": err, "state": status.get("state"),
                  "free_gb": free, "mean_len": sum(lengths) / len(lengths)}
    rates = [e["tokens_per_s"] for e in events if e.get("event") == "log" and e.get("tokens_per_s")]
    print("\n| setting | state | est. peak GiB | measured peak GiB | error | worst case GiB | tokens/s (last) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print(f"| {pick.label} | {status.get('state')} | {pick.peak_gb:.2f} | {measured:.2f} | {100 * err:+.1f}% | "
          f"{pick.worst_gb:.2f} | {rates[-1] if rates else '–'} |")
    print(f"target: estimate within 15% of measured: {'met' if abs(err) <= 0.15 else 'NOT met'}; "
          f"out of memory: {'no' if status.get('state') == 'completed' else status.get('hint')}")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1, default=str))
    from studio import runs
    runs.STANDBY.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
