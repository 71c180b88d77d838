"""The preference stage (DPO, ORPO) without training: the pair formats, bad pairs said by row and field in both
languages, the stage's config and its refusals at Start, the owner check of the run a preference run starts
from (at Start and again in the worker), the exported script's reading of pairs, the plot."""
import ast
import csv
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EN, KO

from studio import data, export, jobs, preference, runs
from studio.auth import LOCAL, User
from studio.config import BUNDLED_DATA, BUNDLED_PAIRS, ConfigError, RunConfig, bundled_preference_recipe, validate
from studio.ui import dataset_tab
from studio.ui.i18n import STRINGS, say
from studio.ui.plots import training_figure

REPO = Path(__file__).resolve().parent.parent
SYSTEM = "Answer briefly."


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# The shapes of the Hub's preference sets, two rows each, and the pairs they must become.
PAIR = (["Capital of France?", "Paris.", "Rome."], ["2 + 2?", "4", "5"])
EXPECTED = [preference_pair for preference_pair in (
    ([user(q)], [bot(good)], [bot(bad)]) for q, good, bad in PAIR)]
SHAPES = {
    # TRL's conversational pairs (trl-lib sets after prompt extraction; the bundled sample)
    "prompt_messages.jsonl": ("pairs_chat", [{"prompt": [user(q)], "chosen": [bot(g)], "rejected": [bot(b)]}
                                             for q, g, b in PAIR]),
    # standard text pairs
    "prompt_text.jsonl": ("pairs_text", [{"prompt": q, "chosen": g, "rejected": b} for q, g, b in PAIR]),
    # Intel/orca_dpo_pairs: system, question, chosen, rejected (text)
    "orca.json": ("pairs_text", [{"system": "", "question": q, "chosen": g, "rejected": b} for q, g, b in PAIR]),
    # HuggingFaceH4/ultrafeedback_binarized: prompt (text) and whole conversations; extra columns kept aside
    "ultrafeedback.parquet": ("pairs_chat", [{"prompt": q, "prompt_id": str(n), "chosen": [user(q), bot(g)],
                                              "rejected": [user(q), bot(b)], "score_chosen": 8.0,
                                              "messages": [user(q), bot(g)]} for n, (q, g, b) in enumerate(PAIR)]),
    # whole conversations only, ShareGPT keys (from/value): the prompt is what they share
    "implicit_sharegpt.jsonl": ("pairs_chat", [{"chosen": [{"from": "human", "value": q}, {"from": "gpt", "value": g}],
                                                "rejected": [{"from": "human", "value": q},
                                                             {"from": "gpt", "value": b}]} for q, g, b in PAIR]),
    "prompt_text.csv": ("pairs_text", None),
}


def shape_files(folder: Path) -> dict[str, Path]:
    files = {}
    for name, (_, rows) in SHAPES.items():
        path = folder / name
        if name.endswith(".jsonl"):
            write_jsonl(path, rows)
        elif name.endswith(".json"):
            path.write_text(json.dumps({"train": rows}), encoding="utf-8")
        elif name.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(rows), path)
        else:
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["prompt", "chosen", "rejected"])
                w.writerows(PAIR)
        files[name] = path
    return files


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_preference_shape_becomes_the_same_pairs(tmp_path, name):
    ds = data.load_file(shape_files(tmp_path)[name])
    assert ds.format == SHAPES[name][0] and ds.is_pairs
    got = [(p.prompt, p.chosen, p.rejected) for p in (ds.pair(i) for i in range(len(ds)))]
    assert got == EXPECTED
    # as one conversation (the data checks, SFT on pairs): the prompt and the chosen answer
    assert ds.standardized(1) == [user("2 + 2?"), bot("4")]
    if name == "ultrafeedback.parquet":
        assert ds.extra_columns == ["prompt_id", "score_chosen", "messages"]


def test_the_bundled_sample_of_pairs_is_valid_and_regenerates_byte_for_byte(tmp_path):
    import subprocess
    import sys
    ds = data.load_file(REPO / BUNDLED_PAIRS)
    pairs = [ds.pair(i) for i in range(len(ds))]
    assert ds.format == "pairs_chat" and len(pairs) == 300
    assert sum(p.prompt[0]["role"] == "system" for p in pairs) > 20  # some with a system turn
    assert sum(any("\uac00" <= c <= "\ud7a3" for c in p.prompt[-1]["content"]) for p in pairs) > 100  # Korean too
    assert all(p.chosen != p.rejected for p in pairs)
    before = (REPO / BUNDLED_PAIRS).read_bytes()
    subprocess.run([sys.executable, "make_sample_pairs.py"], cwd=REPO / "assets", check=True, capture_output=True)
    assert (REPO / BUNDLED_PAIRS).read_bytes() == before


