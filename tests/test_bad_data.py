"""Bad input: a clear message, nothing written, nothing lost.

Every file in tests/bad_data/ (written by make_corpus.py) breaks one rule. Loading it and
standardizing every row (what the Start button checks) must raise DataError naming the file, the
row and the field where they apply, with a plain cause; through the UI the same words arrive as a
gradio.Error, no run folder is created and nothing prints a traceback. Three files are fine and
must load: two with a UTF-8 BOM, and one with rows far beyond max_length, which the worker drops
(with a count) during training.
"""
import re
from pathlib import Path

import gradio as gr
import pytest
from conftest import start_run, tree, wait_for

from studio import data, jobs, runs
from studio.auth import LOCAL
from studio.config import RunConfig
from studio.ui import dataset_tab, run_view, train_tab

CORPUS = Path(__file__).resolve().parent / "bad_data"

# file -> (row, field, cause): the row and field the error must name (None: none applies), and a
# regex for the cause in the user's words.
BAD = {
    # the file as a whole
    "empty.jsonl": (None, None, r"^the file is empty \(0 bytes\)$"),
    "empty_upload.parquet": (None, None, r"^the file is empty \(0 bytes\)$"),
    "whitespace_only.jsonl": (None, None, r"only blank lines or spaces, no data"),
    "empty_list.json": (None, None, r"^the file has no rows$"),
    "wrong_extension.txt": (None, None, r"unsupported file type '\.txt'; use one of \.jsonl, \.json, \.csv, \.parquet"),
    "spreadsheet.xlsx": (None, None, r"unsupported file type '\.xlsx'"),
    "invalid_json.json": (None, None, r"invalid JSON at line 3, column \d+: Expecting ',' delimiter"),
    "jsonl_named_json.json": (None, None, r"invalid JSON at line 2.*is this JSON Lines\? rename it to \.jsonl"),
    "scalar.json": (None, None, r"expected a list of rows .*, got a number"),
    "utf16.jsonl": (None, None, r"UTF-16 .*save it as UTF-8"),
    "not_parquet.parquet": (None, None, r"not a readable Parquet file: .*magic bytes"),
    "no_conversation_columns.jsonl": (None, None, r"no conversation-like columns: found \['text', 'label'\]"),
    "prompt_completion.jsonl": (None, None, r"rename them to instruction/output"),
    # one line or row of the file
    "bad_line_in_middle.jsonl": (3, None, r"invalid JSON on this line \(Expecting value, column \d+\)"),
    "line_is_array.jsonl": (2, None, r"each line must be a JSON object \{\.\.\.\}, got a list"),
    "json_array_as_jsonl.jsonl": (1, None, r"got a list \(if the whole file is one JSON list, name it \.json\)"),
    "list_of_strings.json": (1, None, r"each row must be a JSON object \{\.\.\.\}, got text"),
    "latin1.jsonl": (2, None, r"not UTF-8 text: byte 0xE9 .*Latin-1.*save it as UTF-8"),
    "deep_nesting.jsonl": (2, None, r"can't be read as JSON: brackets are nested too deeply"),
    "huge_number.jsonl": (2, None, r"can't be read as JSON: a number has too many digits"),
    "no_header.csv": (1, None, r"the first line must be a header naming the columns"),
    "duplicate_header.csv": (1, None, r"the header repeats a column name"),
    "wrong_value_count.csv": (3, None, r"expected 3 values \(instruction, input, output\), found 4"),
    # one field of one row
    "csv_bad_json_cell.csv": (3, "messages", r"cell is not valid JSON"),
    "mixed_schemas.jsonl": (2, "conversations", (r"missing: this row has \['input', 'instruction', 'output'\].*"
                                                 r"ShareGPT.*every row must use the same format")),
    "unknown_role.jsonl": (2, "conversations[0].from", r"unknown role 'narrator' \(expected one of"),
    "empty_conversation.jsonl": (2, "conversations", r"^the conversation is empty$"),
    "no_assistant_turn.jsonl": (2, "conversations", r"no assistant reply to learn from"),
    "message_missing_content.jsonl": (2, "messages[1].content", r"missing \(each message needs 'role' and 'content'\)"),
    "message_not_object.jsonl": (1, "conversations[1]", r"a message must be an object \{from, value\}, got text"),
    "content_number.jsonl": (1, "messages[1].content", r"^must be text, got a number$"),
    "content_null.jsonl": (2, "conversations[1].value", r"^must be text, got null$"),
    "alpaca_empty_output.json": (2, "output", r"is empty; it must be non-empty text"),
    "unknown_message_keys.jsonl": (1, "conversations", (r"messages have keys \['speaker', 'text'\]; "
                                                        r"expected from/value or role/content")),
    "lone_surrogate.jsonl": (2, "conversations[0].value", r"invalid character \(\\ud83d, half of an emoji"),
    "conversations_ints.parquet": (1, "conversations", r"must be a list of .* messages, got a list of numbers"),
    "conversations_string.parquet": (1, "conversations", r"holds text, not a list of messages"),
    "conversation_null.parquet": (2, "conversations", r"^must be a list of messages, got null$"),
}
LOADS = {"bom.jsonl": "conversations", "bom.csv": "instruction", "too_long_rows.jsonl": "conversations"}

