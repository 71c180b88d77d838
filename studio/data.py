"""Datasets: load from the Hub, an uploaded file or the bundled sample; detect the format; and
standardize rows to role/content conversations, lazily, one page at a time.

Three input formats are recognised (the same mapping Unsloth's `standardize_data_formats` does
for ShareGPT, extended to OpenAI messages and Alpaca):
  sharegpt  conversations: [{from: human|gpt|system, value}]
  openai    messages:      [{role: user|assistant|system, content}]
  alpaca    instruction, input, output (+ optional system)
and two of preference pairs (chosen/rejected, for DPO and ORPO: studio/pairs.py reads them).
Every problem is raised as DataError naming the file, the row (1-based) and the field, with a message code
whose words, English and Korean, are in MESSAGES below.
"""
from __future__ import annotations

import csv
import io
import json
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
                "alpaca": "Alpaca (instruction/output)", "pairs_text": "preference pairs (prompt/chosen/rejected text)",
                "pairs_chat": "preference pairs (chosen/rejected conversations)"}
PAIR_FORMATS = ("pairs_text", "pairs_chat")  # studio/pairs.py


class DataError(ValueError):
    """A problem in the user's data, with where it is: a message code (MESSAGES) and its parameters.

    `str()` is the English message with its place ("f.jsonl, row 3, field 'messages': ..."), for logs and
    tracebacks; `text("ko")` says the same in Korean (the UI: studio/ui/i18n.py say_data). A code that is not
    in MESSAGES is taken as a plain message."""

    def __init__(self, code: str, file: str = "", row: int | None = None, column: str | None = None, **params):
        self.code, self.params, self.file, self.row, self.column = code, params, file, row, column
        self.detail = message(code, "en", **params)  # the English message without its place
        super().__init__(self.text("en"))

    def text(self, lang: str = "en") -> str:
        """The message with its place, in 'en' or 'ko'."""
        where = [p for p in (self.file, self.row is not None and message("data_at_row", lang, row=self.row),
                             self.column and message("data_at_field", lang, name=self.column)) if p]
        said = message(self.code, lang, **self.params)
        return f"{', '.join(where)}: {said}" if where else said

    def as_dict(self) -> dict:
        """What a failed run's status.json keeps, so the UI can say it in the reader's language."""
        return {"code": self.code, "params": self.params, "file": self.file, "row": self.row, "column": self.column}

    @classmethod
    def from_dict(cls, d: dict) -> DataError:
        return cls(d.get("code") or "", d.get("file") or "", d.get("row"), d.get("column"), **(d.get("params") or {}))

    def __reduce__(self):  # whole across processes (prepare's pool), not rebuilt from its English text
        return DataError.from_dict, (self.as_dict(),)


def message(code: str, lang: str = "en", **params) -> str:
    """One message of MESSAGES in 'en' or 'ko'. The parameters named in WORD_PARAMS may hold a code of their own
    (a JSON type, a hint), said in the same language; any other value (the user's data, a library's text) as it is."""
    en, ko = MESSAGES.get(code, (code, code))
    words = {k: message(v, lang) if k in WORD_PARAMS and isinstance(v, str) and v in MESSAGES else v
             for k, v in params.items()}
    try:
        return (ko if lang == "ko" else en).format(**words)
    except (KeyError, ValueError, IndexError):
        return ko if lang == "ko" else en


WORD_PARAMS = ("kind", "kinds", "reason", "hint", "ext")
NOT_UTF8 = ("not UTF-8 text: byte 0x{byte} can't be read (the file was probably saved as Latin-1 or Windows-1252); "
            "save it as UTF-8",
            "UTF-8 텍스트가 아닙니다: 0x{byte} 바이트를 읽을 수 없습니다(EUC-KR(CP949), Latin-1, Windows-1252 같은 다른 "
            "인코딩으로 저장된 파일로 보입니다). UTF-8로 다시 저장하세요")
