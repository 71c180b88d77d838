"""The fit-to-GPU estimator (studio/fit.py), on the CPU: no GPU, no model weights."""
import json
import random

import pytest

from studio import fit
from studio.config import RunConfig, chapter_recipe

Q4B = fit.KNOWN["qwen3-4b"]
Q06 = fit.KNOWN["qwen3-0.6b"]


def chat_lengths(n=256, lo=128, hi=1536, seed=0):
    """The benchmarks' synthetic rows (bench/gpu_common.chat_lengths) + the eos token TRL appends."""
    rng = random.Random(seed)
    return [rng.randint(lo, hi) + 1 for _ in range(n)]


def test_shape_counts_the_real_qwen3_4b_parameters():
    s = fit.shape(Q4B)
    assert 4.0e9 < s["params"] < 4.05e9  # Qwen3-4B: 4.02 B with tied embeddings
    assert s["lora_per_r"] * 8 == pytest.approx(16.5e6, rel=0.01)  # r=8 on the seven modules
    assert 0.59e9 < fit.shape(Q06)["params"] < 0.61e9


def test_estimate_grows_with_micro_batch_and_length():
    for q4 in (True, False):
        for gc in fit.CHECKPOINTING:
            by_batch = [fit.estimate(Q4B, 2048, q4, mb, gc) for mb in (1, 2, 4, 8)]
            assert by_batch == sorted(by_batch) and by_batch[0] < by_batch[-1]
            by_len = [fit.estimate(Q4B, n, q4, 2, gc) for n in (256, 512, 1024, 2048, 4096)]
            assert by_len == sorted(by_len) and by_len[0] < by_len[-1]


def test_checkpointing_and_4bit_save_memory():
    for mb in (1, 2, 4, 8):
        off, on, uns = (fit.estimate(Q4B, 2048, False, mb, gc) for gc in ("false", "true", "unsloth"))
        assert off > on > uns
        assert fit.estimate(Q4B, 2048, True, mb, "false") < off


def test_chapter_recipe_on_the_4b_shape_is_near_the_measured_3_3_gib():
    rec = fit.recipe_estimate(Q4B, 2048, 79.0, lengths=chat_lengths(), steps=60)
    assert rec.is_recipe
    assert abs(rec.peak_gb - 3.227) / 3.227 <= 0.04, rec  # measured 3.227 GiB; the claim: within 3.7%
    assert rec.tokens_per_s_rel == 1.0


def test_16bit_batch_8_without_checkpointing_is_near_the_measured_37_gib():
    est = fit.estimate(Q4B, 2048, False, 8, "false",
                       tokens=fit.largest_micro_batch(chat_lengths(), 8, 2048, micro_batches=60)[0])
    assert abs(est - 36.03) / 36.03 <= 0.15, est  # measured 36.03 GiB (H100); issue 7's target: within 15%


def test_picks_the_recipe_when_memory_is_tiny():
    best = fit.pick(Q4B, 2048, 2.0, lengths=chat_lengths())
    assert best.is_recipe and not best.fits


def test_on_an_h100_the_pick_is_much_faster_than_the_recipe():
    best = fit.pick(Q4B, 2048, 79.0, lengths=chat_lengths())
    assert best.fits and not best.load_in_4bit
    assert best.micro_batch * best.grad_accum == 8
    assert best.tokens_per_s_rel >= 3.0


@pytest.mark.parametrize("free_gb", [1, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 141])
@pytest.mark.parametrize("mc", [Q4B, Q06, fit.KNOWN["qwen3-8b"]])
@pytest.mark.parametrize("lengths", [None, "chat"])
def test_never_picks_a_setting_whose_estimate_exceeds_free_memory(free_gb, mc, lengths):
    lens = chat_lengths() if lengths else None
    best = fit.pick(mc, 2048, free_gb, lengths=lens)
    cands = fit.candidates(mc, 2048, free_gb, lengths=lens)
    if best.fits:
        assert best.worst_gb <= fit.usable_gb(free_gb) < free_gb
        # nothing that fits is estimated faster
        assert all(c.tokens_per_s <= best.tokens_per_s for c in cands if c.fits)
    else:
        assert best.is_recipe and not any(c.fits for c in cands)


def test_more_memory_never_picks_a_slower_setting():
    last = 0.0
    for free in range(2, 160, 2):
        best = fit.pick(Q4B, 2048, free, lengths=chat_lengths())
        if best.fits:
            assert best.tokens_per_s >= last
            last = best.tokens_per_s


