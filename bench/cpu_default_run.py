"""The embedded default on CPU: time from Start to a saved adapter, exactly as the Train tab does it.

    .venv/bin/python bench/cpu_default_run.py [--repeat 1]

Start = runs.create_run + runs.launch (what Start does when the machine is free; a fresh worker process); the end is the moment
status.json says `completed` (after save_pretrained). Target (issue 4): at most 60 s on 2 cores.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("STUDIO_RUNS_DIR", tempfile.mkdtemp())
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def one_run() -> dict:
    from studio import runs
    from studio.config import RunConfig
    run_dir = runs.create_run(RunConfig())
    t0 = time.perf_counter()
    runs.launch(run_dir)
    while True:
        status = runs.view(run_dir)
        if status.get("state") in runs.FINAL_STATES:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    logs = tail.logs
    first_log = next(e for e in tail.events if e["event"] == "log")
    begin = next(e for e in tail.events if e["event"] == "train_begin")
    return {"state": status["state"], "wall": wall, "train_runtime": status.get("train_runtime"),
            "startup": begin["time"] - (status.get("started_at") or begin["time"]),
            "first_point": first_log["time"] - status.get("started_at", first_log["time"]),
            "loss_first": sum(e["loss"] for e in logs[:5]) / 5, "loss_last": sum(e["loss"] for e in logs[-5:]) / 5,
            "peak_gb": status.get("process_peak_gb")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores")
    print("| run | state | Start -> adapter saved s | start-up s | first plot point s | train_runtime s | "
          "loss first5 -> last5 | process peak GB |")
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for i in range(args.repeat):
        r = one_run()
        print(f"| {i + 1} | {r['state']} | {r['wall']:.1f} | {r['startup']:.1f} | {r['first_point']:.1f} | "
              f"{r['train_runtime']} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} | {r['peak_gb']} |")
    print(f"target <= 60 s: {'met' if r['wall'] <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