# Python's words, not the user's: none may reach the message.
PYTHON_WORDS = re.compile(r"Traceback|NoneType|<class|\b(str|int|dict|float|bool|tuple)\b|Error\b|Exception")


def load_and_standardize(path: Path) -> data.Dataset:
    ds = data.load_file(path)
    for _ in ds.iter_conversations():  # every row, as check_before_start does
        pass
    return ds


def no_traceback(capsys, caplog) -> None:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err + caplog.text


def form(path, name="bad-data") -> tuple[list[str], list]:
    """What the Train tab hands `start`: the form's keys and values (the rest stays at its defaults)."""
    keys = ["run_name", "data.source", "data.path", "data.split", "data.max_rows"]
    return keys, [name, "file", str(path), "train", 0]


def test_the_corpus_is_what_the_tests_expect():
    files = {p.name for p in CORPUS.iterdir() if p.name != "make_corpus.py" and p.name != "__pycache__"}
    assert files == set(BAD) | set(LOADS)
    assert len(BAD) >= 22
    assert all(p.stat().st_size < 25_000 for p in CORPUS.iterdir() if p.is_file())


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_names_file_row_field_and_cause(name, capsys, caplog):
    row, column, cause = BAD[name]
    with pytest.raises(data.DataError) as info:
        load_and_standardize(CORPUS / name)
    exc, message = info.value, str(info.value)
    assert (exc.file, exc.row, exc.column) == (name, row, column), message
    where = ", ".join([name] + ([f"row {row}"] * (row is not None)) + ([f"field '{column}'"] * (column is not None)))
    assert message == f"{where}: {exc.detail}"
    assert re.search(cause, exc.detail), message
    assert not PYTHON_WORDS.search(exc.detail), message
    assert str(CORPUS) not in message  # no server paths either
    assert exc.__suppress_context__ or exc.__context__ is None  # raised cleanly, not mid-way through another
    no_traceback(capsys, caplog)


@pytest.mark.parametrize("name", sorted(BAD))
def test_start_refuses_with_the_same_message_and_writes_no_run(name, runs_dir, capsys, caplog):
    path = CORPUS / name
    with pytest.raises(data.DataError) as info:
        load_and_standardize(path)
    expected = str(info.value)
    before = tree(runs_dir)
    keys, values = form(path)

    with pytest.raises(jobs.Refused) as checked:
        jobs.preflight(RunConfig.from_flat(keys, values), None, LOCAL)
    assert checked.value.params["detail"] == expected
    with pytest.raises(gr.Error) as started:
        train_tab.start(keys, values, "", None)
    assert started.value.message == expected
    if info.value.row is None or info.value.row <= dataset_tab.PAGE_SIZE:  # the bad row is on the first page
        with pytest.raises(gr.Error) as previewed:
            dataset_tab.preview("file", str(path), "train", 0, 1)
        assert previewed.value.message == expected

    assert tree(runs_dir) == before  # no run folder, no lock, nothing at all
    assert runs.machine_holder() is None
    no_traceback(capsys, caplog)


