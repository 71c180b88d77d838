import json

import pytest

from studio import data
from studio.config import BUNDLED_DATA, resolve_path


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


SHAREGPT = {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "2+2?"},
                              {"from": "gpt", "value": "4"}], "source": "x", "score": 4.5}
OPENAI = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], "id": 7}
ALPACA = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "lang": "en"}


def test_sharegpt_is_detected_and_mapped_to_roles(tmp_path):
    ds = data.load_file(write_jsonl(tmp_path / "a.jsonl", [SHAREGPT]))
    assert (ds.format, ds.conversation_column, ds.extra_columns) == ("sharegpt", "conversations", ["source", "score"])
    assert ds.standardized(0) == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                  {"role": "assistant", "content": "4"}]


def test_openai_messages_are_detected(tmp_path):
    ds = data.load_file(write_jsonl(tmp_path / "b.jsonl", [OPENAI]))
    assert (ds.format, ds.extra_columns) == ("openai", ["id"])
    assert ds.standardized(0)[1] == {"role": "assistant", "content": "Hello"}


def test_alpaca_becomes_user_and_assistant(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps([ALPACA, {**ALPACA, "input": ""}]), encoding="utf-8")
    ds = data.load_file(tmp_path / "c.json")
    assert ds.format == "alpaca" and ds.extra_columns == ["lang"]
    assert ds.standardized(0) == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                                  {"role": "assistant", "content": "5"}]
    assert ds.standardized(1)[0]["content"] == "Add the numbers."


def test_csv_and_parquet_load(tmp_path):
    (tmp_path / "d.csv").write_text("instruction,input,output\nSay hi,,hi\n", encoding="utf-8")
    assert data.load_file(tmp_path / "d.csv").standardized(0)[1]["content"] == "hi"
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([OPENAI, OPENAI]), tmp_path / "e.parquet")
    assert len(data.load_file(tmp_path / "e.parquet")) == 2


def test_paging_standardizes_only_the_page(tmp_path):
    rows = [SHAREGPT] * 25 + [{"conversations": [{"from": "alien", "value": "?"}]}]
    ds = data.load_file(write_jsonl(tmp_path / "f.jsonl", rows))
    raw, std = ds.page(0, 10)
    assert len(raw) == len(std) == 10  # the bad last row is not touched by page 0
    with pytest.raises(data.DataError, match=r"f.jsonl, row 26, field 'conversations\[0\].from'.*unknown role 'alien'"):
        ds.page(2, 10)


def test_bundled_source_never_reads_another_path(tmp_path):
    other = write_jsonl(tmp_path / "secret.jsonl", [OPENAI])
    ds = data.load_dataset_source("bundled", str(other))
    assert ds.name == "sample_chat.jsonl" and ds.format == "sharegpt"


def test_bundled_sample_matches_unsloth_standardize_data_formats():
    import unsloth  # noqa: F401
    from datasets import Dataset
    from unsloth.chat_templates import standardize_data_formats
    ds = data.load_dataset_source("bundled", BUNDLED_DATA)
    assert ds.format == "sharegpt" and len(ds) >= 300
    theirs = standardize_data_formats(Dataset.from_list(list(ds.rows)))
    for i in range(0, len(ds), 37):
        assert ds.standardized(i) == theirs[i]["conversations"]
    assert resolve_path(BUNDLED_DATA).is_file()


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_line_index_matches_a_line_by_line_reading(tmp_path, block):
    """The numpy index agrees with Python's own lines: blank and space-only lines, a BOM alone, CRLF, no final
    newline, and lines that cross the blocks it reads."""
    import io
    import random
    rng = random.Random(block)
    pieces = [b"\xef\xbb\xbf{\"a\": 1}\n", b"\n", b"   \t\n", b"\xef\xbb\xbf\n", b"\r\n", b"{\"b\": 2}\r\n",
              b" {\"c\": 3}\n", b"\x0b\x0c\n", b"x" * 40 + b"\n", b"\xef\xbb\xbf  \n", b"abc\n"]
    for case in range(20):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        if case % 2:
            body += b"{\"tail\": true}"  # no final newline
        path = tmp_path / f"f{case}.jsonl"
        path.write_bytes(body)
        want, offset = ([], [], []), 0
        for number, line in enumerate(io.BytesIO(body), 1):  # a binary file's lines end at b"\n" only
            if line.strip() and line.strip() != b"\xef\xbb\xbf":
                want[0].append(offset)
                want[1].append(offset + len(line))
                want[2].append(number)
            offset += len(line)
        got = data.index_lines(path, block=block)
        assert tuple(list(x) for x in got) == want, body
