"""Sweeps (studio/sweep.py), the per-person queue limit (jobs.start_many) and a run's report (studio/report.py),
on the bundled data and tokenizer and on run folders written as the worker writes them. No training here: the
browser tests train a sweep and open its report."""
import json

import pytest
from conftest import EN, KO, tree
from test_timing import crafted_run

from studio import auth, data, export, jobs, prepare, report, runs, sweep, templates, timing
from studio.config import RunConfig
from studio.ui.i18n import say, t


def test_values_are_read_as_the_config_reads_that_field():
    assert sweep.parse_values("train.learning_rate", "2e-4, 5e-4 1e-3, 2e-4") == [2e-4, 5e-4, 1e-3]
    assert sweep.parse_values("lora.r", "8,16") == [8, 16]
    for field, text, code in (("lora.r", "2.5", "err_sweep_value"), ("lora.r", " , ", "err_sweep_no_values"),
                              ("model.name", "x", "err_sweep_field")):
        with pytest.raises(jobs.Refused) as caught:
            sweep.parse_values(field, text)
        assert caught.value.code == code


def test_the_grid_names_each_run_after_its_values_and_is_kept_small():
    cfg = RunConfig(run_name="base")
    grid = sweep.grid(cfg, [("train.learning_rate", [2e-3, 5e-3]), ("lora.r", [8, 16])])
    assert [c.run_name for c in grid] == ["base-lr0.002-r8", "base-lr0.002-r16", "base-lr0.005-r8", "base-lr0.005-r16"]
    assert [(c.train.learning_rate, c.lora.r) for c in grid] == [(2e-3, 8), (2e-3, 16), (5e-3, 8), (5e-3, 16)]
    assert cfg.train.learning_rate == 5e-3 and cfg.lora.r == 16  # the form's config is left as it was
    with pytest.raises(jobs.Refused) as caught:
        sweep.grid(cfg, [("train.learning_rate", [1e-3] * 1 + [2e-3, 3e-3, 4e-3]), ("lora.r", [4, 8, 16, 32])])
    assert caught.value.code == "err_sweep_size"
    with pytest.raises(jobs.Refused):
        sweep.grid(cfg, [("lora.r", [4]), ("lora.r", [8])])


def test_runs_that_differ_in_learning_rate_and_r_share_the_prepared_rows_and_max_length_does_not():
    cfg = RunConfig()
    tokenizer = templates.TOKENIZERS.get(cfg.model.name, cfg.data.template, None)
    ds = data.DATASETS.get("bundled", cfg.data.path, "train", 0)

    def key(c):
        t = c.train
        rows = data.select_rows(len(ds), t.max_steps, t.per_device_train_batch_size * t.gradient_accumulation_steps,
                                t.seed)
        return prepare.cache_key(c, tokenizer, rows, len(ds))

    cfg.train.max_steps = 20  # a sample of the rows: the key holds which
    shared = sweep.grid(cfg, [("train.learning_rate", [1e-3, 1e-2]), ("lora.r", [4, 32])])
    assert len({key(c) for c in shared}) == 1 and sweep.shares_preparation(["train.learning_rate", "lora.r"])
    apart = sweep.grid(cfg, [("train.max_length", [128, 256])])
    assert len({key(c) for c in apart}) == 2 and not sweep.shares_preparation(["train.max_length"])


def test_a_sweep_larger_than_the_persons_room_in_the_queue_is_refused_before_anything_is_queued(monkeypatch,
                                                                                                 machine_free):
    monkeypatch.setenv("STUDIO_MAX_QUEUED_PER_PERSON", "2")
    alice, bob = auth.User("alice"), auth.User("bob")
    waiting = runs.create_run(RunConfig(run_name="alice-waits"), owner="alice")
    runs.enqueue(waiting, owner="alice")  # nothing dispatches: the machine_free fixture stopped the scheduler
    try:
        runs.machine_holder()  # makes the machine's lock file, as any status read does
        before = tree(runs.runs_root())
        with pytest.raises(jobs.Refused) as caught:
            sweep.start(RunConfig(run_name="alice-sweep"), [("train.learning_rate", [1e-3, 2e-3])], alice)
        assert caught.value.code == "err_queue_full" and caught.value.params == {"limit": 2, "have": 1, "asked": 2}
        assert tree(runs.runs_root()) == before and [e["run"] for e in runs.queued()] == [waiting.name]
        assert "2개까지" in say(caught.value, KO) and "you have 1" in say(caught.value, EN)
        jobs.check_queue_room(alice, 1)  # one more fits
        jobs.check_queue_room(bob, 2)    # the limit is per person
        monkeypatch.delenv("STUDIO_MAX_QUEUED_PER_PERSON")
        jobs.check_queue_room(alice, 12)  # no limit set: none
    finally:
        runs.cancel(waiting.name)


