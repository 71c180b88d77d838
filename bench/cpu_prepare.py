"""Preparing a whole 100k-row file (an epoch run): rows/s with 1, 2, 4, ... processes (issue 7, target 4).

    .venv/bin/python bench/cpu_prepare.py [--rows 100000] [--processes 1,2,4,8,16]

A run with max_steps prepares only the rows it will use; an epoch run prepares every row, in chunks of
studio.prepare.CHUNK_ROWS, in a process pool where the host has cores (studio.prepare.default_processes).
This generates the FineTome-shaped file of bench/cpu_big_data.py, reads it as the worker does (line-offset
index), and times studio.prepare.prepare over all rows with each process count, with the bundled
tokenizer and the qwen-3 template, replies-only masking on. It checks that every count gives the same
token ids and labels as one process, and says how many processes the worker would pick on this host.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def digest(prepared) -> str:
    """Of the token ids and labels with their row bounds, from the Arrow buffers (str() of 100k Python lists
    took longer than preparing them)."""
    h = hashlib.sha256()
    for column in ("input_ids", "labels"):
        array = prepared.data.table.column(column).combine_chunks()
        h.update(array.offsets.to_numpy().astype("int64").tobytes())
        h.update(array.flatten().to_numpy().tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2,4,8,16")
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import unsloth  # noqa: F401  (the worker imports it first too; it patches the tokenizers' template code)
    from transformers import AutoTokenizer

    from bench.cpu_big_data import make_file
    from studio import data as data_mod, prepare, templates

    cores = len(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="studio-prep-"))
    path = tmp / "finetome.jsonl"
    t0 = time.perf_counter()
    make_file(path, args.rows)
    ds = data_mod.load_dataset_source("file", str(path), "train", 0)
    tok = templates.apply_template(AutoTokenizer.from_pretrained(REPO / "assets" / "tiny-qwen3"), "qwen-3")
    print(f"{args.rows:,} rows ({path.stat().st_size / 2**20:.0f} MB) generated and indexed in "
          f"{time.perf_counter() - t0:.1f} s; {cores} cores; the worker would use "
          f"{prepare.default_processes(args.rows)} process(es)\n")
    print("| processes | seconds | rows/s | speed-up | same output as 1 process |")
    print("|---:|---:|---:|---:|---|")
    base_rate = base_digest = None
    for n in [int(x) for x in args.processes.split(",") if x.strip()]:
        if n > cores:
            print(f"| {n} | - | - | - | skipped: {cores} cores |")
            continue
        t0 = time.perf_counter()
        prepared, left_out = prepare.prepare(ds, None, tok, "qwen-3", args.max_length, True, processes=n)
        dropped = len(left_out[prepare.NO_TRAINED_TOKENS])
        seconds = time.perf_counter() - t0
        rate = args.rows / seconds
        d = digest(prepared)
        base_rate = base_rate or rate
        base_digest = base_digest or d
        print(f"| {n} | {seconds:.1f} | {rate:,.0f} | {rate / base_rate:.2f}x | "
              f"{'yes' if d == base_digest else 'NO'} ({len(prepared):,} rows, {dropped} dropped) |", flush=True)


if __name__ == "__main__":
    main()
