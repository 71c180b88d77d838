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
FORMAT_VERSION = 2  # 2: the rows left out are kept by reason (studio/checks.py codes)
# The data checks (studio/checks.py) that only tokenizing finds; prepare applies them while it tokenizes.
RENDER_ERROR, NO_TRAINED_TOKENS, TRUNCATED = "render_error", "no_trained_tokens", "truncated"
TOKEN_CHECKS = (RENDER_ERROR, NO_TRAINED_TOKENS, TRUNCATED)


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
        "drop": sorted(set(cfg.data.drop) & {RENDER_ERROR, TRUNCATED}),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


# ---------------------------------------------------------------- one chunk (runs in a pool process too)

_job: dict = {}  # what a pool process needs, set before the pool forks


# the columns' types are those datasets.Dataset.from_dict gives them (it stores input_ids as int32)
def _schema():
    import pyarrow as pa
    return pa.schema([("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int64()))])


def masker(tokenizer, template: str, responses_only: bool):
    """Unsloth's own train_on_responses_only labelling, as a function of token ids (None: every token trained)."""
    if not responses_only:
        return None
    from unsloth_zoo.dataset_utils import train_on_responses_only
    instruction_part, response_part = templates.markers(tokenizer, template)
    return train_on_responses_only(None, instruction_part=instruction_part, response_part=response_part,
                                   tokenizer=tokenizer, return_function=True)


def tokenize_rows(ds: data_mod.Dataset, indices: list[int], tokenizer, mask, max_length: int,
                  skip_render_errors: bool = False):
    """Rows -> chat template + EOS -> token ids -> cut to max_length -> labels: the one path that training
    (prepare) and the data checks (studio/checks.py) both take, so what a check counts is what the run trains.

    Returns (the rows rendered, their full token ids, the ids cut to max_length, the labels of the cut ids,
    {row: the template's refusal} for rows the template could not render when skip_render_errors)."""
    texts, rendered, refused = [], [], {}
    for i in indices:
        messages = ds.standardized(i)
        try:
            texts.append(templates.training_text(tokenizer, messages))
        except Exception as exc:  # a template that refuses a row (roles that don't alternate, a system turn, ...)
            if not skip_render_errors:
                raise
            refused[i] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            continue
        rendered.append(i)
    # verbose=False: not "longer than the model's maximum" for rows that are about to be cut
    full = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    # the cut that truncation=True, max_length=max_length makes, on the tokenizer's own side
    left = getattr(tokenizer, "truncation_side", "right") == "left"
    cut = [x if len(x) <= max_length else x[-max_length:] if left else x[:max_length] for x in full]
    labels = mask({"input_ids": cut})["labels"] if mask is not None else [list(x) for x in cut]
    return rendered, full, cut, labels, refused


def _prepare_chunk(indices: list[int]):
    """(Arrow table of the rows kept, {check code: rows left out}, rows done). Arrow, so that the parent only joins
    buffers: building 100,000 rows from Python lists in the parent took ~10 s, whatever the number of processes."""
    import pyarrow as pa
    ds, tok, max_length, mask, drop = _job["ds"], _job["tokenizer"], _job["max_length"], _job["mask"], _job["drop"]
    rendered, full, ids, labels, refused = tokenize_rows(ds, indices, tok, mask, max_length, RENDER_ERROR in drop)
    left_out = {RENDER_ERROR: list(refused), NO_TRAINED_TOKENS: [], TRUNCATED: []}
    keep = []
    for n, (row, lab) in enumerate(zip(rendered, labels)):
        if not any(x != -100 for x in lab):  # the reply was cut off by max_length: dropped, as Unsloth does
            left_out[NO_TRAINED_TOKENS].append(row)
        elif TRUNCATED in drop and len(full[n]) > max_length:
            left_out[TRUNCATED].append(row)
        else:
            keep.append(n)
    table = pa.table([pa.array([ids[n] for n in keep], pa.list_(pa.int32())),
                      pa.array([labels[n] for n in keep], pa.list_(pa.int64()))], schema=_schema())
    return table, left_out, len(indices)


def prepare(ds: data_mod.Dataset, indices: list[int] | None, tokenizer, template: str, max_length: int,
            responses_only: bool, progress: Callable[[int, int], None] | None = None,
            processes: int | None = None, drop=()):
    """Tokenize and mask the chosen rows. Returns (datasets.Dataset with input_ids + labels,
    {check code: the rows left out}).

    Rows whose labels are all -100 (the reply was cut off by max_length) are dropped, as Unsloth does
    (no_trained_tokens). `drop` (config.yaml data.drop) may also name render_error (rows the chat template
    refuses; else the refusal fails the run) and truncated (rows longer than max_length)."""
    from datasets import Dataset as HFDataset
    rows = list(range(len(ds))) if indices is None else list(indices)
    _job.update(ds=ds, tokenizer=tokenizer, max_length=max_length, mask=masker(tokenizer, template, responses_only),
                drop=frozenset(drop))
    chunks = [rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    processes = processes if processes is not None else default_processes(len(rows))
    tables, dropped, done = [], {code: [] for code in TOKEN_CHECKS}, 0
    try:
        pool = None
        if processes > 1:
            import multiprocessing
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            pool = multiprocessing.get_context("fork").Pool(processes)
        with pool or _no_pool():
            for table, left_out, n in (pool.imap(_prepare_chunk, chunks) if pool else map(_prepare_chunk, chunks)):
                tables.append(table)
                for code, lost in left_out.items():
                    dropped[code] += lost
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
    from studio.timing import cpu_cores
    cores = cpu_cores()
    if n_rows < PARALLEL_MIN_ROWS or cores < 2:
        return 1
    return min(cores, 16, -(-n_rows // CHUNK_ROWS))


def load_cached(key: str):
    """The prepared dataset of an earlier run (memory-mapped), or None."""
    path = cache_root() / key
    if not (path / "done.json").is_file():
        return None
    from datasets import load_from_disk

    from studio import disk
    try:
        found = load_from_disk(str(path / "data")), json.loads((path / "done.json").read_text())
        disk.touch(path)  # used now: the disk budget evicts it last
        return found
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