MESSAGES = {
    # where (the prefix of every message): "f.jsonl, row 3, field 'messages': ..."
    "data_at_row": ("row {row}", "{row}행"),
    "data_at_field": ("field '{name}'", "'{name}' 필드"),
    # the source
    "data_no_file": ("no file chosen", "파일을 고르지 않았습니다"),
    "data_unknown_source": ("unknown dataset source '{source}'", "알 수 없는 데이터셋 출처('{source}')입니다"),
    "data_uploads_only": ("on this shared server, only uploaded files can be used",
                          "이 공유 서버에서는 업로드한 파일만 쓸 수 있습니다"),
    "data_file_type": ("unsupported file type '{ext}'; use one of {allowed}",
                       "지원하지 않는 파일 형식('{ext}')입니다. {allowed} 중 하나를 쓰세요"),
    "data_no_ext": ("(none)", "(없음)"),
    "data_too_large": ("larger than {mb} MB", "파일이 {mb} MB보다 큽니다"),
    "data_hub_id": ("'{repo_id}' is not a Hub dataset id (expected owner/name)",
                    "'{repo_id}'은(는) Hub 데이터셋 id가 아닙니다 (소유자/이름 형식이어야 합니다)"),
    "data_hub_failed": ("could not load from the Hub: {detail}", "Hub에서 불러올 수 없습니다: {detail}"),
    # the file as a whole
    "data_not_found": ("file not found", "파일이 없습니다"),
    "data_empty_file": ("the file is empty (0 bytes)", "빈 파일입니다 (0바이트)"),
    "data_blank_file": ("the file holds only blank lines or spaces, no data",
                        "파일에 빈 줄이나 공백만 있고 데이터가 없습니다"),
    "data_no_rows": ("the file has no rows", "파일에 행이 없습니다"),
    "data_unreadable": ("could not read the file ({reason})", "파일을 읽을 수 없습니다 ({reason})"),
    "data_io_error": ("an input/output error", "입출력 오류"),
    "data_utf16": ("the file is UTF-16 text (Windows 'Unicode'); save it as UTF-8",
                   "UTF-16 텍스트 파일입니다(Windows의 '유니코드'). UTF-8로 다시 저장하세요"),
    "data_not_utf8": NOT_UTF8,
    "data_not_utf8_line": (NOT_UTF8[0] + " (line {line})", NOT_UTF8[1] + " ({line}번째 줄)"),  # one JSON document
    "data_parquet_unreadable": ("not a readable Parquet file: {detail}", "읽을 수 있는 Parquet 파일이 아닙니다: {detail}"),
    # JSON and JSON Lines
    "data_jsonl_invalid": ("invalid JSON on this line ({msg}, column {col}){hint}",
                           "이 줄은 올바른 JSON이 아닙니다 ({msg}, {col}번째 글자){hint}"),
    "data_jsonl_unreadable": ("this line can't be read as JSON: {reason}", "이 줄을 JSON으로 읽을 수 없습니다: {reason}"),
    "data_line_not_object": ("each line must be a JSON object {{...}}, got {kind}{hint}",
                             "각 줄은 JSON 객체 {{...}}여야 하는데 {kind}입니다{hint}"),
    "data_json_invalid": ("invalid JSON at line {line}, column {col}: {msg}{hint}",
                          "올바른 JSON이 아닙니다 ({line}번째 줄, {col}번째 글자): {msg}{hint}"),
    "data_json_unreadable": ("can't be read as JSON: {reason}", "JSON으로 읽을 수 없습니다: {reason}"),
    "data_json_lists": ("expected a list of rows, or an object holding one list of rows",
                        "행 목록이나, 행 목록 하나를 담은 객체여야 합니다"),
    "data_json_not_list": ("expected a list of rows [{{...}}, {{...}}], got {kind}",
                           "행 목록 [{{...}}, {{...}}]이어야 하는데 {kind}입니다"),
    "data_row_not_object": ("each row must be a JSON object {{...}}, got {kind}",
                            "각 행은 JSON 객체 {{...}}여야 하는데 {kind}입니다"),
    "data_hint_one_document": (" (is the file one JSON document over many lines? name it .json)",
                               " (파일 전체가 여러 줄에 걸친 JSON 문서 하나인가요? 그렇다면 확장자를 .json으로 하세요)"),
    "data_hint_one_list": (" (if the whole file is one JSON list, name it .json)",
                           " (파일 전체가 JSON 목록 하나라면 확장자를 .json으로 하세요)"),
    "data_hint_jsonl": (" (is this JSON Lines? rename it to .jsonl)",
                        " (JSON Lines 파일인가요? 그렇다면 확장자를 .jsonl로 바꾸세요)"),
    "data_too_deep": ("brackets are nested too deeply (is the file damaged?)",
                      "괄호가 너무 깊이 중첩되어 있습니다(파일이 손상되었나요?)"),
    "data_too_many_digits": ("a number has too many digits (more than 4,300)",
                             "숫자의 자릿수가 너무 많습니다(4,300자리 초과)"),
    # CSV
    "data_csv_header_unreadable": ("could not read the CSV header: {detail}", "CSV 머리글을 읽을 수 없습니다: {detail}"),
    "data_csv_no_header": ("the first line must be a header naming the columns (e.g. instruction,input,output); "
                           "found {found}",
                           "첫 줄은 열 이름을 적은 머리글이어야 합니다(예: instruction,input,output). 첫 줄: {found}"),
    "data_csv_repeated_column": ("the header repeats a column name", "머리글에 같은 열 이름이 두 번 있습니다"),
    "data_csv_value_count": ("expected {n} values ({names}), found {found} (a value with a comma in it needs "
                             "\"quotes\")",
                             "값이 {n}개({names})여야 하는데 {found}개입니다(쉼표가 들어간 값은 \"따옴표\"로 "
                             "감싸야 합니다)"),
    "data_csv_cell_json": ("cell is not valid JSON", "셀 내용이 올바른 JSON이 아닙니다"),
    "data_csv_malformed": ("malformed CSV: {detail}", "CSV 형식이 잘못되었습니다: {detail}"),
    # the format
    "data_conv_is_text": ("holds text, not a list of messages (a JSON list saved as a string?)",
                          "메시지 목록이 아니라 텍스트가 들어 있습니다(JSON 목록을 문자열로 저장했나요?)"),
    "data_conv_not_messages": ("must be a list of {{role, content}} or {{from, value}} messages, got {kind}",
                               "{{role, content}} 또는 {{from, value}} 메시지의 목록이어야 하는데 {kind}입니다"),
    "data_conv_list_of": ("must be a list of {{role, content}} or {{from, value}} messages, got a list of {kinds}",
                          "{{role, content}} 또는 {{from, value}} 메시지의 목록이어야 하는데 {kinds}의 목록입니다"),
    "data_message_keys": ("messages have keys {keys}; expected from/value or role/content",
                          "메시지의 키가 {keys}입니다. from/value 또는 role/content여야 합니다"),
    "data_prompt_completion": ("prompt/completion columns: rename them to instruction/output (Alpaca)",
                               "prompt/completion 열은 instruction/output(Alpaca)으로 이름을 바꾸세요"),
    "data_no_format": ("no conversation-like columns: found {found}; expected 'conversations' (ShareGPT), "
                       "'messages' (OpenAI) or 'instruction'/'output' (Alpaca)",
                       "대화 형식의 열이 없습니다(있는 열: {found}). 'conversations'(ShareGPT), 'messages'(OpenAI), "
                       "또는 'instruction'/'output'(Alpaca)이 있어야 합니다"),
    # one row
    "data_mixed_formats": ("missing: this row has {keys}, but the file's first rows are {format}; every row must "
                           "use the same format",
                           "없습니다. 이 행의 열은 {keys}인데 파일의 앞쪽 행은 {format} 형식입니다. 모든 행이 같은 "
                           "형식이어야 합니다"),
    "data_not_text": ("must be text, got {kind}", "텍스트여야 하는데 {kind}입니다"),
    "data_not_nonempty_text": ("must be non-empty text, got {kind}", "비어 있지 않은 텍스트여야 하는데 {kind}입니다"),
    "data_empty_text": ("is empty; it must be non-empty text", "비어 있습니다. 내용이 있는 텍스트여야 합니다"),
    "data_conv_not_list": ("must be a list of messages, got {kind}", "메시지 목록이어야 하는데 {kind}입니다"),
    "data_conv_empty": ("the conversation is empty", "대화가 비어 있습니다"),
    "data_message_not_object": ("a message must be an object {{{role_key}, {content_key}}}, got {kind}",
                                "메시지는 {{{role_key}, {content_key}}} 객체여야 하는데 {kind}입니다"),
    "data_message_missing": ("missing (each message needs '{role_key}' and '{content_key}')",
                             "없습니다(메시지마다 '{role_key}', '{content_key}' 둘 다 있어야 합니다)"),
    "data_unknown_role": ("unknown role '{role}' (expected one of user/assistant/system, human/gpt)",
                          "알 수 없는 역할 '{role}'입니다(user/assistant/system, human/gpt 중 하나여야 합니다)"),
    "data_no_assistant": ("the conversation has no assistant reply to learn from",
                          "대화에 학습할 assistant 응답이 없습니다"),
    # preference pairs (studio/pairs.py)
    "data_pair_column": ("a preference dataset needs both 'chosen' and 'rejected' columns; '{key}' is missing",
                         "선호 데이터셋에는 'chosen'과 'rejected' 열이 모두 있어야 하는데 '{key}' 열이 없습니다"),
    "data_pair_missing": ("missing: every row of a preference dataset needs '{key}'",
                          "없습니다. 선호 데이터셋의 모든 행에 '{key}'이(가) 있어야 합니다"),
    "data_pair_kind": ("must be text or a list of messages, got {kind}",
                       "텍스트나 메시지 목록이어야 하는데 {kind}입니다"),
    "data_pair_no_prompt_column": ("chosen and rejected are text, so a prompt column is needed (prompt, question, "
                                   "instruction or input); found {found}",
                                   "chosen과 rejected가 텍스트이므로 프롬프트 열(prompt, question, instruction, input 중 "
                                   "하나)이 있어야 합니다. 있는 열: {found}"),
    "data_pair_no_prompt": ("chosen and rejected share no messages before their answers, and there is no prompt",
                            "chosen과 rejected가 답변 앞에 공유하는 메시지가 없고, 프롬프트도 없습니다"),
    "data_pair_no_user": ("the prompt has no user message", "프롬프트에 사용자(user) 메시지가 없습니다"),
    "data_pair_not_answer": ("must be the assistant's answer after the prompt, got a '{role}' message",
                             "프롬프트 뒤의 assistant 답변이어야 하는데 '{role}' 메시지가 있습니다"),
    "data_pair_identical": ("is the same as 'chosen': a pair needs two different answers",
                            "'chosen'과 같습니다. 한 쌍에는 서로 다른 두 답변이 있어야 합니다"),
    "data_needs_pairs": ("{stage} learns from chosen/rejected pairs, and this dataset is {format}: choose a preference "
                         "dataset (the bundled sample of pairs is {path})",
                         "{stage}는 chosen/rejected 쌍으로 학습하는데 이 데이터셋은 {format} 형식입니다. 선호 데이터셋을 "
                         "고르세요(내장 쌍 예제: {path})"),
    "data_bad_char": ("holds an invalid character (\\u{char}, half of an emoji or symbol) at character {at}; fix or "
                      "re-export the file",
                      "{at}번째 글자가 잘못된 문자(\\u{char}, 이모지나 기호의 절반)입니다. 고치거나 파일을 다시 "
                      "내보내세요"),
    # JSON's types, in the user's words (kind: one, kinds: several)
    "data_kind_null": ("null", "null"),
    "data_kind_bool": ("true/false", "참/거짓 값"),
    "data_kind_number": ("a number", "숫자"),
    "data_kind_text": ("text", "텍스트"),
    "data_kind_list": ("a list", "목록"),
    "data_kind_object": ("an object", "객체"),
    "data_kinds_null": ("nulls", "null"),
    "data_kinds_bool": ("true/false values", "참/거짓 값"),
    "data_kinds_number": ("numbers", "숫자"),
    "data_kinds_text": ("texts", "텍스트"),
    "data_kinds_list": ("lists", "목록"),
    "data_kinds_object": ("objects", "객체"),
}