# bad pair -> (code, row, field, the Korean message with its place: a regex)
BAD = {
    "identical": ({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Hello."}, "data_pair_identical", "rejected",
                  r"^bad\.jsonl, 2행, 'rejected' 필드: 'chosen'과 같습니다\. 한 쌍에는 서로 다른 두 답변이 있어야 합니다$"),
    "empty_chosen": ({"prompt": "Hi?", "chosen": "  ", "rejected": "Hello."}, "data_empty_text", "chosen",
                     r"^bad\.jsonl, 3행, 'chosen' 필드: 비어 있습니다"),
    "missing_rejected": ({"prompt": "Hi?", "chosen": "Hello."}, "data_pair_missing", "rejected",
                         r"^bad\.jsonl, 4행, 'rejected' 필드: 없습니다\. 선호 데이터셋의 모든 행에 'rejected'"),
    "missing_prompt": ({"chosen": "Hello.", "rejected": "Bye."}, "data_pair_missing", "prompt",
                       r"^bad\.jsonl, 5행, 'prompt' 필드: 없습니다"),
    "number": ({"prompt": "Hi?", "chosen": 4, "rejected": "Hello."}, "data_pair_kind", "chosen",
               r"^bad\.jsonl, 6행, 'chosen' 필드: 텍스트나 메시지 목록이어야 하는데 숫자입니다$"),
    "empty_message": ({"prompt": "Hi?", "chosen": [bot("")], "rejected": [bot("No.")]}, "data_empty_text",
                      "chosen[0].content", r"^bad\.jsonl, 7행, 'chosen\[0\]\.content' 필드: 비어 있습니다"),
    "user_answer": ({"prompt": "Hi?", "chosen": [user("Hm?")], "rejected": [bot("No.")]}, "data_pair_not_answer",
                    "chosen[0]", r"'chosen\[0\]' 필드: 프롬프트 뒤의 assistant 답변이어야 하는데 'user' 메시지가"),
    "nothing_shared": ({"chosen": [user("A?"), bot("a")], "rejected": [user("B?"), bot("b")]}, "data_pair_no_prompt",
                       "chosen", r"'chosen' 필드: chosen과 rejected가 답변 앞에 공유하는 메시지가 없고"),
}


def test_bad_pairs_are_named_by_row_and_field_in_both_languages(tmp_path):
    good = {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}
    ds = data.load_file(write_jsonl(tmp_path / "bad.jsonl", [good] + [row for row, *_ in BAD.values()]))
    assert ds.pair(0).chosen == [bot("Hello.")]
    for n, (name, (_, code, column, korean)) in enumerate(BAD.items(), 1):
        with pytest.raises(data.DataError) as info:
            ds.pair(n)
        exc = info.value
        assert (exc.code, exc.row, exc.column) == (code, n + 1, column), name
        assert str(exc).startswith(f"bad.jsonl, row {n + 1}, field '{column}': "), str(exc)
        assert re.search(korean, exc.text("ko")), (name, exc.text("ko"))
        assert exc.text("en") != exc.text("ko")


def test_a_file_with_half_a_pair_or_no_prompt_says_so(tmp_path):
    with pytest.raises(data.DataError) as info:
        data.load_file(write_jsonl(tmp_path / "half.jsonl", [{"prompt": "Hi?", "chosen": "Hello."}]))
    assert info.value.code == "data_pair_column" and "'rejected' is missing" in str(info.value)
    assert "'rejected' 열이 없습니다" in info.value.text("ko")
    with pytest.raises(data.DataError) as info:  # Anthropic/hh-rlhf as it is: the prompt is inside the text
        data.load_file(write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello",
                                                             "rejected": "\n\nHuman: Hi\n\nAssistant: Go"}]))
    assert info.value.code == "data_pair_no_prompt_column" and "prompt column" in str(info.value)


# ---------------------------------------------------------------- the stage's config