def test_a_sweep_is_remembered_for_its_owner_and_ranked_by_best_eval_loss(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path))
    alice = auth.User("alice")
    for name, best in (("s-lr0.001", 1.5), ("s-lr0.01", 1.2)):
        run_dir = crafted_run(tmp_path, name=name)
        runs.write_json_atomic(run_dir / "meta.json", {"owner": "alice"})
        status = runs.read_json(run_dir / "status.json")
        runs.write_json_atomic(run_dir / "status.json", {**status, "best_eval_loss": best, "train_loss": 2.0})
        (run_dir / "adapter").mkdir()
        (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    queued = crafted_run(tmp_path, name="s-lr0.1")
    runs.write_json_atomic(queued / "meta.json", {"owner": "alice"})
    runs.write_json_atomic(queued / "status.json", {"state": "failed"})
    (queued / "metrics.jsonl").write_text("")
    record = {"id": "20260101-000000-s", "owner": "alice", "name": "s", "axes": [["train.learning_rate", [1e-3, 1e-2,
              1e-1]]], "runs": ["s-lr0.001", "s-lr0.01", "s-lr0.1"], "created_at": 1}
    (sweep.sweeps_dir() / "20260101-000000-s.json").write_text(json.dumps(record))
    assert [r["id"] for r in sweep.list_sweeps(alice)] == ["20260101-000000-s"]
    assert sweep.list_sweeps(auth.User("bob")) == []
    with pytest.raises(jobs.Refused):
        sweep.open_sweep("20260101-000000-s", auth.User("bob"))
    ranked = sweep.ranking(sweep.open_sweep("20260101-000000-s", alice), alice)
    assert ranked["metric"] == "eval" and ranked["best"] == "s-lr0.01" and ranked["ranked"] == 2
    assert [r["id"] for r in ranked["rows"]] == ["s-lr0.01", "s-lr0.001", "s-lr0.1"]  # the failed one last
    assert ranked["rows"][0]["values"] == {"train.learning_rate": 0.005}  # the crafted runs' config (the default)


def crafted_report_run(root):
    """A finished run with an eval split: base model at step 0, the adapter best at step 5."""
    cfg = RunConfig(run_name="rep")
    cfg.data.eval_size, cfg.train.learning_rate = 0.1, 2e-3
    run_dir = crafted_run(root, name="rep", cfg=cfg)
    runs.write_json_atomic(run_dir / "meta.json", {"owner": "local"})
    with open(run_dir / "metrics.jsonl", "a") as f:
        for step, answer in ((0, "Paris | maybe"), (5, "</think> The Eiffel Tower.")):
            f.write(json.dumps({"event": "samples", "step": step, "prompts": ["Tallest tower in France?"],
                                "answers": [answer]}) + "\n")
    status = runs.read_json(run_dir / "status.json")
    runs.write_json_atomic(run_dir / "status.json", {**status, "best_step": 5, "best_eval_loss": 2.0})
    runs.write_json_atomic(run_dir / "dropped_rows.json", {"duplicate": [3, 9]})
    runs.write_json_atomic(run_dir / timing.ESTIMATE_FILE, {"seconds": 30.0, "source": "history"})
    return run_dir


def test_the_report_compares_base_and_adapter_and_says_the_checks_settings_and_time(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_RUNS_DIR", str(tmp_path))
    run_dir = crafted_report_run(tmp_path)
    text = report.build(run_dir)
    assert "| base model | 0 | 5.0000 |" in text and "| adapter | 5 | 2.0000 |" in text
    assert "the eval loss changed by -60.0%" in text
    assert "| Tallest tower in France? | Paris \\| maybe | &lt;/think&gt; The Eiffel Tower. |" in text  # side by side
    assert "| Exact duplicates | 0 | 2 |" in text  # found on the bundled rows now, and left out by the run
    assert "| `train.learning_rate` | 0.0002 | 0.002 |" in text and "run_name" not in text
    assert "estimated 30 s before Start, took 27 s (-10%)" in text
    assert (run_dir / "report" / "checks.json").is_file()  # the checks ran once; the next report reads them
    korean = report.build(run_dir, say=lambda key, **kw: t(key, KO, **kw), lang="ko")
    for words in ("평가 손실: 베이스 모델 대 어댑터", "고정 프롬프트", "데이터 검사", "교재 레시피와 다른 설정", "추정 30초"):
        assert words in korean, words
    card = export.model_card(run_dir, "adapter")
    assert card.startswith("---") and "## Report: rep" in card and "### Eval loss: base model vs adapter" in card
