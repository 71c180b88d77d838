"""Datasets: load from the Hub, an uploaded file or the bundled sample; detect the format; and
standardize rows to role/content conversations, lazily, one page at a time.

Three input formats are recognised (the same mapping Unsloth's `standardize_data_formats` does
for ShareGPT, extended to OpenAI messages and Alpaca):
  sharegpt  conversations: [{from: human|gpt|system, value}]
  openai    messages:      [{role: user|assistant|system, content}]
  alpaca    instruction, input, output (+ optional system)
Every problem is raised as DataError naming the file, the row (1-based) and the field.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from studio.config import BUNDLED_DATA, resolve_path

ALLOWED_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
MAX_UPLOAD_MB = 200
CONVERSATION_COLUMNS = ("conversations", "conversation", "messages", "chat", "dialog", "dialogue")
ROLE_ALIASES = {
    "system": "system",
    "user": "user", "human": "user", "input": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "output": "assistant", "model": "assistant",
    "bot": "assistant", "chatgpt": "assistant",
}
PAIR_KEYS = (("from", "value"), ("role", "content"))
FORMAT_NAMES = {"sharegpt": "ShareGPT (conversations)", "openai": "OpenAI (messages)",
                "alpaca": "Alpaca (instruction/output)"}


class DataError(ValueError):
    """A problem in the user's data, with where it is. `str()` is the message the UI shows."""

    def __init__(self, message: str, file: str = "", row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.detail = file, row, column, message
        where = [p for p in (file and f"{file}", row is not None and f"row {row}", column and f"field '{column}'") if p]
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


@dataclass
class Dataset:
    """Rows as loaded (any sequence of dicts: a list, or a Hugging Face `datasets.Dataset`)."""
    name: str
    rows: Sequence[dict]
    format: str  # sharegpt | openai | alpaca
    conversation_column: str | None  # for sharegpt/openai
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def extra_columns(self) -> list[str]:
        used = {self.conversation_column} if self.conversation_column else {"instruction", "input", "output", "system"}
        return [c for c in self.columns if c not in used]

    def standardized(self, index: int) -> list[dict]:
        return standardize_row(self.rows[index], self, index)

    def page(self, page: int, size: int = 10) -> tuple[list[dict], list[list[dict]]]:
        """Raw rows and their standardized conversations for one page (0-based); only these are touched."""
        start = max(0, page) * size
        stop = min(len(self), start + size)
        raw = [dict(self.rows[i]) for i in range(start, stop)]
        return raw, [standardize_row(r, self, start + n) for n, r in enumerate(raw)]

    def iter_conversations(self):
        for i in range(len(self)):
            yield standardize_row(self.rows[i], self, i)


# ---------------------------------------------------------------- loading



def index_lines(path: Path, block: int = 1 << 20):
    """(starts, ends, line numbers) of a file's non-blank lines, as bytes.strip() judges them.

    One pass in blocks: numpy finds the newlines. A line counts unless it is blank or holds only a BOM (editors
    on Windows write those); only short lines, or lines that begin with a space or a BOM, are read again to
    judge that. Data lines start with "{": a 172 MB file of 100,000 rows takes 0.07 s (the Python loop over its
    lines that this replaced: 0.17 s)."""
    import numpy as np
    starts, ends, firsts = [], [], []
    base = line_start = 0
    first = -1  # the current line's first byte (-1: not seen yet, it begins the next block)
    with open(path, "rb") as f:
        while buf := f.read(block):
            a = np.frombuffer(buf, np.uint8)
            if first < 0:
                first = int(a[0])
            nl = np.flatnonzero(a == 10)
            if len(nl):
                line_ends = nl.astype(np.int64) + base + 1
                starts.append(np.concatenate(([line_start], line_ends[:-1])))
                ends.append(line_ends)
                firsts.append(np.concatenate(([first], a[nl[:-1] + 1])))
                line_start = int(line_ends[-1])
                first = int(a[nl[-1] + 1]) if nl[-1] + 1 < len(a) else -1
            base += len(buf)
    if line_start < base:  # the last line has no newline
        starts.append(np.array([line_start]))
        ends.append(np.array([base]))
        firsts.append(np.array([first]))
    if not starts:
        return array("q"), array("q"), array("q")
    starts, ends, firsts = np.concatenate(starts), np.concatenate(ends), np.concatenate(firsts)
    keep = np.ones(len(starts), dtype=bool)
    doubtful = (ends - starts <= 16) | np.isin(firsts, list(b" \t\n\r\x0b\x0c\xef"))
    if doubtful.any():
        with open(path, "rb") as f:
            for i in np.flatnonzero(doubtful):
                f.seek(int(starts[i]))
                line = f.read(int(ends[i] - starts[i])).strip()
                keep[i] = bool(line) and line != b"\xef\xbb\xbf"
    numbers = np.flatnonzero(keep) + 1
    return array("q", starts[keep].tolist()), array("q", ends[keep].tolist()), array("q", numbers.tolist())


class JsonlRows(Sequence):
    """The rows of a JSON Lines file, parsed on demand from an index of line offsets.

    Opening a 100,000-row file costs one buffered pass over its bytes (no JSON parsing) and about
    24 bytes of index per row; a row is read and parsed only when asked for. So the Dataset tab's
    first page, the Start check and a max_steps run never hold the whole file as Python objects.
    """

    def __init__(self, path: Path, name: str):
        self.path, self.name = Path(path), name
        with open(self.path, "rb") as f:
            if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                raise DataError("the file is UTF-16 text (Windows 'Unicode'); save it as UTF-8", file=name)
        self.starts, self.ends, self.lines = index_lines(self.path)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        start, end, number = self.starts[index], self.ends[index], self.lines[index]
        with open(self.path, "rb") as f:  # no fd kept open: an object that outlives its file holds nothing
            f.seek(start)
            raw = f.read(end - start)
        if start == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a BOM: editors on Windows add one
        return _parse_jsonl_line(raw, self.name, number)


class ParquetRows(Sequence):
    """The rows of a Parquet file, one row group decoded at a time (Arrow memory, not Python objects)."""

    def __init__(self, path: Path, name: str):
        import pyarrow.parquet as pq
        try:
            self.file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow's message names our full path: keep the name only
            raise DataError(f"not a readable Parquet file: {_short(exc).replace(str(path), name)}", file=name) from None
        meta = self.file.metadata
        self.bounds = [0]
        for g in range(meta.num_row_groups):
            self.bounds.append(self.bounds[-1] + meta.row_group(g).num_rows)
        self.columns = list(self.file.schema_arrow.names)
        self._group, self._table = -1, None

    def __len__(self) -> int:
        return self.bounds[-1]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        import bisect
        group = bisect.bisect_right(self.bounds, index) - 1
        if group != self._group:
            self._group, self._table = group, self.file.read_row_group(group)
        return self._table.slice(index - self.bounds[group], 1).to_pylist()[0]


class FirstRows(Sequence):
    """The first n rows of another sequence (the Dataset tab's 'use the first N rows')."""

    def __init__(self, rows: Sequence, n: int):
        self.rows, self.n = rows, min(n, len(rows))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.rows[index]


def load_dataset_source(source: str, path: str = "", split: str = "train", max_rows: int = 0,
                        token: str | None = None, allowed_roots: Sequence[Path] | None = None) -> Dataset:
    """The one entry point for the UI and the worker: same rows, same format, same standardization.

    `allowed_roots`: when given (a shared server), a file must lie under one of them; the rule is applied
    here, where the file is read, so no caller can skip it.
    """
    if source == "bundled":  # never another path: the field cannot be used to read server files this way
        ds = load_file(resolve_path(BUNDLED_DATA), display_name=Path(BUNDLED_DATA).name)
    elif source == "file":
        if not path:
            raise DataError("no file chosen")
        # Uploads are stored as <hash>-<name>; messages name the file as the user knows it.
        display = re.sub(r"^[0-9a-f]{12}-", "", Path(path).name)
        ds = load_file(check_path(path, allowed_roots, display), display_name=display)
    elif source == "hub":
        ds = load_hub(path, split, token=token)
    else:
        raise DataError(f"unknown dataset source '{source}'")
    if max_rows and max_rows < len(ds):
        ds.rows = FirstRows(ds.rows, max_rows)
    return ds


def check_path(path: str, allowed_roots: Sequence[Path] | None, display: str = "") -> Path:
    """The path rule of shared servers: only files under the allowed folders (uploads, bundled assets)."""
    resolved = resolve_path(path).resolve()
    if allowed_roots is not None and not any(resolved.is_relative_to(Path(r).resolve()) for r in allowed_roots):
        raise DataError("on this shared server, only uploaded files can be used", file=display or Path(path).name)
    return resolved


def restricted() -> bool:
    """On a shared server (a Space, or STUDIO_RESTRICT_PATHS=1) files may only come from uploads."""
    return bool(os.environ.get("SPACE_ID") or os.environ.get("STUDIO_RESTRICT_PATHS"))


def uploads_dir(owner: str | None = None) -> Path:
    """Where a person's uploads are kept (content-addressed), so config.yaml can name them for good."""
    from studio.runs import LOCAL_OWNER, runs_root, sanitize_name
    d = runs_root() / "uploads" / sanitize_name(owner or LOCAL_OWNER)
    d.mkdir(parents=True, exist_ok=True)
    return d


def allowed_roots(owner: str | None = None) -> list[Path] | None:
    """The folders a dataset file may come from: anywhere locally; on a shared server, the owner's uploads
    and the bundled assets."""
    from studio.config import REPO_ROOT
    return [uploads_dir(owner), REPO_ROOT / "assets"] if restricted() else None


def store_upload(tmp_path: str, owner: str | None = None) -> Path:
    """Keep an upload under the owner's uploads folder, named by its content's hash."""
    import hashlib
    import shutil
    src = Path(tmp_path)
    if src.suffix.lower() not in ALLOWED_EXTENSIONS:
        raise DataError(f"unsupported file type '{src.suffix or '(none)'}'; use one of {', '.join(ALLOWED_EXTENSIONS)}",
                        file=src.name)
    if src.stat().st_size > MAX_UPLOAD_MB * 2**20:
        raise DataError(f"larger than {MAX_UPLOAD_MB} MB", file=src.name)
    digest = hashlib.sha256()
    with open(src, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    from studio.runs import sanitize_name
    dest = uploads_dir(owner) / f"{digest.hexdigest()[:12]}-{sanitize_name(src.stem)}{src.suffix.lower()}"
    if not dest.exists():
        shutil.copyfile(src, dest)
    return dest


class DatasetCache:
    """A few loaded datasets, keyed by everything that changes the answer: the source, the file's identity
    (size, modification time), the split, the row limit, the allowed folders and the token that read it."""

    def __init__(self, size: int = 4):
        from studio.cache import LRU
        self.cache = LRU(size)

    def get(self, source: str, path: str, split: str, max_rows: int, token: str | None = None,
            allowed: Sequence[Path] | None = None) -> Dataset:
        from studio.cache import secret_digest
        ident = ""
        if source in ("file", "bundled"):
            target = check_path(path, allowed, Path(path or "").name) if source == "file" \
                else resolve_path(BUNDLED_DATA)
            try:
                st = target.stat()
                ident = f"{target}:{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                ident = str(target)
        key = (source, path if source != "bundled" else "", ident, split, int(max_rows or 0),
               tuple(map(str, allowed or ())), secret_digest(token))
        return self.cache.get_or_make(key, lambda: load_dataset_source(
            source, path, split, int(max_rows or 0), token=token, allowed_roots=allowed))


DATASETS = DatasetCache()


def holdout(n_rows: int, eval_size: float, seed: int) -> list[int]:
    """The rows held out for evaluation (seeded, sorted): a fraction (below 1) or a count; never all of them."""
    k = int(round(n_rows * eval_size)) if eval_size < 1 else int(eval_size)
    k = max(1, min(k, n_rows - 1)) if eval_size > 0 and n_rows > 1 else 0
    return sorted(random.Random(seed + 1).sample(range(n_rows), k)) if k else []


def select_rows(n_rows: int, max_steps: int, rows_per_step: int, seed: int) -> list[int] | None:
    """The rows a run trains on: with max_steps set, a seeded sample of max_steps x rows-per-step rows
    (sorted, so reading stays sequential); None = every row (epoch runs, or a file smaller than that).
    The exported script applies the same rule."""
    k = max_steps * rows_per_step if max_steps > 0 else 0
    if not k or k >= n_rows:
        return None
    return sorted(random.Random(seed).sample(range(n_rows), k))


def load_hub(repo_id: str, split: str = "train", token: str | None = None) -> Dataset:
    repo_id = (repo_id or "").strip()
    if not repo_id or repo_id.count("/") != 1:
        raise DataError(f"'{repo_id}' is not a Hub dataset id (expected owner/name)")
    import datasets  # heavy; only needed for Hub datasets
    try:
        rows = datasets.load_dataset(repo_id, split=split or "train", token=token or None)
    except Exception as exc:  # network down, no such repo, no such split: all the user's to fix
        raise DataError(f"could not load from the Hub: {_short(exc)}", file=repo_id) from None
    return _make_dataset(repo_id, rows, list(rows.column_names))


def load_file(path: Path, display_name: str | None = None) -> Dataset:
    path = Path(path)
    name = display_name or path.name
    ext = "".join(path.suffixes[-1:]).lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise DataError(f"unsupported file type '{ext or '(none)'}'; use one of {', '.join(ALLOWED_EXTENSIONS)}", file=name)
    if not path.is_file():
        raise DataError("file not found", file=name)
    try:
        if path.stat().st_size == 0:
            raise DataError("the file is empty (0 bytes)", file=name)
        if ext == ".jsonl":
            rows = JsonlRows(path, name)
            if not len(rows):
                raise DataError("the file holds only blank lines or spaces, no data", file=name)
        elif ext == ".parquet":
            rows = ParquetRows(path, name)
        else:  # one JSON document or a CSV: small formats, parsed whole
            text = _read_text(path.read_bytes(), name, ext)
            if not text.strip():
                raise DataError("the file holds only blank lines or spaces, no data", file=name)
            rows = {".json": _parse_json, ".csv": _parse_csv}[ext](text, name)
    except OSError as exc:  # unreadable: permissions, a vanished upload
        raise DataError(f"could not read the file ({exc.strerror or 'an input/output error'})", file=name) from None
    if not len(rows):
        raise DataError("the file has no rows", file=name)
    columns = rows.columns if isinstance(rows, ParquetRows) else \
        list(dict.fromkeys(k for r in _head(rows, 50) for k in r))
    return _make_dataset(name, rows, columns)


def _read_text(data: bytes, name: str, ext: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError("the file is UTF-16 text (Windows 'Unicode'); save it as UTF-8", file=name)
    try:
        return data.decode("utf-8-sig")  # tolerate a BOM: editors on Windows add one
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        cause = (f"not UTF-8 text: byte 0x{data[exc.start]:02X} can't be read (the file was probably saved as "
                 "Latin-1 or Windows-1252); save it as UTF-8")
        if ext == ".json":  # one JSON document: a line, not a row
            raise DataError(f"{cause} (line {line})", file=name) from None
        raise DataError(cause, file=name, row=line) from None  # JSONL and CSV: line n is row n


def _parse_jsonl_line(raw: bytes, name: str, n: int) -> dict:
    """One line of a JSON Lines file; n is its line number (what the user's editor shows)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: byte 0x{raw[exc.start]:02X} can't be read (the file was probably saved as "
                        "Latin-1 or Windows-1252); save it as UTF-8", file=name, row=n) from None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = " (is the file one JSON document over many lines? name it .json)" \
            if n == 1 and line.strip() in ("[", "{") else ""
        raise DataError(f"invalid JSON on this line ({exc.msg}, column {exc.colno}){hint}",
                        file=name, row=n) from None
    except (RecursionError, ValueError) as exc:  # brackets nested thousands deep; a 5,000-digit number
        raise DataError(f"this line can't be read as JSON: {_json_limit(exc)}", file=name, row=n) from None
    if not isinstance(row, dict):
        hint = " (if the whole file is one JSON list, name it .json)" if isinstance(row, list) else ""
        raise DataError(f"each line must be a JSON object {{...}}, got {_kind(row)}{hint}", file=name, row=n)
    return row


def _parse_json(text: str, name: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (is this JSON Lines? rename it to .jsonl)" if exc.msg == "Extra data" else ""
        raise DataError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}", file=name) from None
    except (RecursionError, ValueError) as exc:
        raise DataError(f"can't be read as JSON: {_json_limit(exc)}", file=name) from None
    if isinstance(data, dict):  # {"train": [...]} or {"data": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("expected a list of rows, or an object holding one list of rows", file=name)
        data = lists[0]
    if not isinstance(data, list):
        raise DataError(f"expected a list of rows [{{...}}, {{...}}], got {_kind(data)}", file=name)
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataError(f"each row must be a JSON object {{...}}, got {_kind(row)}", file=name, row=n)
    return data


def _parse_csv(text: str, name: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise DataError(f"could not read the CSV header: {exc}", file=name) from None
    header = [h.strip() for h in header]
    if not any(h.lower() in ("instruction", "output", "messages", "conversations", "input") for h in header):
        raise DataError("the first line must be a header naming the columns (e.g. instruction,input,output); "
                        f"found {header[:6]}", file=name, row=1)
    if len(set(header)) != len(header):
        raise DataError("the header repeats a column name", file=name, row=1)
    rows = []
    try:
        for n, values in enumerate(reader, 2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"expected {len(header)} values ({', '.join(header)}), found {len(values)} "
                                "(a value with a comma in it needs \"quotes\")", file=name, row=n)
            row = dict(zip(header, values))
            for key in CONVERSATION_COLUMNS:  # a JSON list inside a CSV cell
                if key in row and row[key].strip().startswith("["):
                    try:
                        row[key] = json.loads(row[key])
                    except json.JSONDecodeError:
                        raise DataError("cell is not valid JSON", file=name, row=n, column=key) from None
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", file=name, row=reader.line_num) from None
    return rows


def _read_parquet(path: Path, name: str) -> list[dict]:
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds; its message names our full path: keep the name only
        raise DataError(f"not a readable Parquet file: {_short(exc).replace(str(path), name)}", file=name) from None


# ---------------------------------------------------------------- format detection

def _make_dataset(name: str, rows: Sequence[dict], columns: list[str]) -> Dataset:
    fmt, column = detect_format(rows, columns, name)
    ds = Dataset(name=name, rows=rows, format=fmt, conversation_column=column, columns=columns)
    return ds


def detect_format(rows: Sequence[dict], columns: list[str], name: str = "") -> tuple[str, str | None]:
    lower = {c.lower(): c for c in columns}
    for key in CONVERSATION_COLUMNS:
        if key in lower:
            column = lower[key]
            at, sample = next(((n, r[column]) for n, r in enumerate(_head(rows), 1) if r.get(column)), (1, None))
            if isinstance(sample, str):  # a JSON list stored as a string
                raise DataError("holds text, not a list of messages (a JSON list saved as a string?)",
                                file=name, row=at, column=column)
            if not isinstance(sample, list) or not sample or not isinstance(sample[0], dict):
                got = f"a list of {_kind(sample[0], plural=True)}" if isinstance(sample, list) and sample \
                    else _kind(sample)
                raise DataError(f"must be a list of {{role, content}} or {{from, value}} messages, got {got}",
                                file=name, row=at, column=column)
            keys = set(sample[0])
            if {"from", "value"} <= keys:
                return "sharegpt", column
            if {"role", "content"} <= keys:
                return "openai", column
            raise DataError(f"messages have keys {sorted(keys)}; expected from/value or role/content",
                            file=name, row=at, column=column)
    if "instruction" in lower and "output" in lower:
        return "alpaca", None
    if "prompt" in lower and ("completion" in lower or "response" in lower):
        raise DataError("prompt/completion columns: rename them to instruction/output (Alpaca)", file=name)
    raise DataError(f"no conversation-like columns: found {columns[:8]}; expected 'conversations' "
                    "(ShareGPT), 'messages' (OpenAI) or 'instruction'/'output' (Alpaca)", file=name)


def _head(rows, n=20):
    return (rows[i] for i in range(min(n, len(rows))))


# ---------------------------------------------------------------- standardization

def standardize_row(row: dict, ds: Dataset, index: int) -> list[dict]:
    """One row to [{role, content}], roles mapped to system/user/assistant."""
    where = dict(file=ds.name, row=index + 1)
    for key in [ds.conversation_column] if ds.conversation_column else ["instruction", "output"]:
        if key not in row:  # a row of another format (files are checked row by row, as they are read)
            raise DataError(f"missing: this row has {sorted(row)[:6]}, but the file's first rows are "
                            f"{FORMAT_NAMES[ds.format]}; every row must use the same format", column=key, **where)
    if ds.format == "alpaca":
        instruction, extra = _text(row, "instruction", where), row.get("input") or ""
        if not isinstance(extra, str):
            raise DataError(f"must be text, got {_kind(extra)}", column="input", **where)
        _check_encodable(extra, "input", where)
        output = _text(row, "output", where)
        messages = []
        if isinstance(row.get("system"), str) and row["system"].strip():
            messages.append({"role": "system", "content": row["system"]})
        messages.append({"role": "user", "content": f"{instruction}\n\n{extra}" if extra.strip() else instruction})
        messages.append({"role": "assistant", "content": output})
        return messages

    column = ds.conversation_column
    turns = row.get(column)
    if not isinstance(turns, list):
        raise DataError(f"must be a list of messages, got {_kind(turns)}", column=column, **where)
    if not turns:
        raise DataError("the conversation is empty", column=column, **where)
    role_key, content_key = ("from", "value") if ds.format == "sharegpt" else ("role", "content")
    messages = []
    for t, turn in enumerate(turns):
        field_name = f"{column}[{t}]"
        if not isinstance(turn, dict):
            raise DataError(f"a message must be an object {{{role_key}, {content_key}}}, got {_kind(turn)}",
                            column=field_name, **where)
        for key in (role_key, content_key):
            if key not in turn:
                raise DataError(f"missing (each message needs '{role_key}' and '{content_key}')",
                                column=f"{field_name}.{key}", **where)
        raw_role = turn[role_key]
        role = ROLE_ALIASES.get(str(raw_role).strip().lower())
        if role is None:
            raise DataError(f"unknown role '{raw_role}' (expected one of user/assistant/system, human/gpt)",
                            column=f"{field_name}.{role_key}", **where)
        content = turn[content_key]
        if not isinstance(content, str):
            raise DataError(f"must be text, got {_kind(content)}", column=f"{field_name}.{content_key}", **where)
        _check_encodable(content, f"{field_name}.{content_key}", where)
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError("the conversation has no assistant reply to learn from", column=column, **where)
    return messages


def _text(row: dict, key: str, where: dict) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError(f"must be non-empty text, got {_kind(value)}", column=key, **where)
    if not value.strip():
        raise DataError("is empty; it must be non-empty text", column=key, **where)
    _check_encodable(value, key, where)
    return value


def _check_encodable(text: str, column: str, where: dict) -> None:
    """A lone UTF-16 surrogate ("\\ud83d", half an emoji from a bad export) parses as JSON but no
    tokenizer takes it: the worker would crash on it mid-setup."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"holds an invalid character (\\u{ord(text[exc.start]):04x}, half of an emoji or "
                            f"symbol) at character {exc.start + 1}; fix or re-export the file",
                            column=column, **where) from None


def _kind(value, plural: bool = False) -> str:
    """A value's type in the user's words (JSON's), not Python's."""
    kinds = [(type(None), "null", "nulls"), (bool, "true/false", "true/false values"),
             ((int, float), "a number", "numbers"), (str, "text", "texts"), ((list, tuple), "a list", "lists"),
             (dict, "an object", "objects")]
    for types, one, many in kinds:
        if isinstance(value, types):
            return many if plural else one
    return type(value).__name__


def _json_limit(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "brackets are nested too deeply (is the file damaged?)"
    if "digits" in str(exc):
        return "a number has too many digits (more than 4,300)"
    return _short(exc)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