@dataclass
class Dataset:
    """Rows as loaded (any sequence of dicts: a list, or a Hugging Face `datasets.Dataset`)."""
    name: str
    rows: Sequence[dict]
    format: str  # sharegpt | openai | alpaca | pairs_text | pairs_chat
    conversation_column: str | None  # for sharegpt/openai; for pairs, the prompt's column (None: implied)
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def extra_columns(self) -> list[str]:
        if self.format in PAIR_FORMATS:
            used = {self.conversation_column, "chosen", "rejected", "system"}
        else:
            used = {self.conversation_column} if self.conversation_column else {"instruction", "input", "output",
                                                                                 "system"}
        return [c for c in self.columns if c not in used]

    @property
    def is_pairs(self) -> bool:
        return self.format in PAIR_FORMATS

    def standardized(self, index: int) -> list[dict]:
        """The row as one conversation (for pairs: the prompt and the chosen answer)."""
        return standardize_row(self.rows[index], self, index)

    def pair(self, index: int):
        """A preference row as studio.pairs.Pair (prompt, chosen, rejected messages)."""
        from studio import pairs
        return pairs.standardize(self.rows[index], self, index)

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
                raise DataError("data_utf16", file=name)
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
            raise DataError("data_parquet_unreadable", file=name, detail=_short(exc).replace(str(path), name)) from None
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
            raise DataError("data_no_file")
        # Uploads are stored as <hash>-<name>; messages name the file as the user knows it.
        display = re.sub(r"^[0-9a-f]{12}-", "", Path(path).name)
        ds = load_file(check_path(path, allowed_roots, display), display_name=display)
    elif source == "hub":
        ds = load_hub(path, split, token=token)
    else:
        raise DataError("data_unknown_source", source=source)
    if max_rows and max_rows < len(ds):
        ds.rows = FirstRows(ds.rows, max_rows)
    return ds


