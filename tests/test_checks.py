"""Data checks (studio/checks.py): each check finds the rows crafted to break it, and nothing on the clean sample;
the rows a run drops are the rows the checks find, through the same code (the worker's drop, prepare's
tokenize-mask-cut, Start's preflight)."""
import json

import pytest

from studio import checks, data, jobs, prepare, templates
from studio.auth import LOCAL
from studio.config import BUNDLED_DATA, BUNDLED_MODEL, RunConfig, resolve_path

MAX_LENGTH = 128
LONG = " ".join(["the model reads every word of this long question"] * 40)  # ~300 tokens with the tiny tokenizer


def sharegpt(*turns):
    return {"conversations": [{"from": who, "value": text} for who, text in turns]}


def sample_rows(n):
    lines = resolve_path(BUNDLED_DATA).read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines[:n]]


def crafted(tmp_path):
    """40 clean rows of the sample, then one row per problem (row index -> the check that must find it)."""
    rows = sample_rows(40)
    first = rows[1]["conversations"]
    problems = [
        (rows[0], "duplicate"),
        (sharegpt(("human", "  " + first[0]["value"].upper().replace("?", " ?!")),
                  ("gpt", first[1]["value"].rstrip(".") + " ...")), "near_duplicate"),
        ({"conversations": []}, "empty"),
        (sharegpt(("human", "   "), ("gpt", "")), "empty"),
        (sharegpt(("human", "What is 2 + 2?"), ("gpt", "  ")), "one_sided"),
        (sharegpt(("human", "Only a question, no reply")), "one_sided"),
        ({"conversations": [{"from": "narrator", "value": "Once upon a time"}]}, "unreadable"),
        (sharegpt(("human", LONG + "?"), ("gpt", "Yes.")), "no_trained_tokens"),  # the reply lies past the cut
        (sharegpt(("human", "Say it long."), ("gpt", LONG + ".")), "truncated"),
    ]
    expected = {code: [] for code in checks.CHECKS}
    for row, code in problems:
        expected[code].append(len(rows))
        rows.append(row)
    expected["truncated"] = sorted(expected["truncated"] + expected["no_trained_tokens"])  # cut, nothing left to train
    train = tmp_path / "crafted.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    evaluated = tmp_path / "eval.jsonl"  # row 3 again: a training row that is also an eval row
    evaluated.write_text(json.dumps(rows[3], ensure_ascii=False) + "\n" +
                         json.dumps(sharegpt(("human", "An eval question"), ("gpt", "Its answer.")))
                         + "\n", encoding="utf-8")
    expected["eval_overlap"] = [3]
    return train, evaluated, expected


def crafted_config(train, evaluated=None, template="qwen-3"):
    cfg = RunConfig()
    cfg.data.source, cfg.data.path, cfg.data.template = "file", str(train), template
    cfg.data.eval_path = str(evaluated or "")
    cfg.train.max_length = MAX_LENGTH  # 150 steps x 8 rows > 49: the run uses every row
    return cfg


@pytest.fixture(scope="module")
def tokenizer():
    return templates.TOKENIZERS.get(BUNDLED_MODEL, "qwen-3")


def report_of(cfg, tokenizer, **kw):
    ds = data.load_dataset_source(cfg.data.source, cfg.data.path, cfg.data.split, cfg.data.max_rows)
    source = data.eval_source(cfg.data)
    eval_file = data.load_dataset_source(*source) if source else None
    return checks.run_checks(cfg, ds, eval_file, tokenizer, **kw)


def test_the_clean_sample_has_no_finding(tokenizer):
    cfg = RunConfig()
    cfg.data.eval_size = 0.1  # the held-out rows are compared too
    report = report_of(cfg, tokenizer)
    assert {code: f.count for code, f in report.findings.items() if f.count} == {}
    assert (report.rows, report.eval_rows, report.token_rows, report.sampled) == (540, 60, 540, False)
    assert len(report.lengths) == 540 and max(report.lengths) < cfg.train.max_length and report.lost_tokens == 0


