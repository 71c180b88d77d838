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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from studio.config import BUNDLED_DATA, resolve_path

ALLOWED_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
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

def load_dataset_source(source: str, path: str = "", split: str = "train", max_rows: int = 0,
                        token: str | None = None) -> Dataset:
    """The one entry point for the UI and the worker: same rows, same format, same standardization."""
    if source == "bundled":  # never another path: the field cannot be used to read server files this way
        ds = load_file(resolve_path(BUNDLED_DATA), display_name=Path(BUNDLED_DATA).name)
    elif source == "file":
        if not path:
            raise DataError("no file chosen")
        # Uploads are stored as <hash>-<name>; messages name the file as the user knows it.
        ds = load_file(Path(path), display_name=re.sub(r"^[0-9a-f]{12}-", "", Path(path).name))
    elif source == "hub":
        ds = load_hub(path, split, token=token)
    else:
        raise DataError(f"unknown dataset source '{source}'")
    if max_rows and max_rows < len(ds):
        ds.rows = ds.rows[:max_rows] if isinstance(ds.rows, list) else ds.rows.select(range(max_rows))
    return ds


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
        if ext == ".parquet":
            rows = _read_parquet(path, name)
        else:
            text = _read_text(path.read_bytes(), name, ext)
            if not text.strip():
                raise DataError("the file holds only blank lines or spaces, no data", file=name)
            rows = {".jsonl": _parse_jsonl, ".json": _parse_json, ".csv": _parse_csv}[ext](text, name)
    except OSError as exc:  # unreadable: permissions, a vanished upload
        raise DataError(f"could not read the file ({exc.strerror or 'an input/output error'})", file=name) from None
    if not rows:
        raise DataError("the file has no rows", file=name)
    columns = list(dict.fromkeys(k for r in rows[:50] for k in r))
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


def _parse_jsonl(text: str, name: str) -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
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
        rows.append(row)
    return rows


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
    _check_schema(ds)
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


def _check_schema(ds: Dataset) -> None:
    """Mixed schemas are caught up front (cheaply, on list rows) so a bad row 5,000 doesn't fail
    training an hour in. Hub datasets are Arrow tables and already have one schema."""
    if not isinstance(ds.rows, list):
        return
    need = [ds.conversation_column] if ds.conversation_column else ["instruction", "output"]
    for n, row in enumerate(ds.rows, 1):
        for key in need:
            if key not in row:
                raise DataError(f"missing: this row has {sorted(row)[:6]}, but the file's first rows are "
                                f"{FORMAT_NAMES[ds.format]}; every row must use the same format",
                                file=ds.name, row=n, column=key)


# ---------------------------------------------------------------- standardization

def standardize_row(row: dict, ds: Dataset, index: int) -> list[dict]:
    """One row to [{role, content}], roles mapped to system/user/assistant."""
    where = dict(file=ds.name, row=index + 1)
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
