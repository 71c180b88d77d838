"""The preference stage trained for real on CPU: Unsloth's CPU fallback runs TRL's DPOTrainer and ORPOTrainer
(stock TRL there; on a GPU Unsloth patches them), through the studio's own worker and lifecycle.

An SFT run, then a DPO run that starts from its adapter (Start's owner check, a held-out split, Stop and Resume on
one curve), an ORPO run from the base model, the Template tab's marks against what TRL's trainers tokenize, and
the two adapters answering side by side as the Chat tab's compare pane loads them."""
import json

import pytest
from conftest import KO, wait_for

from studio import jobs, preference, runs, templates
from studio.auth import LOCAL
from studio.config import BUNDLED_MODEL, BUNDLED_PAIRS, RunConfig, bundled_preference_recipe
from studio.ui import run_view

pytestmark = pytest.mark.slow


def events(run_dir):
    return runs.read_metrics(run_dir).events


def logs(run_dir):
    return [e for e in events(run_dir) if e["event"] == "log"]


def mean(values):
    values = list(values)
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def sft_run(machine_free_module):
    cfg = RunConfig(run_name="pref-sft")
    cfg.train.max_steps = 60
    run_id = jobs.start(cfg, LOCAL)["run_id"]
    run_dir = runs.runs_root() / run_id
    status = wait_for(run_dir, timeout=600)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    return run_dir


@pytest.fixture(scope="module")
def machine_free_module():
    from conftest import stop_everything
    stop_everything()
    yield
    stop_everything()


@pytest.fixture(scope="module")
def dpo_run(sft_run):
    """DPO from the SFT run's adapter, with a held-out split; stopped after step 6 and resumed to the end."""
    cfg = bundled_preference_recipe()
    cfg.run_name, cfg.model.adapter_from = "pref-dpo", sft_run.name
    cfg.train.max_steps, cfg.train.eval_steps, cfg.data.eval_size = 24, 8, 0.1
    run_id = jobs.start(cfg, LOCAL)["run_id"]
    run_dir = runs.runs_root() / run_id
    wait_for(run_dir, step=6, timeout=600)
    jobs.stop(run_id, LOCAL)
    stopped = wait_for(run_dir, timeout=300)
    assert stopped["state"] == "stopped" and runs.last_checkpoint(run_dir), runs.log_tail(run_dir, 40)
    jobs.resume(run_id, LOCAL)
    status = wait_for(run_dir, timeout=600)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    return run_dir, stopped["step"]


def test_dpo_from_an_sft_adapter_learns_the_preference_on_one_curve_through_stop_and_resume(dpo_run, sft_run):
    run_dir, stopped_at = dpo_run
    history = logs(run_dir)
    steps = [e["step"] for e in history]
    assert 6 <= stopped_at < 24 and steps == list(range(1, 25))  # one curve: the resume appended to it
    first, last = history[:5], history[-5:]
    print(f"DPO from SFT: loss {mean(e['loss'] for e in first):.3f} -> {mean(e['loss'] for e in last):.3f}, margin "
          f"{mean(e['rewards/margins'] for e in first):.3f} -> {mean(e['rewards/margins'] for e in last):.3f}, "
          f"accuracy {mean(e['rewards/accuracies'] for e in last):.2f}")
    assert history[0]["rewards/margins"] == 0.0  # step 1: the policy is its reference, the SFT model
    assert mean(e["loss"] for e in last) < mean(e["loss"] for e in first)
    # better than chance on the last steps (a few pairs a step: CI saw 0.72-0.8 across stop points)
    assert mean(e["rewards/margins"] for e in last) > 0.1 and mean(e["rewards/accuracies"] for e in last) >= 0.6
    assert all(e.get("tokens_per_s") for e in history[1:])  # the live speed, as for SFT
    # it started from the SFT run's adapter: the model already knew the answers (high log-probabilities)
    model = next(e for e in events(run_dir) if e["event"] == "model")
    assert model["adapter_from"] == sft_run.name and history[0]["logps/chosen"] > -40
    copied = run_dir / preference.START_ADAPTER / "adapter_model.safetensors"
    assert copied.read_bytes() == (sft_run / "adapter" / "adapter_model.safetensors").read_bytes()
    # the held-out pairs: eval loss and reward accuracy at each evaluation, sample answers, the best checkpoint
    evals = [e for e in events(run_dir) if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [8, 16, 24] and all("eval_rewards/accuracies" in e for e in evals)
    assert [e["step"] for e in events(run_dir) if e["event"] == "samples"] == [8, 16, 24]
    end = [e for e in events(run_dir) if e["event"] == "end"][-1]
    assert end["best_step"] in (8, 16, 24) and not end["stopped"]
    # the saved adapter is the trained one alone (TRL's frozen reference copy is left out)
    adapter = run_dir / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / preference.REFERENCE_ADAPTER).exists()
    summary = run_view.summary_text(events(run_dir), runs.view(run_dir), KO)
    assert f"DPO, beta 0.1, 192개 쌍, 시작점: {sft_run.name}" in summary and "보상 정확도" in summary


@pytest.fixture(scope="module")
def orpo_run(machine_free_module):
    cfg = bundled_preference_recipe()
    cfg.run_name, cfg.train.stage, cfg.train.max_steps = "pref-orpo", "orpo", 8
    run_id = jobs.start(cfg, LOCAL)["run_id"]
    run_dir = runs.runs_root() / run_id
    status = wait_for(run_dir, timeout=600)
    assert status["state"] == "completed", runs.log_tail(run_dir, 40)
    return run_dir


