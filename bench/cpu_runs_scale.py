"""Status stays cheap as the studio grows (issue 16): one status poll and one Runs-table refresh with 1,000 run
folders and 50 queued runs, and the eval holdout of a 100k-row dataset.

    .venv/bin/python bench/cpu_runs_scale.py [--runs 1000] [--queued 50] [--repeat 20]

Builds the folders in a temporary runs/ (config.yaml, meta.json, status.json, metrics.jsonl as a finished run
leaves them; the queued ones with a queue entry), then times what the Train tab's poll (training_status) and the
Runs tab's refresh (its handler, in the page's language) do, warm, as medians of --repeat calls.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(n_runs: int, n_queued: int) -> list[str]:
    from studio import runs
    from studio.config import RunConfig
    from studio.runs import folder
    ids = []
    for i in range(n_runs):
        cfg = RunConfig(run_name=f"run-{i:04d}")
        run_dir = runs.create_run(cfg, owner=f"user{i % 7}")
        ids.append(run_dir.name)
        if i >= n_runs - n_queued:
            runs.enqueue(run_dir, owner=f"user{i % 7}")
            continue
        folder.write_json_atomic(run_dir / "status.json", {
            "state": "completed", "step": 150, "max_steps": 150, "train_loss": 0.5, "train_runtime": 12.0,
            "started_at": time.time() - 60, "ended_at": time.time() - 40, "phases": []})
        with open(run_dir / "metrics.jsonl", "w") as f:
            for step in range(1, 151):
                f.write(json.dumps({"event": "log", "step": step, "loss": 1.0 / step, "tokens_per_s": 1000}) + "\n")
    return ids


def median_ms(fn, repeat: int) -> float:
    fn()  # warm: the first call reads every config.yaml once
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    a = parser.parse_args(argv)
    os.environ["STUDIO_RUNS_DIR"] = tempfile.mkdtemp(prefix="runs-scale-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio import jobs
    from studio.auth import LOCAL, User
    t0 = time.perf_counter()
    ids = build(a.runs, a.queued)
    print(f"built {a.runs} run folders ({a.queued} queued) in {time.perf_counter() - t0:.1f} s "
          f"under {os.environ['STUDIO_RUNS_DIR']}")
    last_queued, finished = ids[-1], ids[0]
    from studio.ui import runs_tab

    class Request:  # what the handler reads of a gr.Request: the language
        headers = {"accept-language": "ko-KR,ko"}
        username = None

    print(f"status poll, a finished run:        {median_ms(lambda: jobs.status(finished, LOCAL), a.repeat):7.1f} ms")
    print(f"status poll, the last of {a.queued} queued: {median_ms(lambda: jobs.status(last_queued, LOCAL), a.repeat):7.1f} ms")
    print(f"Runs-table refresh, admin (all {a.runs}): "
          f"{median_ms(lambda: runs_tab.table_and_choices(Request()), a.repeat):7.1f} ms")
    one = User("user3")
    print(f"runs of one person ({len(jobs.visible_runs(one))}):        "
          f"{median_ms(lambda: jobs.visible_runs(one), a.repeat):7.1f} ms")

    # The eval holdout, as the worker builds the training pool (studio/train.py build_dataset).
    from studio import data
    t0 = time.perf_counter()
    held = data.holdout(a.rows, 0.1, 3407)
    pool = data.rows_left(a.rows, held)
    print(f"eval holdout, 10% of {a.rows:,} rows: {time.perf_counter() - t0:.3f} s ({len(pool):,} rows left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