def check_path(path: str, allowed_roots: Sequence[Path] | None, display: str = "") -> Path:
    """The path rule of shared servers: only files under the allowed folders (uploads, bundled assets)."""
    resolved = resolve_path(path).resolve()
    if allowed_roots is not None and not any(resolved.is_relative_to(Path(r).resolve()) for r in allowed_roots):
        raise DataError("data_uploads_only", file=display or Path(path).name)
    return resolved


def uploads_dir(owner: str | None = None) -> Path:
    """Where a person's uploads are kept (content-addressed), so config.yaml can name them for good."""
    from studio.runs import LOCAL_OWNER, runs_root, sanitize_name
    d = runs_root() / "uploads" / sanitize_name(owner or LOCAL_OWNER)
    d.mkdir(parents=True, exist_ok=True)
    return d


def allowed_roots(owner: str | None = None) -> list[Path] | None:
    """The folders a dataset file may come from: anywhere locally; on a shared server (studio/access.py), the
    owner's uploads and the bundled assets."""
    from studio import access
    from studio.config import REPO_ROOT
    return [uploads_dir(owner), REPO_ROOT / "assets"] if access.shared() else None


def store_upload(tmp_path: str, owner: str | None = None) -> Path:
    """Keep an upload under the owner's uploads folder, named by its content's hash."""
    import hashlib
    import shutil
    src = Path(tmp_path)
    if src.suffix.lower() not in ALLOWED_EXTENSIONS:
        raise DataError("data_file_type", file=src.name, ext=src.suffix or "data_no_ext",
                        allowed=", ".join(ALLOWED_EXTENSIONS))
    if src.stat().st_size > MAX_UPLOAD_MB * 2**20:
        raise DataError("data_too_large", file=src.name, mb=MAX_UPLOAD_MB)
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


