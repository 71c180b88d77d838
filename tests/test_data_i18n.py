"""Problems in the user's data, said in the user's language (Korean or English), end to end.

studio/data.py raises DataError(code, file=, row=, column=, **params); its words live in data.MESSAGES.
`str(exc)` stays English (logs, tracebacks, tests/test_bad_data.py); the Dataset and Template tabs, Start,
the Train tab's error box (a worker that failed on the data) and the Export tab say it in the request's language.
"""
import ast
import json
import pickle
import re
import string
from pathlib import Path

import gradio as gr
import pytest
from conftest import EN, KO, tree

from studio import data, distributed, export, fit, jobs, runs, train
from studio.auth import LOCAL
from studio.config import BUNDLED_DATA, BUNDLED_MODEL, RunConfig
from studio.ui import dataset_tab, export_tab, run_view, template_tab, train_tab
from studio.ui.i18n import STRINGS, say

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "bad_data"
HANGUL = re.compile(r"[\uac00-\ud7a3]")



# file in tests/bad_data -> (the Korean message with its place, as the UI shows it: a regex)
KOREAN = {
    "latin1.jsonl": r"^latin1\.jsonl, 2행: UTF-8 텍스트가 아닙니다: 0xE9 바이트를 읽을 수 없습니다\(EUC-KR\(CP949\), "
                    r"Latin-1, Windows-1252 같은 다른 인코딩으로 저장된 파일로 보입니다\)\. UTF-8로 다시 저장하세요$",
    "unknown_role.jsonl": r"^unknown_role\.jsonl, 2행, 'conversations\[0\]\.from' 필드: 알 수 없는 역할 'narrator'입니다"
                          r"\(user/assistant/system, human/gpt 중 하나여야 합니다\)$",
    "line_is_array.jsonl": r"^line_is_array\.jsonl, 2행: 각 줄은 JSON 객체 \{\.\.\.\}여야 하는데 목록입니다 "
                           r"\(파일 전체가 JSON 목록 하나라면 확장자를 \.json으로 하세요\)$",
    "content_number.jsonl": r"^content_number\.jsonl, 1행, 'messages\[1\]\.content' 필드: 텍스트여야 하는데 숫자입니다$",
}
TXT_KO = "wrong_extension.txt: 지원하지 않는 파일 형식('.txt')입니다. .jsonl, .json, .csv, .parquet 중 하나를 쓰세요"


def fields(text: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


def data_error(name: str) -> data.DataError:
    with pytest.raises(data.DataError) as info:
        for _ in data.load_file(CORPUS / name).iter_conversations():
            pass
    return info.value


# ---------------------------------------------------------------- the messages

def test_every_data_message_has_both_languages_and_the_same_placeholders():
    assert len(data.MESSAGES) >= 50
    for code, pair in data.MESSAGES.items():
        assert code.startswith("data_"), code
        assert isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) and s.strip() for s in pair), code
        en, ko = pair
        assert fields(en) == fields(ko), (code, fields(en), fields(ko))
        assert not HANGUL.search(en), code
        assert HANGUL.search(ko) or ko == "null", code  # JSON's null is a name; everything else is Korean
        assert ko.rstrip().endswith(".") == en.rstrip().endswith("."), code  # ends as the English does


def test_every_code_that_data_py_raises_exists_and_every_message_is_used():
    # data.py and the modules that raise its errors (preference pairs)
    source = "\n".join((REPO / "studio" / name).read_text(encoding="utf-8")
                       for name in ("data.py", "pairs.py", "preference.py"))
    tree_ = ast.parse(source)
    raised = {node.args[0].value for node in ast.walk(tree_)
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DataError"
              and node.args and isinstance(node.args[0], ast.Constant)}
    assert len(raised) >= 40
    assert raised <= set(data.MESSAGES), raised - set(data.MESSAGES)
    assert not [node.lineno for node in ast.walk(tree_) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "DataError"
                and not (node.args and isinstance(node.args[0], ast.Constant))]  # no message made on the spot
    # codes passed as values (hints, reasons, JSON kinds) exist too
    literals = {n.value for n in ast.walk(tree_) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                and re.fullmatch(r"data_[a-z0-9_]*[a-z0-9]", n.value)}  # (f-string parts end in _)
    kinds = {data._kind(v, plural) for v in (None, True, 1, 1.5, "x", [], {}) for plural in (False, True)}
    assert literals | kinds <= set(data.MESSAGES), (literals | kinds) - set(data.MESSAGES)
    unused = [c for c in data.MESSAGES if c not in kinds and source.count(f'"{c}"') < 2]  # in MESSAGES only
    assert unused == [], unused


