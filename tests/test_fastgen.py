"""The fast chat path (studio/fastgen.py) on the bundled model, on CPU: the static-cache decode loop gives
model.generate's greedy tokens (base, LoRA unmerged, LoRA merged; eager exact step and the fixed-shape step
a CUDA graph holds), stops when asked, samples reproducibly, refuses what it cannot do; and the benchmark
script runs end to end on the tiny shape."""
import copy
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

PROMPTS = ["What is 7 + 5?", "Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,", "hello " * 30]
NEW = 48


@pytest.fixture(scope="module")
def loaded():
    """The bundled model as the Chat tab loads it on CPU (Unsloth, bf16, qwen-3 template)."""
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel
    from studio import templates
    model, tok = FastLanguageModel.from_pretrained(str(REPO / "assets" / "tiny-qwen3"), max_seq_length=512,
                                                   load_in_4bit=False)
    FastLanguageModel.for_inference(model)
    return model, templates.apply_template(tok, "qwen-3")


def prompt(tok, text):
    return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                   return_tensors="pt", return_dict=True)["input_ids"]


def generate_greedy(model, ids, new=NEW, eos=None):
    """model.generate's greedy tokens; eos None -> exactly `new` tokens, an end-of-turn token is just a token
    (min_new_tokens would instead forbid it, which is another distribution)."""
    import torch
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                             do_sample=False, pad_token_id=0, eos_token_id=eos)
    tokens = out[0, ids.shape[1]:].tolist()
    assert eos or len(tokens) == new
    return tokens


def lora(model, seed=0):
    """A PEFT LoRA adapter on a copy of the model, both matrices random (B = 0 would change nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(seed)
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"], init_lora_weights=False))
    peft_model.eval()
    return peft_model


@pytest.mark.parametrize("text", PROMPTS)
def test_greedy_tokens_equal_model_generate(loaded, text):
    from studio.fastgen import FastDecoder
    model, tok = loaded
    ids = prompt(tok, text)
    decoder = FastDecoder(model, max_cache_len=512)
    assert decoder.path == "eager" and not decoder.fixed_shapes
    assert decoder.generate(ids, NEW) == generate_greedy(model, ids)
    s = decoder.last_stats
    assert s.tokens == NEW and s.stopped == "max_new_tokens" and s.prompt_tokens == ids.shape[1]
    assert s.tokens_per_s > 0 and 0 < s.ttft_s <= s.seconds


def test_end_of_turn_ends_the_answer_as_generate_does(loaded):
    from studio.fastgen import FastDecoder, eos_ids_of
    model, tok = loaded
    eos = eos_ids_of(tok, model)
    assert tok.convert_tokens_to_ids("<|im_end|>") in eos
    ids = prompt(tok, PROMPTS[1])
    want = generate_greedy(model, ids, new=200, eos=eos)
    assert want[-1] in eos and len(want) < 200  # the bundled model ends its turn
    decoder = FastDecoder(model, max_cache_len=512)
    assert decoder.generate(ids, 200, eos_token_ids=eos) == want
    assert decoder.last_stats.stopped == "eos"


def test_graph_path_with_stand_ins_equals_generate(loaded):
    """Everything of the CUDA-graph path but the capture itself: warm-up, the replay check, whole-bucket
    attention with a mask, bucket switches, fused norms and RoPE, replayed streaming; both decode
    attentions. In float32: masked
    attention over extra slots sums in another order than transformers' exact-length attention, which in
    bf16 can flip a near-tie; in float32 it does not at this size."""
    import torch
    from studio.fastgen import FastDecoder
    model, tok = loaded
    model32 = copy.deepcopy(model).float()
    prompts = [prompt(tok, text) for text in PROMPTS]
    want = [generate_greedy(model32, ids, new=80) for ids in prompts]  # 19..102 + 80 tokens: crosses buckets
    for attention in ("sdpa", "matmul"):
        decoder = FastDecoder(model32, max_cache_len=256, buckets=[32, 64, 128], attention=attention,
                              graph_standin=True)
        assert decoder.path == "graph-standin" and decoder.fixed_shapes and decoder.attention == attention
        assert decoder.fused_ops  # F.rms_norm and RoPE as a matmul, as on a GPU
        assert decoder.lean is not None and not decoder.compiled  # fused q/k/v and gate/up, two functions a layer
        assert sorted(decoder.graphs) == decoder.buckets == [32, 64, 128, 256]
        for ids, tokens in zip(prompts, want):
            assert decoder.generate(ids, 80) == tokens, attention
            assert decoder.last_stats.path == "graph-standin"
        check = decoder.compare_with_model(torch.cat([prompts[1][0], torch.tensor(want[1][:40])]))
        assert check["same_argmax"] and check["rel_diff"] < 1e-4, check
    assert decoder.k_cache.dtype == torch.float32


def test_the_lean_step_keeps_the_models_memory_and_its_modules_weights(loaded):
    """Fusing q/k/v and gate/up makes the modules' weights views into the fused matrices: no memory added, and
    the model's own forward (prefill, the load-time check) reads the very same numbers."""
    import torch
    from studio.fastgen import FastDecoder
    model, tok = loaded
    model32 = copy.deepcopy(model).float()
    before = sum(p.numel() for p in model32.parameters())
    layer = model32.model.layers[0]
    q_before = layer.self_attn.q_proj.weight.detach().clone()
    decoder = FastDecoder(model32, max_cache_len=128, buckets=[64], graph_standin=True)
    assert decoder.lean is not None
    fused = decoder.lean[0].qkv
    assert layer.self_attn.q_proj.weight.untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()
    assert torch.equal(layer.self_attn.q_proj.weight, q_before)
    assert sum(p.numel() for p in model32.parameters()) == before
    with pytest.raises(Exception, match="plain 16-bit"):
        FastDecoder(lora(model), max_cache_len=64, lean=True, fused_ops=True)  # LoRA kept apart: module forwards