def test_stage_fields_round_trip_and_are_checked():
    cfg = bundled_preference_recipe()
    assert (cfg.train.stage, cfg.data.source, cfg.data.path) == ("dpo", "file", BUNDLED_PAIRS)
    cfg.model.adapter_from = "20260101-000000-sft"
    assert RunConfig.from_yaml(cfg.to_yaml()) == cfg and validate(cfg, visible_gpus=0) == []
    assert RunConfig.from_yaml("train: {}\n").train.stage == "sft"  # a config from before the stage: SFT
    with pytest.raises(ConfigError) as info:
        RunConfig.from_yaml("train:\n  beta: high\n")
    assert info.value.problems[0].code == "err_type"

    def problems(**changes):
        c = bundled_preference_recipe()
        for key, value in changes.items():
            section, name = key.split("__")
            setattr(getattr(c, section), name, value)
        return {(p.field, p.code) for p in validate(c, visible_gpus=0)}
    assert problems(train__stage="ppo") == {("stage", "err_choice")}
    assert problems(train__beta=0.0) == {("beta", "err_beta")}
    assert problems(train__stage="sft", model__adapter_from="x") == {("adapter_from", "err_adapter_from_sft")}
    assert problems(train__packing=True) == {("packing", "err_pref_packing")}
    assert problems(data__drop=["duplicate", "truncated"]) == {("data.drop", "err_pref_drop")}
    assert problems(data__drop=["duplicate"]) == set()  # the text checks apply to pairs as to conversations
    for code in ("err_beta", "err_adapter_from_sft", "err_pref_packing", "err_pref_one_gpu", "err_pref_drop",
                 "err_adapter_from_none", "err_adapter_model", "data_needs_pairs"):
        assert code in STRINGS and STRINGS[code][0] != STRINGS[code][1], code


def fake_trained_run(cfg: RunConfig, owner: str) -> Path:
    """A run folder as a finished run leaves it, with an adapter (its weights are not read here)."""
    run_dir = runs.create_run(cfg, owner=owner)
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere"}))
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return run_dir


def test_start_refuses_a_preference_stage_on_conversations_in_the_readers_language():
    cfg = bundled_preference_recipe()
    cfg.data.source, cfg.data.path = "bundled", BUNDLED_DATA
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, LOCAL)
    assert info.value.code == "err_data" and info.value.params["cause"].code == "data_needs_pairs"
    assert "DPO learns from chosen/rejected pairs" in say(info.value, EN) and BUNDLED_PAIRS in say(info.value, EN)
    assert "DPO는 chosen/rejected 쌍으로 학습하는데" in say(info.value, KO)
    cfg = RunConfig()
    cfg.data.source, cfg.data.path = "file", BUNDLED_PAIRS  # SFT on pairs: on the prompt and the chosen answer
    assert jobs.preflight(cfg, None, LOCAL).is_pairs


def test_a_run_to_start_from_must_be_the_persons_own_with_an_adapter_on_the_same_model():
    alice, bob = User("alice"), User("bob")
    sft = fake_trained_run(RunConfig(run_name="alice-sft"), owner="alice")
    cfg = bundled_preference_recipe()
    cfg.model.adapter_from = sft.name
    jobs.preflight(cfg, None, alice)  # hers: fine
    for who in (bob, User("root", admin=True)):  # another person's run, also for an admin: as if it were not there
        with pytest.raises(jobs.Refused) as info:
            jobs.preflight(cfg, None, who)
        assert info.value.code == "err_no_such_run"
    cfg.model.adapter_from = "../" + sft.name
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, alice)
    assert info.value.code == "err_no_such_run"
    empty = runs.create_run(RunConfig(run_name="alice-queued"), owner="alice")
    cfg.model.adapter_from = empty.name
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, alice)
    assert info.value.code == "err_adapter_from_none" and "저장된 어댑터가" in say(info.value, KO)
    other_model = RunConfig(run_name="alice-other")
    other_model.model.name = "assets/elsewhere"
    cfg.model.adapter_from = fake_trained_run(other_model, owner="alice").name
    with pytest.raises(jobs.Refused) as info:
        jobs.preflight(cfg, None, alice)
    assert info.value.params["problems"][0].code == "err_adapter_model" and "assets/elsewhere" in say(info.value, EN)