def test_worst_case_bounds_the_expected_largest_micro_batch():
    lens = chat_lengths()
    for mb in (1, 2, 4, 8):
        exp, worst = fit.largest_micro_batch(lens, mb, 2048, micro_batches=100)
        assert sum(sorted(lens)[-1:]) <= worst == mb * max(lens)
        assert mb * (sum(lens) / len(lens)) < exp <= worst
    assert fit.largest_micro_batch(None, 4, 1024) == (4096.0, 4096.0)
    # truncation at max_length
    assert fit.largest_micro_batch([5000, 6000], 2, 2048, micro_batches=4)[1] == 4096


def test_candidates_keep_the_effective_batch():
    for e in fit.candidates(Q4B, 2048, 79.0, effective_batch=8):
        assert e.micro_batch * e.grad_accum == 8
    assert {e.micro_batch for e in fit.candidates(Q4B, 2048, 79.0, effective_batch=4)} == {1, 2, 4}


def test_speed_model_orders_the_obvious_cases():
    L = 832
    assert fit.tokens_per_s(Q4B, False, 8, "false", L) > fit.tokens_per_s(Q4B, True, 8, "false", L)
    assert fit.tokens_per_s(Q4B, False, 8, "false", L) > fit.tokens_per_s(Q4B, False, 8, "unsloth", L)
    assert fit.tokens_per_s(Q4B, False, 8, "false", L) > fit.tokens_per_s(Q4B, False, 2, "false", L)
    assert fit.tokens_per_s(Q06, False, 8, "false", L) > fit.tokens_per_s(Q4B, False, 8, "false", L)


def test_run_config_round_trip_and_apply(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**Q4B, "model_type": "qwen3"}))
    cfg = chapter_recipe()
    cfg.model.name = str(model)
    best = fit.pick_for_run(cfg, free_gb=79.0, lengths=chat_lengths())
    fit.apply(cfg, best)
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again.model.load_in_4bit == best.load_in_4bit
    assert again.train.per_device_train_batch_size == best.micro_batch
    assert again.train.gradient_accumulation_steps == best.grad_accum
    assert again.lora.use_gradient_checkpointing == best.gradient_checkpointing
    assert again.train.learning_rate == 2e-4 and again.lora.r == 8  # the rest of the recipe is untouched
    text = fit.describe(chapter_recipe(), free_gb=79.0, lengths=chat_lengths())
    assert "chapter" in text and "fit to this GPU" in text and "GiB" in text


def test_model_config_for_known_names_and_unknown():
    assert fit.model_config_for("unsloth/Qwen3-4B-unsloth-bnb-4bit")["hidden_size"] == 2560
    assert fit.model_config_for("Qwen/Qwen3-0.6B")["hidden_size"] == 1024
    assert fit.model_config_for("someone/unknown-model") is None
    with pytest.raises(ValueError):
        cfg = chapter_recipe()
        cfg.model.name = "someone/unknown-model"
        fit.pick_for_run(cfg, free_gb=10)


def test_no_gradio_import():
    import subprocess
    import sys
    code = "import sys, studio.fit; assert 'gradio' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=fit.__file__.rsplit("/studio/", 1)[0])


def test_train_tab_fit_button_applies_the_pick(monkeypatch):
    """The Train tab's button: the form's model + free GPU memory -> the form, changed to the pick."""
    import gradio as gr
    from studio import fit
    from studio.config import chapter_recipe
    from studio.ui import form
    keys = ["model.name", "model.load_in_4bit", "lora.use_gradient_checkpointing", "train.max_length",
            "train.per_device_train_batch_size", "train.gradient_accumulation_steps", "train.max_steps", "lora.r"]
    values = chapter_recipe().to_flat(keys)
    monkeypatch.setattr(fit, "free_gpu_gb", lambda: None)
    with pytest.raises(gr.Error, match="No GPU"):
        form.fit_to_gpu(keys, values)
    monkeypatch.setattr(fit, "free_gpu_gb", lambda: 79.2)  # an H100, as measured in docs/benchmarks.md
    *new, text = form.fit_to_gpu(keys, values)
    picked = dict(zip(keys, new))
    assert (picked["model.load_in_4bit"], picked["train.per_device_train_batch_size"],
            picked["train.gradient_accumulation_steps"], picked["lora.use_gradient_checkpointing"]) == \
        (False, 8, 1, "false")
    assert "the chapter's settings" in text and "fit to this GPU" in text


# ---------------------------------------------------------------- several GPUs

Q32B = dict(hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
            num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False)


