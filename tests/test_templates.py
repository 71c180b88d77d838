from pathlib import Path

import pytest

from studio import templates
from studio.config import BUNDLED_MODEL, resolve_path

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "7 + 5 = 12."}, {"role": "user", "content": "And 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."}]


@pytest.fixture(scope="module")
def tokenizer():
    import unsloth  # noqa: F401
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(resolve_path(BUNDLED_MODEL)))
    return templates.apply_template(tok, "qwen-3")


def test_offered_templates_are_known_to_unsloth():
    import unsloth  # noqa: F401
    from unsloth.chat_templates import CHAT_TEMPLATES
    assert set(templates.TEMPLATES) <= set(CHAT_TEMPLATES)


def test_default_template_follows_the_model_family():
    assert templates.default_template("unsloth/Qwen3-4B-unsloth-bnb-4bit") == "qwen-3"
    assert templates.default_template("x", "qwen3") == "qwen-3"
    assert templates.default_template("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit") == "llama-3.1"
    assert templates.default_template("unsloth/gemma-3-4b-it") == "gemma-3"


def test_qwen3_render_has_the_chapter_think_block(tokenizer):
    text = templates.render(tokenizer, CONV[1:3])
    assert text.startswith("<|im_start|>user\nWhat is 7 + 5?<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>\n\n</think>\n\n7 + 5 = 12.<|im_end|>" in text


def test_trained_span_is_exactly_the_assistant_replies(tokenizer):
    text = templates.render(tokenizer, CONV)
    inst, resp = templates.markers(tokenizer, "qwen-3")
    assert (inst, resp) == ("<|im_start|>user\n", "<|im_start|>assistant\n")
    segments, trained, total = templates.trained_segments(tokenizer, text, inst, resp)
    assert "".join(s.text for s in segments) == text  # nothing lost or added
    trained_text = "".join(s.text for s in segments if s.trained)
    assert "7 + 5 = 12.<|im_end|>" in trained_text and "2 + 2 = 4.<|im_end|>" in trained_text
    assert "What is 7 + 5?" not in trained_text and "Be brief." not in trained_text
    assert 0 < trained < total


def test_truncation_drops_the_reply(tokenizer):
    text = templates.render(tokenizer, CONV[1:3])
    inst, resp = templates.markers(tokenizer, "qwen-3")
    _, trained, total = templates.trained_segments(tokenizer, text, inst, resp, max_length=4)
    assert total == 4 and trained == 0


@pytest.mark.slow
def test_the_template_tab_shows_exactly_what_the_trainer_trains_on():
    """Tokens and labels of the Template tab's rendering == the SFTTrainer's after train_on_responses_only."""
    import unsloth  # noqa: F401
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import train_on_responses_only
    model, tok = FastLanguageModel.from_pretrained(str(resolve_path(BUNDLED_MODEL)), max_seq_length=256,
                                                   load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=4, lora_alpha=4, target_modules=["q_proj"])
    tok = templates.apply_template(tok, "qwen-3")
    rows = [CONV, CONV[1:3]]
    trainer = SFTTrainer(model=model, processing_class=tok,
                         train_dataset=Dataset.from_dict({"text": [templates.render(tok, c) for c in rows]}),
                         args=SFTConfig(output_dir="/tmp/studio-tpl-test", dataset_text_field="text", max_length=256,
                                        per_device_train_batch_size=1, max_steps=1, report_to="none",
                                        dataset_num_proc=1))
    inst, resp = templates.markers(tok, "qwen-3")
    trainer = train_on_responses_only(trainer, instruction_part=inst, response_part=resp)
    for i, conv in enumerate(rows):
        shown = templates.training_text(tok, conv)
        ids = trainer.train_dataset[i]["input_ids"]
        assert tok.decode(ids) == shown
        segments, trained, total = templates.trained_segments(tok, shown, inst, resp)
        labels = trainer.train_dataset[i]["labels"]
        assert total == len(ids) and trained == sum(1 for x in labels if x != -100)
        assert "".join(s.text for s in segments if s.trained) == tok.decode([t for t in labels if t != -100])


@pytest.mark.slow
def test_prepared_rows_equal_what_sfttrainer_and_train_on_responses_only_make():
    """The worker's own preparation (studio/prepare.py) == SFTTrainer(text) + Unsloth's train_on_responses_only,
    token for token and label for label, on the bundled sample (multi-turn, system turns, Korean, truncation)."""
    import unsloth  # noqa: F401
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import train_on_responses_only

    from studio import data, prepare
    model, tok = FastLanguageModel.from_pretrained(str(resolve_path(BUNDLED_MODEL)), max_seq_length=256,
                                                   load_in_4bit=False)
    model = FastLanguageModel.get_peft_model(model, r=4, lora_alpha=4, target_modules=["q_proj"])
    tok = templates.apply_template(tok, "qwen-3")
    ds = data.load_dataset_source("bundled")
    rows = list(range(0, 120, 3))
    texts = [templates.render(tok, ds.standardized(i)) for i in rows]
    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_dict({"text": texts}),
                         args=SFTConfig(output_dir="/tmp/studio-prep-test", dataset_text_field="text", max_length=40,
                                        per_device_train_batch_size=1, max_steps=1, report_to="none",
                                        dataset_num_proc=1))
    inst, resp = templates.markers(tok, "qwen-3")
    theirs = train_on_responses_only(trainer, instruction_part=inst, response_part=resp).train_dataset
    ours, left_out = prepare.prepare(ds, rows, tok, "qwen-3", 40, True)
    dropped = left_out["no_trained_tokens"]
    assert len(dropped) == len(rows) - len(theirs) and dropped  # some replies are cut off at 40 tokens
    assert ours["input_ids"] == theirs["input_ids"] and ours["labels"] == theirs["labels"]
    parallel, _ = prepare.prepare(ds, rows, tok, "qwen-3", 40, True, processes=2)  # chunks in 2 processes
    assert parallel["input_ids"] == ours["input_ids"] and parallel["labels"] == ours["labels"]
    # so the worker may skip TRL's own pass over prepared rows (truncate, drop the unlabelled): it changes nothing
    passed = SFTTrainer(model=model, processing_class=tok, train_dataset=ours,
                        args=SFTConfig(output_dir="/tmp/studio-prep-test", max_length=40, per_device_train_batch_size=1,
                                       max_steps=1, report_to="none", dataset_num_proc=1)).train_dataset
    assert passed["input_ids"] == ours["input_ids"] and passed["labels"] == ours["labels"]
    from studio.config import RunConfig
    from studio.train import sft_config
    cpu = sft_config(RunConfig(), Path("/tmp/studio-prep-test"), on_gpu=False)
    assert cpu.dataset_kwargs == {"skip_prepare_dataset": True} and cpu.gradient_checkpointing is False
    assert sft_config(RunConfig(), Path("/tmp/studio-prep-test"), on_gpu=True).dataset_kwargs == cpu.dataset_kwargs
    packing = RunConfig()
    packing.train.packing = True  # packing needs TRL's pass
    assert sft_config(packing, Path("/tmp/studio-prep-test"), on_gpu=True).dataset_kwargs is None


def test_prepare_uses_a_process_per_core_for_big_jobs(monkeypatch):
    from studio import prepare
    monkeypatch.setattr(prepare.os, "sched_getaffinity", lambda pid: set(range(2)))
    assert prepare.default_processes(100) == 1  # small: starting processes costs more than it saves
    assert prepare.default_processes(100_000) == 2
    monkeypatch.setattr(prepare.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert prepare.default_processes(100_000) == 16
    monkeypatch.setattr(prepare.os, "sched_getaffinity", lambda pid: {0})
    assert prepare.default_processes(100_000) == 1
