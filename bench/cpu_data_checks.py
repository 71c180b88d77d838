"""The data checks (studio/checks.py) on a 100,000-row FineTome-shaped file, on 2 CPU cores (issue 19, target 10 s).

    .venv/bin/python bench/cpu_data_checks.py [--rows 100000] [--cores 2] [--max-length 1024] [--repeat 3]

Generates the file of bench/cpu_big_data.py (ShareGPT rows of 60-500 words, a tenth in Korean), opens it as the
app does, and times what 'Check data' runs: studio.checks.run_checks for an epoch run (max_steps 0: the run
trains on every row), with the bundled tokenizer and the qwen-3 template, replies-only masking on; then the
same with a 5% eval holdout (the overlap check compares the two). The text checks read every row; the token
checks tokenize a seeded sample of studio.checks.TOKEN_SAMPLE rows, which the output says. Also timed: the
token checks on every row (what not sampling would cost), and what the worker adds to a run that drops rows
(studio.checks.text_drops on every row; the token checks it applies while preparing, which it does anyway).
The file was just written, so it is in the page cache, as an upload that was just previewed is.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cores", type=int, default=2, help="pin the process to this many cores")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each case (the median is the figure)")
    parser.add_argument("--skip-full", action="store_true", help="skip tokenizing every row")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(available[:args.cores]))
    cores = len(os.sched_getaffinity(0))

    import unsloth  # noqa: F401  (the app imports it first too)

    tmp = Path(tempfile.mkdtemp(prefix="studio-checks-"))
    try:
        run(args, tmp / "finetome.jsonl", cores, len(available))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # 172 MB


def run(args, path: Path, cores: int, available: int) -> None:
    from bench.cpu_big_data import make_file
    from studio import checks, data, templates
    from studio.config import BUNDLED_MODEL, RunConfig

    t0 = time.perf_counter()
    make_file(path, args.rows)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = data.load_dataset_source("file", str(path), "train", 0)
    opened = time.perf_counter() - t0
    tokenizer = templates.TOKENIZERS.get(BUNDLED_MODEL, "qwen-3")
    print(f"{args.rows:,} FineTome-shaped rows ({path.stat().st_size / 2**20:.0f} MB) made in {made:.1f} s, opened in "
          f"{opened:.2f} s; {cores} cores (of {available}); TOKENIZERS_PARALLELISM="
          f"{os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}; max_length {args.max_length}; token sample "
          f"{checks.TOKEN_SAMPLE:,} rows\n")

    def config(eval_size: float) -> RunConfig:
        cfg = RunConfig()
        cfg.data.source, cfg.data.path, cfg.data.eval_size = "file", str(path), eval_size
        cfg.train.max_steps, cfg.train.max_length = 0, args.max_length  # an epoch run: every row
        return cfg

    worst = 0.0
    print("| case | rows checked | eval rows | token checks on | seconds (median) | each run | findings |")
    print("|---|---:|---:|---|---:|---|---|")
    for name, eval_size in (("epoch run", 0.0), ("epoch run, 5% eval holdout", 0.05)):
        times, report = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = checks.run_checks(config(eval_size), ds, None, tokenizer)
            times.append(time.perf_counter() - t0)
        sample = f"a seeded sample of {report.token_rows:,}" if report.sampled else f"all {report.token_rows:,}"
        found = ", ".join(f"{code} {f.count:,}" for code, f in report.findings.items() if f.count) or "none"
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"| {name} | {report.rows:,} | {report.eval_rows:,} | {sample} | {median:.2f} | "
              f"{' / '.join(f'{x:.2f}' for x in times)} | {found} |", flush=True)
    print(f"\ntarget: {args.rows:,} rows checked in <= 10 s on 2 cores: "
          f"{'met' if worst <= 10 and cores <= 2 else 'NOT met'} (the slower case's median: {worst:.2f} s)")

    rows = list(range(len(ds)))
    t0 = time.perf_counter()
    dropped = checks.text_drops(ds, None, None, [], checks.TEXT_CHECKS)
    print(f"\na run that drops rows: the worker's text checks on every row took {time.perf_counter() - t0:.2f} s "
          f"({sum(map(len, dropped.values())):,} rows to leave out)")
    if not args.skip_full:
        readable = checks.text_pass(ds, rows).readable
        t0 = time.perf_counter()
        tokens = checks.token_pass(ds, readable, tokenizer, "qwen-3", args.max_length, True)
        full = time.perf_counter() - t0
        print(f"the token checks on every row (no sample) took {full:.1f} s: {1000 * full / len(readable):.2f} ms a row; "
              f"truncated {len(tokens.found['truncated']):,}, no trained tokens "
              f"{len(tokens.found['no_trained_tokens']):,}")


if __name__ == "__main__":
    main()