def test_data_messages_join_the_ui_strings_without_clashing():
    own = set()
    for node in ast.walk(ast.parse((REPO / "studio" / "ui" / "i18n.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "STRINGS":
            own = {k.value for k in node.value.keys}
    assert len(own) > 100
    modules = [distributed.MESSAGES, fit.MESSAGES, data.MESSAGES, export.MESSAGES]
    for n, messages in enumerate(modules):
        assert not set(messages) & own, set(messages) & own
        for other in modules[n + 1:]:
            assert not set(messages) & set(other)
        assert all(STRINGS[k] == v for k, v in messages.items())


def test_str_stays_english_with_its_place_and_the_error_crosses_processes_whole():
    exc = data_error("unknown_role.jsonl")
    assert (exc.code, exc.params, exc.file, exc.row, exc.column) == (
        "data_unknown_role", {"role": "narrator"}, "unknown_role.jsonl", 2, "conversations[0].from")
    assert str(exc) == ("unknown_role.jsonl, row 2, field 'conversations[0].from': unknown role 'narrator' "
                        "(expected one of user/assistant/system, human/gpt)")
    assert exc.text("en") == str(exc) and HANGUL.search(exc.text("ko"))
    back = pickle.loads(pickle.dumps(exc))  # prepare's pool hands errors back pickled
    assert (type(back), back.code, back.params, back.file, back.row, back.column, str(back)) == \
        (data.DataError, exc.code, exc.params, exc.file, exc.row, exc.column, str(exc))
    assert data.DataError.from_dict(json.loads(json.dumps(exc.as_dict()))).text("ko") == exc.text("ko")


def test_kinds_and_hints_are_said_in_the_same_language_and_library_words_are_kept():
    exc = data.DataError("data_line_not_object", file="a.jsonl", row=1, kind=data._kind([]), hint="data_hint_one_list")
    assert str(exc) == ("a.jsonl, row 1: each line must be a JSON object {...}, got a list "
                        "(if the whole file is one JSON list, name it .json)")
    assert exc.text("ko") == ("a.jsonl, 1행: 각 줄은 JSON 객체 {...}여야 하는데 목록입니다 "
                              "(파일 전체가 JSON 목록 하나라면 확장자를 .json으로 하세요)")
    foreign = data.DataError("data_jsonl_invalid", file="b.jsonl", row=3, msg="Expecting value", col=1, hint="")
    assert foreign.text("ko") == "b.jsonl, 3행: 이 줄은 올바른 JSON이 아닙니다 (Expecting value, 1번째 글자)"
    plain = data.DataError("could not load from the Hub: 401 Unauthorized", file="o/n")  # not a code: as it is
    assert plain.text("ko") == str(plain) == "o/n: could not load from the Hub: 401 Unauthorized"


# ---------------------------------------------------------------- through the real handlers

@pytest.mark.parametrize("name", sorted(KOREAN))
def test_the_dataset_tab_says_a_bad_file_in_the_browsers_language(name):
    expected_en = str(data_error(name))
    with pytest.raises(gr.Error) as ko:
        dataset_tab.preview("file", str(CORPUS / name), "train", 0, 1, "", KO)
    assert re.search(KOREAN[name], ko.value.message), ko.value.message
    with pytest.raises(gr.Error) as en:
        dataset_tab.preview("file", str(CORPUS / name), "train", 0, 1, "", EN)
    assert en.value.message == expected_en


@pytest.mark.parametrize("name", sorted(KOREAN))
def test_start_refuses_a_bad_file_in_the_browsers_language(name, runs_dir):
    expected_en = str(data_error(name))
    keys = ["run_name", "data.source", "data.path", "data.split", "data.max_rows"]
    values = ["bad-data", "file", str(CORPUS / name), "train", 0]
    before = tree(runs_dir)
    with pytest.raises(jobs.Refused) as refused:
        jobs.preflight(RunConfig.from_flat(keys, values), None, LOCAL)
    assert refused.value.code == "err_data" and refused.value.params["detail"] == expected_en  # API, logs
    assert re.search(KOREAN[name], say(refused.value, KO)) and say(refused.value, EN) == expected_en
    with pytest.raises(gr.Error) as ko:
        train_tab.start(keys, values, "", KO)
    assert re.search(KOREAN[name], ko.value.message), ko.value.message
    with pytest.raises(gr.Error) as en:
        train_tab.start(keys, values, "", EN)
    assert en.value.message == expected_en
    assert tree(runs_dir) == before


def test_a_txt_upload_is_refused_in_korean_and_nothing_is_stored_or_lost(runs_dir):
    before = tree(runs_dir)
    with pytest.raises(gr.Error) as ko:
        dataset_tab.store_upload(str(CORPUS / "wrong_extension.txt"), KO)
    assert ko.value.message == TXT_KO
    with pytest.raises(gr.Error) as en:
        dataset_tab.store_upload(str(CORPUS / "wrong_extension.txt"), EN)
    assert en.value.message == ("wrong_extension.txt: unsupported file type '.txt'; use one of .jsonl, .json, .csv, "
                                ".parquet")
    assert tree(runs_dir) == before


def test_the_upload_box_lets_every_type_through_to_the_translated_refusal():
    """Gradio's own check of file_types is an English toast from its JS bundle: the box has none and its label
    names the types. A refused upload changes nothing but the box (the dataset shown stays chosen, and no output
    shows an error badge); a stored one becomes the dataset only once its preview reads."""
    from studio.ui import build_app
    demo = build_app()
    stored = next(d for d in demo.fns.values() if d.fn is dataset_tab.store_upload)
    box = demo.blocks[stored.targets[0][0]]
    assert isinstance(box, gr.File) and box.file_types is None and stored.show_progress == "hidden"
    assert all(ext in label for ext in data.ALLOWED_EXTENSIONS for label in STRINGS["upload"])
    assert [type(o) for o in stored.outputs] == [gr.State]  # not the source and path yet
    after = [d for d in demo.fns.values() if d.trigger_after == stored._id]
    assert sorted((d.fn is dataset_tab.preview_upload, d.trigger_only_on_success, d.trigger_only_on_failure)
                  for d in after) == [(False, False, True), (True, True, False)]
    shown = next(d for d in after if d.trigger_only_on_success)
    assert shown.show_progress == "hidden"
    for step in (stored, shown):
        refused = next(d for d in demo.fns.values() if d.trigger_after == step._id and d.trigger_only_on_failure)
        assert [o._id for o in refused.outputs] == [box._id] and refused.fn() is None


def test_an_uploaded_file_that_does_not_read_leaves_the_chosen_dataset(runs_dir):
    """The preview of a stored upload refuses a broken file in Korean; only one that reads becomes the dataset."""
    with pytest.raises(gr.Error) as ko:
        dataset_tab.preview_upload(str(CORPUS / "unknown_role.jsonl"), "train", 0, "", KO)
    assert "2행" in ko.value.message and "알 수 없는 역할" in ko.value.message
    source, path, info, page, rows, html = dataset_tab.preview_upload(BUNDLED_DATA, "train", 0, "", KO)
    assert (source, path, page) == ("file", BUNDLED_DATA, 1) and "600" in info and len(rows) == dataset_tab.PAGE_SIZE
    assert all(u == gr.update() for u in dataset_tab.preview_upload(None, "train", 0, "", KO))


def test_the_template_tab_says_a_bad_row_in_the_browsers_language():
    args = (BUNDLED_MODEL, RunConfig().data.template, "file", str(CORPUS / "unknown_role.jsonl"), "train", 0, 2,
            512, True, "")
    with pytest.raises(gr.Error) as ko:
        template_tab.render_row(*args, request=KO)
    assert re.search(KOREAN["unknown_role.jsonl"], ko.value.message), ko.value.message
    with pytest.raises(gr.Error) as en:
        template_tab.render_row(*args, request=EN)
    assert en.value.message == str(data_error("unknown_role.jsonl"))
    # what the person did not click for (a template proposed while typing a model name, the tab opening): said in
    # the tab, not as a pop-up over the tab they are typing in
    stats, shown = template_tab.render_in_place(KO, *args)[2:]
    assert stats == f"⚠️ {ko.value.message}" and shown == ""


def test_the_export_tab_says_an_unreadable_dataset_in_the_browsers_language(runs_dir):
    cfg = RunConfig(run_name="script-bad-data")
    cfg.data.source, cfg.data.path = "file", str(CORPUS / "latin1.jsonl")
    run_dir = runs.create_run(cfg)
    with pytest.raises(export.ExportError) as raw:
        export.python_script(run_dir)
    assert str(raw.value) == f"the run's dataset can't be read to write the script: {data_error('latin1.jsonl')}"
    with pytest.raises(gr.Error) as ko:
        export_tab.export_script(run_dir.name, KO)
    assert ko.value.message.startswith("실행의 데이터셋을 읽을 수 없어 스크립트를 만들 수 없습니다: latin1.jsonl, 2행: "
                                       "UTF-8 텍스트가 아닙니다"), ko.value.message
    with pytest.raises(gr.Error) as en:
        export_tab.export_script(run_dir.name, EN)
    assert en.value.message == str(raw.value)


def test_a_worker_that_failed_on_the_data_is_shown_in_the_browsers_language(runs_dir, monkeypatch):
    """train.main's own failure report (the run itself replaced by the DataError it would raise), read back
    through the Train tab's status (jobs.status) and error box."""
    exc = data_error("unknown_role.jsonl")

    def fail(run_dir, files, resume=False):
        raise exc

    monkeypatch.setattr(train, "run", fail)
    monkeypatch.setattr(train, "hold_locks", lambda run_dir: (-1, -1))  # this process must not keep the machine
    run_dir = runs.create_run(RunConfig(run_name="worker-bad-data"))
    assert train.main([str(run_dir)]) == 1
    written = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert written["state"] == "failed" and written["hint"] == "data"
    assert written["error"] == f"DataError: {exc}"  # English, as before
    assert written["data_error"] == {"code": "data_unknown_role", "params": {"role": "narrator"},
                                     "file": "unknown_role.jsonl", "row": 2, "column": "conversations[0].from"}
    status = jobs.status(run_dir.name, LOCAL)
    ko = run_view.error_text(status, KO)
    heading = ko.splitlines()[0]
    assert heading.startswith("### ❌ ") and re.search(KOREAN["unknown_role.jsonl"], heading[len("### ❌ "):]), ko
    assert "데이터셋에 문제가 있습니다" in ko
    assert run_view.error_text(status, EN).splitlines()[0] == f"### ❌ {exc}"
