"""Write the malformed-dataset corpus in this folder (deterministic; the outputs are committed).

    .venv/bin/python tests/bad_data/make_corpus.py

Each file is a few lines or bytes and breaks one rule; tests/test_bad_data.py says, for each,
which file/row/field the DataError must name. Three files are *not* broken and must load:
bom.jsonl, bom.csv (a UTF-8 byte-order mark is tolerated) and too_long_rows.jsonl (3 rows far
beyond max_length=128, dropped by train_on_responses_only during training, with a count).
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def sharegpt(q="What is 2 + 2?", a="2 + 2 = 4."):
    return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def openai(q="Say hi.", a="Hi!"):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def alpaca(i="Add the numbers.", x="2 and 3", o="5"):
    return {"instruction": i, "input": x, "output": o}


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)


TEXT: dict[str, str] = {
    # ---- the file as a whole
    "invalid_json.json": ('[\n  {"instruction": "Say hi", "output": "hi"},\n'
                          '  {"instruction": "Say bye" "output": "bye"}\n]\n'),
    "bad_line_in_middle.jsonl": jsonl(sharegpt(), sharegpt("What is 3 + 3?", "6"),
                                      '{"conversations": [{"from": "human", "value": "What is 4 + 4?"},',
                                      sharegpt("What is 5 + 5?", "10")),
    "whitespace_only.jsonl": "   \n\t\n  \n",
    "no_conversation_columns.jsonl": jsonl({"text": "Once upon a time.", "label": 1}, {"text": "The end.", "label": 0}),
    "wrong_extension.txt": jsonl(sharegpt()),
    "scalar.json": "42\n",
    "list_of_strings.json": '["What is 2 + 2?", "4"]\n',
    "jsonl_named_json.json": jsonl(alpaca(), alpaca("Subtract.", "5 and 3", "2")),
    "empty_list.json": "[]\n",
    "prompt_completion.jsonl": jsonl({"prompt": "2 + 2 =", "completion": "4"}),
    # ---- one row
    "unknown_role.jsonl": jsonl(sharegpt(), {"conversations": [{"from": "narrator", "value": "Once"},
                                                               {"from": "gpt", "value": "upon"}]}),
    "empty_conversation.jsonl": jsonl(sharegpt(), {"conversations": []}, sharegpt()),
    "no_assistant_turn.jsonl": jsonl(sharegpt(), {"conversations": [{"from": "system", "value": "Be brief."},
                                                                    {"from": "human", "value": "Hello?"}]}),
    "mixed_schemas.jsonl": jsonl(sharegpt(), alpaca(), sharegpt()),
    "message_missing_content.jsonl": jsonl(openai(), {"messages": [{"role": "user", "content": "Hi"},
                                                                   {"role": "assistant"}]}),
    "content_number.jsonl": jsonl({"messages": [{"role": "user", "content": "2 + 2?"},
                                                {"role": "assistant", "content": 4}]}),
    "content_null.jsonl": jsonl(sharegpt(), {"conversations": [{"from": "human", "value": "Hi"},
                                                               {"from": "gpt", "value": None}]}),
    "alpaca_empty_output.json": json.dumps([alpaca(), alpaca("Say nothing.", "", "")], indent=1) + "\n",
    "message_not_object.jsonl": jsonl({"conversations": [{"from": "human", "value": "Hi"}, "gpt: Hello!"]}),
    "line_is_array.jsonl": jsonl(sharegpt(), [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]),
    "unknown_message_keys.jsonl": jsonl({"conversations": [{"speaker": "user", "text": "Hi"},
                                                           {"speaker": "bot", "text": "Hello"}]}),
    # an emoji cut in half by a bad export: a lone UTF-16 surrogate that no tokenizer accepts
    "lone_surrogate.jsonl": jsonl(sharegpt(), '{"conversations": [{"from": "human", "value": "Hi \\ud83d"}, '
                                              '{"from": "gpt", "value": "Hello"}]}'),
    # a number too long for Python's int() (more than 4300 digits) in an extra column
    "huge_number.jsonl": jsonl(sharegpt(), '{"conversations": [{"from": "human", "value": "Hi"}, '
                                           '{"from": "gpt", "value": "Hello"}], "score": ' + "9" * 5000 + "}"),
    "json_array_as_jsonl.jsonl": json.dumps([sharegpt(), sharegpt("Hi", "Hello")]) + "\n",
    "deep_nesting.jsonl": jsonl(sharegpt(), '{"conversations": ' + "[" * 10000 + "]" * 10000 + "}"),
    # ---- CSV
    "no_header.csv": "Say hi,,hi\nSay bye,,bye\n",
    "wrong_value_count.csv": "instruction,input,output\nSay hi,,hi\nAdd,2,3,5\n",
    "duplicate_header.csv": "instruction,output,output\nSay hi,hi,hello\n",
    "csv_bad_json_cell.csv": ('messages\n'
                              '"[{""role"": ""user"", ""content"": ""Hi""}, '
                              '{""role"": ""assistant"", ""content"": ""Hello""}]"\n'
                              '"[{""role"": ""user"", ""content"": ""Hi""}, {""role"": ""assistant"""\n'),
    # ---- must load
    "bom.csv": "\ufeffinstruction,input,output\nSay hi,,hi\n",
}

BYTES: dict[str, bytes] = {
    "empty.jsonl": b"",
    "empty_upload.parquet": b"",  # what a 0-byte upload leaves behind
    "not_parquet.parquet": b"PAR1 this is not a parquet file\n",
    "spreadsheet.xlsx": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # the start of a zip, as .xlsx files are
    # "café" saved as Latin-1 (0xE9) on line 2
    "utf16.jsonl": jsonl(sharegpt()).encode("utf-16"),  # Windows Notepad's "Unicode"
    "latin1.jsonl": jsonl(sharegpt()).encode() + jsonl(sharegpt("Spell café.", "c-a-f-é")).encode("latin-1"),
    "bom.jsonl": b"\xef\xbb\xbf" + jsonl(sharegpt(), sharegpt("Hi", "Hello")).encode(),
}


def too_long_rows() -> str:
    """40 short rows + 3 whose user turn alone is ~300 tokens (> max_length=128): the answer is cut off."""
    rows = [sharegpt(f"What is {a} + {b}?", f"{a} + {b} = {a + b}.") for a, b in zip(range(1, 41), range(40, 0, -1))]
    for n, at in enumerate((5, 20, 35)):
        rows.insert(at, sharegpt("Read this and answer: " + "apple " * 300 + f"How many apples? ({n})", "300"))
    return jsonl(*rows)


def parquet(name: str, table: pa.Table) -> None:
    pq.write_table(table, HERE / name, compression="none")


def main() -> None:
    for name, text in TEXT.items():
        (HERE / name).write_text(text, encoding="utf-8", newline="\n")
    for name, data in BYTES.items():
        (HERE / name).write_bytes(data)
    (HERE / "too_long_rows.jsonl").write_text(too_long_rows(), encoding="utf-8", newline="\n")
    # conversations as a list of ints, as a JSON string, and a null conversation in row 2
    parquet("conversations_ints.parquet", pa.table({"conversations": [[1, 2, 3], [4, 5]]}))
    parquet("conversations_string.parquet", pa.table({"conversations": [json.dumps(sharegpt()["conversations"])]}))
    msg = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    parquet("conversation_null.parquet", pa.table({"conversations": pa.array(
        [sharegpt()["conversations"], None, sharegpt()["conversations"]], type=msg)}))
    print(f"{len(list(HERE.iterdir())) - 1} files in {HERE}")


if __name__ == "__main__":
    main()