def test_each_check_finds_its_crafted_rows_and_nothing_else(tmp_path, tokenizer):
    train, evaluated, expected = crafted(tmp_path)
    report = report_of(crafted_config(train, evaluated), tokenizer)
    assert {code: f.rows for code, f in report.findings.items()} == expected
    f = report.findings
    assert f["duplicate"].notes == {40: {"same_as": 0}} and f["near_duplicate"].notes == {41: {"same_as": 1}}
    assert f["eval_overlap"].notes == {3: {"eval_row": 0}}
    assert f["unreadable"].notes[46]["error"].code == "data_unknown_role"
    (long_question,), (long_reply,) = expected["no_trained_tokens"], set(expected["truncated"]) - {47}
    assert f["truncated"].notes[long_question]["lost"] > 0 and f["truncated"].notes[long_reply]["lost"] > 0
    assert f["truncated"].notes[long_reply]["tokens"] > MAX_LENGTH
    assert report.lost_tokens == sum(n["lost"] for n in f["truncated"].notes.values()) and report.lost_share > 0
    # the rows it can't tokenize (an empty list, no reply, a bad role) are left to the text checks
    assert (report.rows, report.readable, report.eval_rows) == (49, 46, 2) and len(report.lengths) == 46


def test_a_row_the_template_refuses_is_found(tmp_path):
    """gemma-3 wants user and model turns to alternate: two user turns in a row is a row it can't render."""
    rows = sample_rows(10) + [sharegpt(("human", "First"), ("human", "Second"), ("gpt", "Both."))]
    path = tmp_path / "turns.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    report = report_of(crafted_config(path, template="gemma-3"), templates.TOKENIZERS.get(BUNDLED_MODEL, "gemma-3"))
    assert {code: f.rows for code, f in report.findings.items() if f.count} == {"render_error": [10]}
    assert "alternate" in report.findings["render_error"].notes[10]["error"]


def test_token_checks_sample_above_the_limit_and_say_so(tokenizer):
    report = report_of(RunConfig(), tokenizer, token_sample=100)
    assert (report.token_rows, report.readable, report.sampled, len(report.lengths)) == (100, 600, True, 100)
    assert report.findings["truncated"].sampled and not report.findings["duplicate"].sampled


def test_near_duplicates_ignore_case_spacing_and_punctuation_only():
    assert checks.normalized("Hello,  World!") == checks.normalized("hello world") == b"helloworld"
    assert checks.normalized("ＡＢＣ 가나다!") == checks.normalized("abc가나다")  # NFKC: full-width letters
    assert checks.normalized("hello world") != checks.normalized("hello word")


def test_the_runs_drop_is_what_the_checks_find(tmp_path, tokenizer):
    """The worker's calls (text_drops, then prepare with data.drop) leave out exactly the rows the checks found,
    each under the first check that finds it."""
    train, evaluated, expected = crafted(tmp_path)
    ds, eval_ds = data.load_dataset_source("file", str(train)), data.load_dataset_source("file", str(evaluated))
    text = checks.text_drops(ds, None, eval_ds, [0, 1], checks.CHECKS)
    assert text == {code: expected[code] for code in checks.TEXT_CHECKS}
    gone = {i for rows in text.values() for i in rows}
    kept = [i for i in range(len(ds)) if i not in gone]
    prepared, left_out = prepare.prepare(ds, kept, tokenizer, "qwen-3", MAX_LENGTH, True, drop=checks.CHECKS)
    assert left_out == {"render_error": [], "no_trained_tokens": [47], "truncated": [48]}  # each under its first
    assert len(prepared) == len(kept) - 2
    assert checks.text_drops(ds, None, eval_ds, [0, 1], ["duplicate"]) == {"duplicate": [40]}  # only those named