def rows_left(n_rows: int, held: list[int]) -> list[int] | None:
    """The rows not held out for evaluation (None: none held, every row). Linear: 100k rows in ~10 ms."""
    if not held:
        return None
    held_set = set(held)
    return [i for i in range(n_rows) if i not in held_set]


def select_rows(n_rows: int, max_steps: int, rows_per_step: int, seed: int) -> list[int] | None:
    """The rows a run trains on: with max_steps set, a seeded sample of max_steps x rows-per-step rows
    (sorted, so reading stays sequential); None = every row (epoch runs, or a file smaller than that).
    The exported script applies the same rule."""
    k = max_steps * rows_per_step if max_steps > 0 else 0
    if not k or k >= n_rows:
        return None
    return sorted(random.Random(seed).sample(range(n_rows), k))


EVAL_FILE_ROWS = 1000  # a separate eval file or split: its first rows are evaluated on


@dataclass
class RunSplit:
    """The rows a run uses."""
    train: list[int] | None     # rows of the dataset it trains on, ascending (None: every row)
    eval_ds: Dataset | None     # what it evaluates on: the same dataset (eval_size), a separate one, or none
    eval: list[int]             # the rows of eval_ds it evaluates on


def run_split(ds: Dataset, eval_file: Dataset | None, d, t, rows_per_step: int) -> RunSplit:
    """The worker's rule, which the data checks follow too: rows held out for evaluation (eval_size; with a separate
    eval file, its first EVAL_FILE_ROWS instead), then the max_steps sample of the rest. d, t: the run's DataConfig
    and TrainConfig; rows_per_step counts every GPU's."""
    held = holdout(len(ds), d.eval_size, t.seed) if d.eval_size and eval_file is None else []
    pool = rows_left(len(ds), held)
    picks = select_rows(len(pool) if pool is not None else len(ds), t.max_steps, rows_per_step, t.seed)
    train = pool if picks is None else ([pool[i] for i in picks] if pool is not None else picks)
    eval_ds = eval_file if eval_file is not None else (ds if d.eval_size else None)
    evaluated = (held or list(range(min(len(eval_ds), EVAL_FILE_ROWS)))) if eval_ds is not None else []
    return RunSplit(train, eval_ds, evaluated)