@pytest.mark.parametrize("name, cause", [("empty_upload.parquet", "the file is empty (0 bytes)"),
                                         ("latin1.jsonl", "row 2: not UTF-8 text")])
def test_a_bad_upload_on_a_shared_space_is_refused(name, cause, monkeypatch, runs_dir, capsys, caplog):
    """The Space flow: upload (stored under runs/uploads/), preview, Start; paths restricted to uploads."""
    monkeypatch.setenv("STUDIO_RESTRICT_PATHS", "1")
    source, stored = "file", dataset_tab.store_upload(str(CORPUS / name))
    assert Path(stored).name.endswith(name)
    runs_before = tree(runs_dir)
    with pytest.raises(gr.Error) as previewed:
        dataset_tab.preview(source, stored, "train", 0, 1)
    with pytest.raises(gr.Error):  # the upload's own preview: it never becomes the dataset
        dataset_tab.preview_upload(stored, "train", 0)
    with pytest.raises(gr.Error) as started:
        train_tab.start(*form(stored), "", None)
    for exc in (previewed.value, started.value):
        assert name in exc.message and cause in exc.message, exc.message
    assert tree(runs_dir) == runs_before
    no_traceback(capsys, caplog)


@pytest.mark.parametrize("name", ["wrong_extension.txt", "spreadsheet.xlsx"])
def test_an_upload_of_the_wrong_type_is_refused_before_it_is_stored(name, runs_dir):
    before = tree(runs_dir)
    with pytest.raises(gr.Error) as info:
        dataset_tab.store_upload(str(CORPUS / name))
    assert info.value.message.startswith(f"{name}: unsupported file type"), info.value.message
    assert tree(runs_dir) == before


@pytest.mark.parametrize("name", sorted(LOADS))
def test_tolerated_files_load_and_pass_the_start_check(name, capsys, caplog):
    ds = load_and_standardize(CORPUS / name)
    assert ds.columns[0] == LOADS[name]  # a BOM does not end up in the first column's name
    assert all(not m["content"].startswith("\ufeff") for conv in ds.iter_conversations() for m in conv)
    keys, values = form(CORPUS / name)
    jobs.preflight(RunConfig.from_flat(keys, values), None, LOCAL)
    no_traceback(capsys, caplog)


# ---------------------------------------------------------------- rows beyond max_length, in the real worker

@pytest.mark.slow
def test_rows_beyond_max_length_are_dropped_with_a_count():
    """40 short rows + 3 whose user turn alone is ~300 tokens: at max_length=128 their answer is cut
    off, train_on_responses_only drops them, and the worker says how many."""
    cfg = RunConfig(run_name="too-long-rows")
    cfg.data.source, cfg.data.path = "file", str(CORPUS / "too_long_rows.jsonl")
    cfg.train.max_length, cfg.train.max_steps, cfg.train.warmup_steps = 128, 6, 0  # 6 x 8 >= 43: every row
    run_dir = start_run(cfg)
    status = wait_for(run_dir, timeout=240)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    dropped = [e for e in tail.events if e["event"] == "dropped"]
    assert [(e["count"], e["total"]) for e in dropped] == [(3, 43)]
    assert len(tail.logs) == 6 and (run_dir / "adapter" / "adapter_config.json").is_file()
    summary = run_view.summary_text(tail.events, status)
    assert "Removed 3 out of 43 samples with no response left after truncation." in summary