def test_start_accepts_rows_the_run_drops_and_refuses_unknown_checks(tmp_path):
    train, _, _ = crafted(tmp_path)
    cfg = crafted_config(train)
    with pytest.raises(jobs.Refused) as refused:  # row 43 (an empty conversation) would stop the run
        jobs.preflight(cfg, None, LOCAL)
    assert refused.value.code == "err_data" and "row 43" in refused.value.params["detail"]
    cfg.data.drop = ["unreadable", "empty", "one_sided"]
    assert len(jobs.preflight(cfg, None, LOCAL)) == 49
    cfg.data.drop = ["duplicates"]
    with pytest.raises(jobs.Refused) as refused:
        jobs.preflight(cfg, None, LOCAL)
    assert [(p.field, p.code, p.params["code"]) for p in refused.value.params["problems"]] == \
        [("data.drop", "err_drop_code", "duplicates")]


def test_the_dataset_tab_says_each_finding_shows_its_rows_and_ticks_data_drop(tmp_path):
    """The handlers behind 'Check data', 'Show rows' and 'Drop for this run', in Korean."""
    from conftest import KO

    from studio.ui import data_checks
    train, evaluated, _ = crafted(tmp_path)
    keys = ["data.source", "data.path", "data.eval_path", "train.max_length"]
    out = data_checks.check_data(keys, ["file", str(train), str(evaluated), MAX_LENGTH], "", KO)
    n = len(checks.CHECKS)
    status, lines, buttons, found = out[0], dict(zip(checks.CHECKS, out[1:1 + n])), out[1 + n:1 + 2 * n], out[1 + 2 * n]
    assert "**49**행" in status and "평가 행 2개" in status and "토큰 검사: 모든 행" in status
    assert lines["duplicate"].startswith("**완전 중복** · ⚠️ **1**행") and "✓ 없음" in lines["render_error"]
    assert "학습할 토큰의" in lines["truncated"]  # the share of trained tokens the cut loses
    assert [b.interactive for b in buttons] == [code != "render_error" for code in checks.CHECKS]
    shown = data_checks.show_rows("duplicate", found, "", KO)
    assert "41행 · <span class=\"note\">1행과 같음</span>" in shown and "What is 7 + 5?" in shown
    assert "알 수 없는 역할 'narrator'" in data_checks.show_rows("unreadable", found, "", KO).replace("&#x27;", "'")


def test_the_script_leaves_out_the_rows_the_run_recorded_and_refuses_without_a_record(runs_dir):
    from studio import export, runs
    cfg = RunConfig(run_name="script-drops")
    cfg.data.drop = ["duplicate"]
    run_dir = runs.create_run(cfg)
    with pytest.raises(export.ExportError) as refused:  # it stopped before it recorded which rows it drops
        export.python_script(run_dir)
    assert refused.value.key == "err_export_no_drops"
    (run_dir / checks.DROPPED_ROWS_FILE).write_text(json.dumps({"duplicate": [5, 3], "no_trained_tokens": [7]}))
    script = script_row_rule(run_dir)
    assert script["DROPPED_ROWS"] == {3, 5, 7} and script["training_rows"](10) == [0, 1, 2, 4, 6, 8, 9]


def script_row_rule(run_dir) -> dict:
    """The exported script's training_rows() and the settings it reads, run alone."""
    import ast

    from studio import export
    script = ast.parse(export.python_script(run_dir))
    wanted = [n for n in script.body if (isinstance(n, ast.FunctionDef) and n.name == "training_rows") or
              (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in
               ("DROPPED_ROWS", "MAX_STEPS", "BATCH_SIZE", "GRADIENT_ACCUMULATION_STEPS", "SEED"))]
    namespace = {}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "train.py", "exec"), namespace)
    return namespace


def test_the_summary_says_once_how_many_rows_the_checks_left_out():
    from conftest import KO

    from studio.ui import run_view
    drop = {"event": "data_drop", "checks": ["empty", "duplicate"], "counts": {"empty": 0, "duplicate": 3}, "total": 3,
            "rows": 40}
    again = dict(drop)  # a resumed run reads its data again
    assert run_view.summary_text([drop, again], {}, KO) == "- 데이터 검사로 40행 중 3행을 뺐습니다: 완전 중복 3."