def test_the_worker_checks_the_owner_again_and_copies_the_start_into_its_run(tmp_path):
    """A config.yaml edited by hand to name another person's run is refused where the worker reads it."""
    alice_sft = fake_trained_run(RunConfig(run_name="alice-sft2"), owner="alice")
    cfg = bundled_preference_recipe()
    cfg.model.adapter_from = alice_sft.name
    bobs = runs.create_run(cfg, owner="bob")
    with pytest.raises(preference.StartError):
        preference.start_adapter(cfg, bobs, "/models/base")
    assert not (bobs / preference.START_ADAPTER).exists()
    hers = runs.create_run(cfg, owner="alice")
    copied = preference.start_adapter(cfg, hers, "/models/base")
    assert copied == hers / preference.START_ADAPTER
    assert (copied / "adapter_model.safetensors").read_bytes() == b"weights"
    assert json.loads((copied / "adapter_config.json").read_text())["base_model_name_or_path"] == "/models/base"
    (alice_sft / "adapter" / "adapter_model.safetensors").write_bytes(b"retrained")  # a Resume keeps its start
    again = preference.start_adapter(cfg, hers, "/models/base")
    assert (again / "adapter_model.safetensors").read_bytes() == b"weights"


# ---------------------------------------------------------------- what the tabs show, the script, the plot

def test_the_dataset_tab_shows_chosen_and_rejected_side_by_side():
    info, page, rows, html = dataset_tab.preview("file", BUNDLED_PAIRS, "train", 0, 1, "", KO)
    assert "선호 쌍 (chosen/rejected 대화)" in info and page == 1 and rows[0]["row"] == 1
    assert html.count('class="side chosen"') == html.count('class="side rejected"') == dataset_tab.PAGE_SIZE
    assert "7 + 5 = 12." in html and "7 + 5 = 14." in html


def script_functions(text: str, functions: tuple[str, ...]) -> dict:
    """Some functions of an exported script with the settings they read, run alone from the studio folder."""
    tree = ast.parse(text)
    wanted = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name in functions)
              or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("DATA", "SPLIT", "ROLES",
                                                                                     "PROMPT_COLUMN"))]
    namespace = {"json": json}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "train.py", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_exported_script_reads_pairs_as_the_studio_does(tmp_path, name, monkeypatch):
    path = shape_files(tmp_path)[name]
    cfg = bundled_preference_recipe()
    cfg.run_name = f"script-pairs-{name}"
    cfg.data.path = str(path)
    text = export.python_script(runs.create_run(cfg))
    assert "DPOTrainer(" in text and "BETA = 0.1  #" in text and "START_ADAPTER = None\n" in text
    monkeypatch.chdir(REPO)  # the script runs from the studio folder
    script = script_functions(text, ("load_rows", "to_messages", "pair"))
    ds = data.load_file(path)
    assert [script["pair"](row) for row in script["load_rows"]()] == [ds.pair(i).example() for i in range(len(ds))]


def test_the_sft_script_on_pairs_trains_on_the_prompt_and_the_chosen_answer(monkeypatch):
    cfg = RunConfig(run_name="script-sft-on-pairs")
    cfg.data.source, cfg.data.path = "file", BUNDLED_PAIRS
    text = export.python_script(runs.create_run(cfg))
    monkeypatch.chdir(REPO)
    script = script_functions(text, ("load_rows", "to_messages", "pair", "standardize"))
    assert [script["standardize"](row) for row in script["load_rows"]()] == \
        list(data.load_file(REPO / BUNDLED_PAIRS).iter_conversations())


def test_the_orpo_script_imports_orpo_from_where_trl_has_it():
    cfg = bundled_preference_recipe()
    cfg.train.stage, cfg.run_name = "orpo", "script-orpo"
    text = export.python_script(runs.create_run(cfg))
    assert "from trl.experimental.orpo import ORPOConfig, ORPOTrainer" in text and "ORPOTrainer(" in text


def test_the_live_plot_of_a_preference_run_has_its_rewards():
    logs = [{"step": s, "loss": 0.69 - 0.01 * s, "rewards/chosen": 0.01 * s, "rewards/rejected": -0.02 * s,
             "rewards/margins": 0.03 * s, "rewards/accuracies": min(1.0, 0.1 * s)} for s in range(1, 11)]
    evals = [{"step": 5, "eval_loss": 0.6, "eval_rewards/accuracies": 0.7}]
    names = [trace.name for trace in training_figure(logs, say=lambda k: k, evals=evals).data]
    assert names == ["plot_loss", "plot_eval_loss", "plot_eval_accuracy", "plot_chosen", "plot_rejected",
                     "plot_margin", "plot_accuracy"]
    assert [trace.name for trace in training_figure([{"step": 1, "loss": 2.0}], say=lambda k: k).data] == ["plot_loss"]