@pytest.mark.slow
def test_the_compiled_lean_step_equals_generate(loaded):
    """torch.compile of the two per-layer functions (what a GPU runs), here with inductor's CPU backend."""
    from studio.fastgen import FastDecoder
    model, tok = loaded
    model32 = copy.deepcopy(model).float()
    ids = prompt(tok, PROMPTS[0])
    want = generate_greedy(model32, ids, new=24)
    decoder = FastDecoder(model32, max_cache_len=128, buckets=[64], graph_standin=True, compile_layers=True)
    assert decoder.compiled and decoder.generate(ids, 24) == want


def test_lora_unmerged_and_merged_equal_their_generate(loaded):
    from studio.fastgen import FastDecoder
    model, tok = loaded
    ids = prompt(tok, PROMPTS[0])
    base_tokens = generate_greedy(model, ids)
    peft_model = lora(model)
    unmerged = generate_greedy(peft_model, ids)
    assert unmerged != base_tokens  # the adapter is in the forward
    assert FastDecoder(peft_model, max_cache_len=512).generate(ids, NEW) == unmerged
    merged_model = peft_model.merge_and_unload()
    assert not hasattr(merged_model, "peft_config")
    merged = generate_greedy(merged_model, ids)
    assert FastDecoder(merged_model, max_cache_len=512).generate(ids, NEW) == merged
    # merging rounds W + BA to bf16 once: the first tokens agree with the unmerged model
    assert merged[:8] == unmerged[:8]


def test_stop_event_ends_the_stream(loaded):
    from studio.fastgen import FastDecoder
    model, tok = loaded
    decoder = FastDecoder(model, max_cache_len=512)
    stop = threading.Event()
    got = []
    for token in decoder.stream(prompt(tok, PROMPTS[2]), 200, stop_event=stop):
        got.append(token)
        if len(got) == 3:
            stop.set()
    assert len(got) == 3 and decoder.last_stats.stopped == "stop"
    # the decoder is free again, and a closed generator releases it too
    gen = decoder.stream(prompt(tok, PROMPTS[0]), 50)
    next(gen)
    gen.close()
    assert decoder.last_stats.tokens == 1 and not decoder.lock.locked()


def test_seeded_sampling_is_reproducible(loaded):
    from studio.fastgen import FastDecoder
    model, tok = loaded
    decoder = FastDecoder(model, max_cache_len=512)
    ids = prompt(tok, PROMPTS[2])
    a = decoder.generate(ids, 24, temperature=1.5, seed=7)
    b = decoder.generate(ids, 24, temperature=1.5, seed=7)
    assert a == b
    others = [decoder.generate(ids, 24, temperature=1.5, seed=s) for s in (8, 9)]
    assert any(o != a for o in others)
    greedy = decoder.generate(ids, 24)
    assert a != greedy
    # top_p keeps only the most likely tokens: a tiny top_p is greedy whatever the seed
    assert decoder.generate(ids, 24, temperature=1.5, top_p=1e-6, seed=3) == greedy


def test_a_prompt_longer_than_the_cache_is_refused_clearly(loaded):
    from studio.fastgen import FastDecoder, PromptTooLong
    model, tok = loaded
    decoder = FastDecoder(model, max_cache_len=32)
    ids = prompt(tok, PROMPTS[2])
    with pytest.raises(PromptTooLong, match=rf"{ids.shape[1]} tokens .* holds 32"):
        list(decoder.stream(ids, 10))
    short = prompt(tok, PROMPTS[0])  # fits: the answer ends where the cache does
    got = decoder.generate(short, 100)
    assert len(got) == 32 - short.shape[1] and decoder.last_stats.stopped == "cache_full"


def test_unsupported_models_and_missing_graphs_say_why():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from studio.fastgen import FastDecoder, FastPathUnavailable
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, n_positions=64))
    with pytest.raises(FastPathUnavailable, match="model type 'gpt2'"):
        FastDecoder(gpt2)
    if not torch.cuda.is_available():
        from transformers import Qwen3Config, Qwen3ForCausalLM
        qwen = Qwen3ForCausalLM(Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                            vocab_size=64, max_position_embeddings=128))
        with pytest.raises(FastPathUnavailable, match="CUDA graphs"):
            FastDecoder(qwen, max_cache_len=64, require_cuda_graph=True)