def test_ddp_holds_what_one_gpu_holds_plus_its_gradient_buckets():
    one = fit.estimate(Q4B, 2048, False, 8, "false")
    two = fit.per_gpu_gb(one, Q4B, False, "ddp", 2, 80.0, r=8)
    assert one < two < one + 0.1  # 16.5 M LoRA params x 4 B = 0.06 GiB
    assert fit.per_gpu_gb(one, Q4B, False, "ddp", 1, 80.0) == one


def test_fsdp2_keeps_a_small_model_replicated_and_shards_a_big_one():
    assert not fit.fsdp2_shards_frozen(Q4B, False, 80.0)  # 7.5 GiB <= 40% of 80
    assert fit.fsdp2_shards_frozen(Q32B, False, 80.0)
    one4 = fit.estimate(Q4B, 2048, False, 8, "false")
    assert one4 - 0.2 < fit.per_gpu_gb(one4, Q4B, False, "fsdp2", 2, 80.0) <= one4
    one32 = fit.estimate(Q32B, 2048, False, 2, "unsloth")
    assert one32 > 61  # Qwen3-32B in 16-bit: 61 GiB of weights alone, no room on an 80 GB card with its margin
    by_n = [fit.per_gpu_gb(one32, Q32B, False, "fsdp2", n, 80.0) for n in (2, 4, 8)]
    assert by_n == sorted(by_n, reverse=True)
    w = fit.weights_gb(fit.shape(Q32B), False)
    assert by_n[0] == pytest.approx(one32 - w / 2 + 2 * (w - fit.shape(Q32B)["embed"] * 2 / fit.GIB) / 64 / 2
                                    - 0.5 * fit.shape(Q32B)["lora_per_r"] * 8 * 10 / fit.GIB, rel=0.1)
    assert by_n[0] < fit.usable_gb(79.0)
    with pytest.raises(ValueError):
        fit.per_gpu_gb(one32, Q32B, False, "zero3", 2, 80.0)


def test_pick_multi_gpu():
    strategy, e = fit.pick_multi_gpu(Q4B, 2048, 79.0, 2)
    assert strategy == "ddp" and e.fits and not e.load_in_4bit  # a small model: plain data parallel
    single = fit.pick(Q4B, 2048, 79.0)
    assert e.tokens_per_s > 1.8 * single.tokens_per_s
    # Qwen3-32B, 16-bit: without checkpointing nothing fits an 80 GB card; with it one GPU is near its limit
    # (61 GiB of weights), FSDP2 over two GPUs halves the weights on each
    ddp = {c.label: c for c in fit.candidates_multi_gpu(Q32B, 2048, 79.0, 2, "ddp") if not c.load_in_4bit}
    fsdp = {c.label: c for c in fit.candidates_multi_gpu(Q32B, 2048, 79.0, 2, "fsdp2", total_gb=80.0)
            if not c.load_in_4bit}
    assert not any(c.fits for c in ddp.values() if c.gradient_checkpointing == "false")
    label = "16-bit, batch 2 x 4, Unsloth offloaded checkpointing"
    assert ddp[label].worst_gb > 61 and fsdp[label].worst_gb < 36 and fsdp[label].fits
    strategy, e = fit.pick_multi_gpu(Q32B, 2048, 79.0, 2, total_gb=80.0)
    assert e.fits
    # nothing fits: the smallest FSDP2 setting, marked
    strategy, e = fit.pick_multi_gpu(Q32B, 2048, 4.0, 2)
    assert strategy == "fsdp2" and not e.fits


def test_model_flops_utilisation_counts_the_models_own_arithmetic():
    """MFU on the Train tab: tokens/s x model FLOPs per token / the card's dense bf16 peak."""
    from conftest import EN
    from studio.ui import run_view
    qwen3_4b = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True)
    per_token = fit.train_flops_per_token(qwen3_4b, lora_params=16_515_072, mean_length=1000)
    params = fit.shape(qwen3_4b)["params"]
    assert 4 * params < per_token < 4.4 * params  # the frozen base dominates: ~16 GFLOP a token for 4B
    assert fit.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4 and fit.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert fit.peak_tflops("Some Future GPU") is None
    mfu = 16_336 * per_token / 989.4e12
    assert 0.2 < mfu < 0.3  # last round's Fit pick on an H100: about a quarter of the card
    line = run_view.progress_line({"state": "running", "step": 3, "max_steps": 10},
                                  [{"step": 3, "tokens_per_s": 16336.0, "mfu": mfu}], "run", EN)
    assert "16,336 tokens/s" in line and f"MFU {100 * mfu:.0f}%" in line
