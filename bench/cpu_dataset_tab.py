"""Dataset tab on a generated 100k-row dataset: time to the first page of raw + standardized rows.

    .venv/bin/python bench/cpu_dataset_tab.py [--rows 100000]

Target (issue 4): first page in under 2 s. Standardization is lazy (page by page), so the cost is
reading the file once; a second page is only the page's own rows.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("STUDIO_RUNS_DIR", tempfile.mkdtemp())


def make_rows(n: int, path: Path) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = rng.randint(1, 999), rng.randint(1, 999)
            turns = [{"from": "human", "value": f"What is {a} + {b}? Explain step by step. " * rng.randint(1, 6)},
                     {"from": "gpt", "value": f"{a} + {b} = {a + b}. " * rng.randint(2, 12)}]
            f.write(json.dumps({"conversations": turns, "source": "bench", "score": 4.5}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    from studio.ui import dataset_tab
    path = Path(tempfile.mkdtemp()) / "big.jsonl"
    make_rows(args.rows, path)
    size_mb = path.stat().st_size / 2**20
    t0 = time.perf_counter()
    info, page, raw, std = dataset_tab.preview("file", str(path), "train", 0, 1)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    dataset_tab.preview("file", str(path), "train", 0, 500)
    later = time.perf_counter() - t0
    print("| rows | file MB | first page (load + standardize 1 page) s | another page s |")
    print("|---:|---:|---:|---:|")
    print(f"| {args.rows:,} | {size_mb:.1f} | {first:.2f} | {later:.3f} |")
    print(f"target first page < 2 s: {'met' if first < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