def test_chat_streams_the_plain_paths_text_and_reports_speed(runs_dir):
    from studio.chat import EXAMPLES, answer, base_target, load_model
    loaded = load_model(base_target("assets/tiny-qwen3"))
    assert loaded.decoder is not None, loaded.fast_reason
    for text in (EXAMPLES[0], PROMPTS[2]):
        messages = [{"role": "user", "content": text}]
        fast_stats, plain_stats = {}, {}
        fast = list(answer(loaded, messages, max_new_tokens=40, stats=fast_stats))
        decoder, loaded.decoder = loaded.decoder, None
        plain = list(answer(loaded, messages, max_new_tokens=40, stats=plain_stats))
        loaded.decoder = decoder
        assert fast[-1] == plain[-1]
        assert fast_stats["path"] == "eager" and plain_stats["path"] == "generate"
        assert fast_stats["tokens"] == plain_stats["tokens"] > 0
        assert fast_stats["tokens_per_s"] > 0 and 0 < fast_stats["ttft_s"] <= fast_stats["seconds"]
    # a conversation longer than the cache takes the plain path, which has no such limit
    loaded.decoder.max_cache_len, cap = 16, loaded.decoder.max_cache_len
    stats = {}
    list(answer(loaded, [{"role": "user", "content": PROMPTS[2]}], max_new_tokens=8, stats=stats))
    assert stats["path"] == "generate"
    loaded.decoder.max_cache_len = cap


def test_chat_falls_back_when_the_fast_path_fails(runs_dir):
    from studio.chat import answer, base_target, load_model
    loaded = load_model(base_target("assets/tiny-qwen3"))

    def broken(*args, **kwargs):
        yield 1
        raise RuntimeError("simulated device failure")

    loaded.decoder.stream = broken
    stats = {}
    replies = list(answer(loaded, [{"role": "user", "content": "What is 7 + 5?"}], max_new_tokens=16, stats=stats))
    assert replies and stats["path"] == "generate"
    assert loaded.decoder is None and "simulated device failure" in loaded.fast_reason


def test_the_chat_tab_shows_tokens_per_second_of_each_answer(runs_dir):
    from studio.auth import LOCAL
    from studio.chat import SERVICE
    from studio.ui import chat_tab
    steps = list(chat_tab.respond("What is 7 + 5?", [], chat_tab.BASE, 16, 0.0, "qwen-3",
                                  base_name="assets/tiny-qwen3"))
    assert steps[-1][0][-1]["role"] == "assistant" and steps[0][2] == ""
    line = steps[-1][2]
    tokens = SERVICE.last_stats(chat_tab.session_of(LOCAL, None))["tokens"]
    assert line.startswith(f"{tokens} tokens · ") and " tokens/s · first token " in line, line


@pytest.mark.slow
def test_gpu_chat_benchmark_runs_on_cpu_with_the_tiny_shape(tmp_path):
    out = tmp_path / "chat.json"
    env = dict(os.environ, BENCH_TMP=str(tmp_path / "models"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "bench/gpu_chat.py", "--shape", "tiny", "--cases", "studio", "hf16",
                           "studio_lora", "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| case | tokens/s") and len(table) == 2 + 4, proc.stdout
    assert "# environment:" in proc.stdout and "torch" in proc.stdout
    import json
    rows = {r["case"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["studio"]["tokens_per_s"] > 0 and "greedy = generate for 32/32" in rows["studio"]["note"]
    assert "adapter merged" in rows["studio_lora"]["note"]


def test_chat_loads_a_base_in_16_bits_only_when_no_download_is_needed(tmp_path):
    import json
    from studio.chat import _loads_in_16bit
    assert _loads_in_16bit("assets/tiny-qwen3")
    quantized = tmp_path / "q"
    quantized.mkdir()
    (quantized / "config.json").write_text(json.dumps({"model_type": "qwen3", "quantization_config": {}}))
    assert not _loads_in_16bit(str(quantized))
    assert not _loads_in_16bit("unsloth/Qwen3-4B-unsloth-bnb-4bit")
    assert not _loads_in_16bit("nobody/not-in-the-local-cache")


def test_chat_refuses_a_decoder_that_computes_something_else(loaded, caplog):
    """The load-time check: a decoder whose step disagrees with the model's forward is not used."""
    import logging
    from studio.chat import _check_decoder
    from studio.fastgen import FastDecoder, FastPathUnavailable
    model, tok = loaded
    decoder = FastDecoder(model, max_cache_len=512)
    with caplog.at_level(logging.INFO, logger="studio.chat"):
        _check_decoder(decoder, tok)  # the real decoder passes
    assert "rel_diff" in caplog.text
    import torch
    with torch.inference_mode():
        decoder.half_turn.neg_()  # RoPE turned the wrong way (only the fused path reads it)
    decoder.fused_ops = True
    with pytest.raises(FastPathUnavailable, match="differ from the model"):
        _check_decoder(decoder, tok)
