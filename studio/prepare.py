"""Training data, prepared once: rows -> chat template -> token ids -> labels on the replies only.

The worker hands SFTTrainer a dataset that is already tokenized (`input_ids`, and `labels` that are -100
outside the assistant's replies). TRL uses such columns as they are, so the trainer sees exactly what
SFTTrainer + Unsloth's `train_on_responses_only` would make from the text (same EOS, same truncation,
Unsloth's own masking function; tests/test_prepare.py checks it), without their passes over every row.

Only the rows a run uses are prepared (`data.select_rows`), in chunks (in several processes where the host
has several cores), with progress; the result is cached on disk under runs/.cache/prepared/<key>, keyed by
everything that changes it, so a second run on the same data, template and max_length reuses it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from studio import data as data_mod, templates

CHUNK_ROWS = 512
PARALLEL_MIN_ROWS = 4096  # below this, starting processes costs more than it saves
FORMAT_VERSION = 1


def cache_root() -> Path:
    from studio.runs import runs_root
    path = runs_root() / ".cache" / "prepared"
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_fingerprint(cfg) -> dict:
    """What identifies the data itself: the file's path, size and modification time, or the Hub id and split."""
    d = cfg.data
    if d.source in ("file", "bundled"):
        from studio.config import BUNDLED_DATA, resolve_path
        path = resolve_path(BUNDLED_DATA if d.source == "bundled" else d.path).resolve()
        st = path.stat()
        return {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"hub": d.path, "split": d.split}


def cache_key(cfg, tokenizer, indices: list[int] | None, n_rows: int) -> str:
    parts = {
        "v": FORMAT_VERSION, "source": source_fingerprint(cfg), "max_rows": cfg.data.max_rows, "rows": n_rows,
        "indices": hashlib.sha256(json.dumps(indices).encode()).hexdigest() if indices is not None else "all",
        "template": cfg.data.template, "chat_template": hashlib.sha256(
            str(getattr(tokenizer, "chat_template", "")).encode()).hexdigest(),
        "tokenizer": [getattr(tokenizer, "name_or_path", ""), len(tokenizer), tokenizer.eos_token],
        "max_length": cfg.train.max_length, "responses_only": cfg.data.train_on_responses_only,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


# ---------------------------------------------------------------- one chunk (runs in a pool process too)

_job: dict = {}  # what a pool process needs, set before the pool forks


# the columns' types are those datasets.Dataset.from_dict gives them (it stores input_ids as int32)
def _schema():
    import pyarrow as pa
    return pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int64()))])


def _prepare_chunk(indices: list[int]):
    """(Arrow table of the rows kept, rows dropped, rows done). Arrow, so that the parent only joins buffers:
    building 100,000 rows from Python lists in the parent took ~10 s, whatever the number of processes."""
    import pyarrow as pa
    ds, tok, max_length, mask = _job["ds"], _job["tokenizer"], _job["max_length"], _job["mask"]
    texts = [templates.training_text(tok, ds.standardized(i)) for i in indices]
    ids = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    labels = mask({"input_ids": ids})["labels"] if mask is not None else [list(x) for x in ids]
    # rows whose labels are all -100 (the reply was cut off by max_length) are dropped, as Unsloth does
    keep = [i for i, lab in enumerate(labels) if any(x != -100 for x in lab)]
    table = pa.table([pa.array([ids[i] for i in keep], pa.list_(pa.int32())),
                      pa.array([labels[i] for i in keep], pa.list_(pa.int64()))], schema=_schema())
    return table, len(ids) - len(keep), len(ids)


def prepare(ds: data_mod.Dataset, indices: list[int] | None, tokenizer, template: str, max_length: int,
            responses_only: bool, progress: Callable[[int, int], None] | None = None,
            processes: int | None = None):
    """Tokenize and mask the chosen rows. Returns (datasets.Dataset with input_ids + labels, rows dropped).

    Rows whose labels are all -100 (the reply was cut off by max_length) are dropped, as Unsloth does."""
    from datasets import Dataset as HFDataset
    rows = list(range(len(ds))) if indices is None else list(indices)
    mask = None
    if responses_only:
        from unsloth_zoo.dataset_utils import train_on_responses_only
        instruction_part, response_part = templates.markers(tokenizer, template)
        mask = train_on_responses_only(None, instruction_part=instruction_part, response_part=response_part,
                                       tokenizer=tokenizer, return_function=True)
    _job.update(ds=ds, tokenizer=tokenizer, max_length=max_length, mask=mask)
    chunks = [rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    processes = processes if processes is not None else default_processes(len(rows))
    tables, dropped, done = [], 0, 0
    try:
        pool = None
        if processes > 1:
            import multiprocessing
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            pool = multiprocessing.get_context("fork").Pool(processes)
        with pool or _no_pool():
            for table, lost, n in (pool.imap(_prepare_chunk, chunks) if pool else map(_prepare_chunk, chunks)):
                tables.append(table)
                dropped += lost
                done += n
                if progress:
                    progress(done, len(rows))
    finally:
        _job.clear()
    import pyarrow as pa
    from datasets.fingerprint import generate_random_fingerprint
    from datasets.table import InMemoryTable
    table = pa.concat_tables(tables) if tables else _schema().empty_table()
    # a fingerprint given: else datasets hashes every token to make one (8 s for 100,000 rows)
    return HFDataset(InMemoryTable(table), fingerprint=generate_random_fingerprint()), dropped


def _no_pool():
    import contextlib
    return contextlib.nullcontext()


def default_processes(n_rows: int) -> int:
    """One per core (the parent mostly waits for them), at most 16; one for small jobs.
    bench/cpu_prepare.py: on 2 cores, 2 processes prepare 20,000 rows 1.41x faster than one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_rows < PARALLEL_MIN_ROWS or cores < 2:
        return 1
    return min(cores, 16, -(-n_rows // CHUNK_ROWS))


def load_cached(key: str):
    """The prepared dataset of an earlier run (memory-mapped), or None."""
    path = cache_root() / key
    if not (path / "done.json").is_file():
        return None
    from datasets import load_from_disk
    try:
        return load_from_disk(str(path / "data")), json.loads((path / "done.json").read_text())
    except Exception:  # a damaged cache entry is rebuilt, never trusted
        shutil.rmtree(path, ignore_errors=True)
        return None


def save_cached(key: str, prepared, info: dict) -> None:
    path = cache_root() / key
    tmp = cache_root() / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    prepared.save_to_disk(str(tmp / "data"))
    (tmp / "done.json").write_text(json.dumps({**info, "saved_at": time.time()}))
    try:
        os.replace(tmp, path)
    except OSError:  # another run saved the same entry first
        shutil.rmtree(tmp, ignore_errors=True)


def sample_lengths(ds: data_mod.Dataset, tokenizer, n: int = 256, seed: int = 0) -> list[int]:
    """Token lengths (template + EOS) of a seeded sample of rows: what Fit to this GPU plans with."""
    import random
    picks = sorted(random.Random(seed).sample(range(len(ds)), min(n, len(ds))))
    texts = [templates.training_text(tokenizer, ds.standardized(i)) for i in picks]
    return [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]