def eval_source(d) -> tuple[str, str, str] | None:
    """(source, path, split) of a run's separate eval rows (DataConfig.eval_path): a second file, or another split
    of the same Hub dataset; None when there is none."""
    if not d.eval_path:
        return None
    return ("hub", d.path, d.eval_path) if d.source == "hub" else ("file", d.eval_path, d.split)


def load_hub(repo_id: str, split: str = "train", token: str | None = None) -> Dataset:
    repo_id = (repo_id or "").strip()
    if not repo_id or repo_id.count("/") != 1:
        raise DataError("data_hub_id", repo_id=repo_id)
    import datasets  # heavy; only needed for Hub datasets
    try:
        rows = datasets.load_dataset(repo_id, split=split or "train", token=token or None)
    except Exception as exc:  # network down, no such repo, no such split: all the user's to fix
        raise DataError("data_hub_failed", file=repo_id, detail=_short(exc)) from None
    return _make_dataset(repo_id, rows, list(rows.column_names))


def load_file(path: Path, display_name: str | None = None) -> Dataset:
    path = Path(path)
    name = display_name or path.name
    ext = "".join(path.suffixes[-1:]).lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise DataError("data_file_type", file=name, ext=ext or "data_no_ext", allowed=", ".join(ALLOWED_EXTENSIONS))
    if not path.is_file():
        raise DataError("data_not_found", file=name)
    try:
        if path.stat().st_size == 0:
            raise DataError("data_empty_file", file=name)
        if ext == ".jsonl":
            rows = JsonlRows(path, name)
            if not len(rows):
                raise DataError("data_blank_file", file=name)
        elif ext == ".parquet":
            rows = ParquetRows(path, name)
        else:  # one JSON document or a CSV: small formats, parsed whole
            text = _read_text(path.read_bytes(), name, ext)
            if not text.strip():
                raise DataError("data_blank_file", file=name)
            rows = {".json": _parse_json, ".csv": _parse_csv}[ext](text, name)
    except OSError as exc:  # unreadable: permissions, a vanished upload
        raise DataError("data_unreadable", file=name, reason=exc.strerror or "data_io_error") from None
    if not len(rows):
        raise DataError("data_no_rows", file=name)
    columns = rows.columns if isinstance(rows, ParquetRows) else \
        list(dict.fromkeys(k for r in _head(rows, 50) for k in r))
    return _make_dataset(name, rows, columns)