def test_orpo_from_the_base_model_trains_with_its_odds_ratio(orpo_run):
    history = logs(orpo_run)
    assert len(history) == 8 and all("log_odds_ratio" in e and "rewards/margins" in e for e in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(e.get("tokens_per_s") for e in history[1:])  # ORPO's batches counted (no input_ids there)
    assert (orpo_run / "adapter" / "adapter_config.json").is_file()


def test_the_exported_script_reproduces_the_preference_runs_loss_curve(orpo_run, tmp_path):
    from test_export import run_script
    proc, theirs = run_script(orpo_run, tmp_path)
    assert "64 training pairs (of 300)" in proc.stdout
    ours = [e["loss"] for e in logs(orpo_run)]
    assert len(theirs) == len(ours) == 8 and max(abs(a - b) for a, b in zip(theirs, ours)) < 1e-3, (theirs, ours)


def answer_logp(loaded, pair, side: str) -> float:
    """log p(answer | prompt) under a model as the Chat tab loaded it (adapter merged, the run's chat template)."""
    import torch
    tok, model = loaded.tokenizer, loaded.model
    prompt = tok.apply_chat_template(pair.prompt, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(pair.prompt + getattr(pair, side), tokenize=False)
    ids = tok(full, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
    start = len(tok(prompt, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    logp = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    return logp[start - 1:].sum().item()


def test_the_chat_compare_pane_sets_the_dpo_adapter_beside_its_sft_start(dpo_run, sft_run):
    """Both adapters loaded as the Chat tab's two panes load them answer the same question; and the DPO one prefers
    the chosen answers more than the SFT one it started from (what DPO trains: a wider chosen - rejected margin)."""
    from studio import data
    from studio.config import resolve_path
    from studio.chat import SERVICE, RunTarget
    run_dir, _ = dpo_run
    panes = {"a": RunTarget(sft_run), "b": RunTarget(run_dir)}  # the Chat tab's two panes, one session
    sft, dpo = (SERVICE.load("compare-test", pane, target) for pane, target in panes.items())
    question = [{"role": "user", "content": "What is 7 + 5?"}]
    answers = [list(SERVICE.stream("compare-test", pane, target, question, max_new_tokens=24))[-1]
               for pane, target in panes.items()]
    assert all(a.strip() for a in answers), answers
    ds = data.load_file(resolve_path(BUNDLED_PAIRS))
    margins = {name: mean(answer_logp(loaded, ds.pair(i), "chosen") - answer_logp(loaded, ds.pair(i), "rejected")
                          for i in range(16))
               for name, loaded in (("sft", sft), ("dpo", dpo))}
    print(f"answers SFT {answers[0]!r}, DPO {answers[1]!r}; mean chosen - rejected log-prob {margins}")
    assert margins["dpo"] > margins["sft"] + 0.5


@pytest.mark.parametrize("stage", ["dpo", "orpo"])
def test_the_template_tab_marks_what_the_trainer_trains(stage, tmp_path):
    """The Template tab's ids and marks (studio.preference.pair_tokens, on its own tokenizer) against the rows TRL's
    trainer builds with the worker's model and tokenizer, cut at a max_length that cuts some."""
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel
    from studio import data
    from studio.config import resolve_path
    max_length = 48  # longer than every prompt picked (TRL's DPO drops pairs whose prompt fills it); cuts 2 pairs
    ds = data.load_file(resolve_path(BUNDLED_PAIRS))
    picked = list(range(60, 76))  # some with a system turn, some Korean
    model, worker_tokenizer = FastLanguageModel.from_pretrained(str(resolve_path(BUNDLED_MODEL)), max_seq_length=512)
    model = FastLanguageModel.get_peft_model(model, r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    worker_tokenizer = templates.apply_template(worker_tokenizer, "qwen-3")
    config_class, trainer_class = preference.trainer_classes(stage)
    trainer = trainer_class(model=model, processing_class=worker_tokenizer,
                            train_dataset=preference.examples(ds, picked),
                            args=config_class(output_dir=str(tmp_path), max_length=max_length, report_to="none"))
    shown_tokenizer = templates.TOKENIZERS.get(BUNDLED_MODEL, "qwen-3")
    cut = 0
    for n, i in enumerate(picked):
        row, shown = trainer.train_dataset[n], preference.pair_tokens(shown_tokenizer, ds.pair(i), stage, max_length)
        for side in ("chosen", "rejected"):
            ids, trained = shown[side]
            if stage == "dpo":  # DataCollatorForPreference: prompt_ids + answer ids, cut at max_length
                want_ids = (row["prompt_ids"] + row[f"{side}_ids"])[:max_length]
                want_trained = ([False] * len(row["prompt_ids"]) + [True] * len(row[f"{side}_ids"]))[:max_length]
            else:  # ORPOTrainer.tokenize_row: the NLL over all of prompt + chosen, the odds ratio on the answers
                want_ids = row[f"{side}_input_ids"]
                want_trained = [bool(m) for m in row["chosen_attention_mask"]] if side == "chosen" else \
                    [x != -100 for x in row["rejected_labels"]]
            assert (ids, trained) == (want_ids, want_trained), (stage, i, side)
            assert any(trained) and (side == "chosen" and stage == "orpo" or not all(trained))
            cut += len(ids) == max_length
    assert cut  # the cut was exercised


def test_a_preference_run_is_one_more_run_in_the_lists(dpo_run):
    run_dir, _ = dpo_run
    row = next(r for r in jobs.visible_runs(LOCAL) if r["id"] == run_dir.name)
    assert row["stage"] == "dpo" and row["has_adapter"] and row["state"] == "completed"
    saved = json.loads((run_dir / "status.json").read_text())
    assert saved["step"] == 24 and saved["state"] == "completed"