def _read_text(data: bytes, name: str, ext: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError("data_utf16", file=name)
    try:
        return data.decode("utf-8-sig")  # tolerate a BOM: editors on Windows add one
    except UnicodeDecodeError as exc:
        line, byte = data[:exc.start].count(b"\n") + 1, f"{data[exc.start]:02X}"
        if ext == ".json":  # one JSON document: a line, not a row
            raise DataError("data_not_utf8_line", file=name, byte=byte, line=line) from None
        raise DataError("data_not_utf8", file=name, row=line, byte=byte) from None  # JSONL and CSV: line n is row n


def _parse_jsonl_line(raw: bytes, name: str, n: int) -> dict:
    """One line of a JSON Lines file; n is its line number (what the user's editor shows)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError("data_not_utf8", file=name, row=n, byte=f"{raw[exc.start]:02X}") from None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        hint = "data_hint_one_document" if n == 1 and line.strip() in ("[", "{") else ""
        raise DataError("data_jsonl_invalid", file=name, row=n, msg=exc.msg, col=exc.colno, hint=hint) from None
    except (RecursionError, ValueError) as exc:  # brackets nested thousands deep; a 5,000-digit number
        raise DataError("data_jsonl_unreadable", file=name, row=n, reason=_json_limit(exc)) from None
    if not isinstance(row, dict):
        hint = "data_hint_one_list" if isinstance(row, list) else ""
        raise DataError("data_line_not_object", file=name, row=n, kind=_kind(row), hint=hint)
    return row


def _parse_json(text: str, name: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "data_hint_jsonl" if exc.msg == "Extra data" else ""
        raise DataError("data_json_invalid", file=name, line=exc.lineno, col=exc.colno, msg=exc.msg,
                        hint=hint) from None
    except (RecursionError, ValueError) as exc:
        raise DataError("data_json_unreadable", file=name, reason=_json_limit(exc)) from None
    if isinstance(data, dict):  # {"train": [...]} or {"data": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("data_json_lists", file=name)
        data = lists[0]
    if not isinstance(data, list):
        raise DataError("data_json_not_list", file=name, kind=_kind(data))
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise DataError("data_row_not_object", file=name, row=n, kind=_kind(row))
    return data


def _parse_csv(text: str, name: str) -> list[dict]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise DataError("data_csv_header_unreadable", file=name, detail=str(exc)) from None
    header = [h.strip() for h in header]
    if not any(h.lower() in ("instruction", "output", "messages", "conversations", "input", "chosen") for h in header):
        raise DataError("data_csv_no_header", file=name, row=1, found=str(header[:6]))
    if len(set(header)) != len(header):
        raise DataError("data_csv_repeated_column", file=name, row=1)
    rows = []
    try:
        for n, values in enumerate(reader, 2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError("data_csv_value_count", file=name, row=n, n=len(header), names=", ".join(header),
                                found=len(values))
            row = dict(zip(header, values))
            for key in CONVERSATION_COLUMNS:  # a JSON list inside a CSV cell
                if key in row and row[key].strip().startswith("["):
                    try:
                        row[key] = json.loads(row[key])
                    except json.JSONDecodeError:
                        raise DataError("data_csv_cell_json", file=name, row=n, column=key) from None
            rows.append(row)
    except csv.Error as exc:
        raise DataError("data_csv_malformed", file=name, row=reader.line_num, detail=str(exc)) from None
    return rows


def _read_parquet(path: Path, name: str) -> list[dict]:
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds; its message names our full path: keep the name only
        raise DataError("data_parquet_unreadable", file=name, detail=_short(exc).replace(str(path), name)) from None


# ---------------------------------------------------------------- format detection

def _make_dataset(name: str, rows: Sequence[dict], columns: list[str]) -> Dataset:
    fmt, column = detect_format(rows, columns, name)
    ds = Dataset(name=name, rows=rows, format=fmt, conversation_column=column, columns=columns)
    return ds


def detect_format(rows: Sequence[dict], columns: list[str], name: str = "") -> tuple[str, str | None]:
    from studio import pairs
    found = pairs.detect(rows, columns, name)  # first: some preference sets also keep a 'messages' column
    if found:
        return found
    lower = {c.lower(): c for c in columns}
    for key in CONVERSATION_COLUMNS:
        if key in lower:
            column = lower[key]
            at, sample = next(((n, r[column]) for n, r in enumerate(_head(rows), 1) if r.get(column)), (1, None))
            if isinstance(sample, str):  # a JSON list stored as a string
                raise DataError("data_conv_is_text", file=name, row=at, column=column)
            if not isinstance(sample, list) or not sample or not isinstance(sample[0], dict):
                if isinstance(sample, list) and sample:
                    raise DataError("data_conv_list_of", file=name, row=at, column=column,
                                    kinds=_kind(sample[0], plural=True))
                raise DataError("data_conv_not_messages", file=name, row=at, column=column, kind=_kind(sample))
            keys = set(sample[0])
            if {"from", "value"} <= keys:
                return "sharegpt", column
            if {"role", "content"} <= keys:
                return "openai", column
            raise DataError("data_message_keys", file=name, row=at, column=column, keys=str(sorted(keys)))
    if "instruction" in lower and "output" in lower:
        return "alpaca", None
    if "prompt" in lower and ("completion" in lower or "response" in lower):
        raise DataError("data_prompt_completion", file=name)
    raise DataError("data_no_format", file=name, found=str(columns[:8]))


def _head(rows, n=20):
    return (rows[i] for i in range(min(n, len(rows))))


# ---------------------------------------------------------------- standardization

def standardize_row(row: dict, ds: Dataset, index: int) -> list[dict]:
    """One row to [{role, content}], roles mapped to system/user/assistant."""
    if ds.format in PAIR_FORMATS:
        from studio import pairs
        pair = pairs.standardize(row, ds, index)
        return pair.prompt + pair.chosen
    where = dict(file=ds.name, row=index + 1)
    for key in [ds.conversation_column] if ds.conversation_column else ["instruction", "output"]:
        if key not in row:  # a row of another format (files are checked row by row, as they are read)
            raise DataError("data_mixed_formats", column=key, keys=str(sorted(row)[:6]), format=FORMAT_NAMES[ds.format],
                            **where)
    if ds.format == "alpaca":
        instruction, extra = _text(row, "instruction", where), row.get("input") or ""
        if not isinstance(extra, str):
            raise DataError("data_not_text", column="input", kind=_kind(extra), **where)
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
        raise DataError("data_conv_not_list", column=column, kind=_kind(turns), **where)
    if not turns:
        raise DataError("data_conv_empty", column=column, **where)
    keys = ("from", "value") if ds.format == "sharegpt" else ("role", "content")
    messages = read_messages(turns, column, where, keys)
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError("data_no_assistant", column=column, **where)
    return messages


def read_messages(turns: list, column: str, where: dict, keys: tuple[str, str] | None = None) -> list[dict]:
    """A list of {role, content} or {from, value} messages as role/content with roles system/user/assistant; a
    message that is not one says which (field '<column>[i].<key>'). keys None: each message's own pair of keys."""
    messages = []
    for t, turn in enumerate(turns):
        field_name = f"{column}[{t}]"
        role_key, content_key = keys or (("from", "value") if isinstance(turn, dict) and "from" in turn
                                         and "role" not in turn else ("role", "content"))
        if not isinstance(turn, dict):
            raise DataError("data_message_not_object", column=field_name, role_key=role_key,
                            content_key=content_key, kind=_kind(turn), **where)
        for key in (role_key, content_key):
            if key not in turn:
                raise DataError("data_message_missing", column=f"{field_name}.{key}", role_key=role_key,
                                content_key=content_key, **where)
        raw_role = turn[role_key]
        role = ROLE_ALIASES.get(str(raw_role).strip().lower())
        if role is None:
            raise DataError("data_unknown_role", column=f"{field_name}.{role_key}", role=str(raw_role), **where)
        content = turn[content_key]
        if not isinstance(content, str):
            raise DataError("data_not_text", column=f"{field_name}.{content_key}", kind=_kind(content), **where)
        _check_encodable(content, f"{field_name}.{content_key}", where)
        messages.append({"role": role, "content": content})
    return messages


def _text(row: dict, key: str, where: dict) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError("data_not_nonempty_text", column=key, kind=_kind(value), **where)
    if not value.strip():
        raise DataError("data_empty_text", column=key, **where)
    _check_encodable(value, key, where)
    return value


def _check_encodable(text: str, column: str, where: dict) -> None:
    """A lone UTF-16 surrogate ("\\ud83d", half an emoji from a bad export) parses as JSON but no
    tokenizer takes it: the worker would crash on it mid-setup."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError("data_bad_char", column=column, char=f"{ord(text[exc.start]):04x}", at=exc.start + 1,
                            **where) from None


def _kind(value, plural: bool = False) -> str:
    """A value's type in the user's words (JSON's), not Python's: a code of MESSAGES (data_kind_*, data_kinds_*)."""
    kinds = [(type(None), "null"), (bool, "bool"), ((int, float), "number"), (str, "text"), ((list, tuple), "list"),
             (dict, "object")]
    for types, name in kinds:
        if isinstance(value, types):
            return f"data_kinds_{name}" if plural else f"data_kind_{name}"
    return type(value).__name__


def _json_limit(exc: Exception) -> str:
    """Why JSON could not be read: a code of ours, or the library's own words."""
    if isinstance(exc, RecursionError):
        return "data_too_deep"
    if "digits" in str(exc):
        return "data_too_many_digits"
    return _short(exc)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
