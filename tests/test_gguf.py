"""GGUF for every preset's architecture (issue 21): a tiny random model of each family is built on the fly,
written by studio/gguf_export.py, and read back by readers that are not ours.

- transformers' GGUF loader (from_pretrained(gguf_file=...)) rebuilds the model from the file: its logits must
  match the HF model's within the format's tolerance. It takes the architecture from our config (transformers
  does not read llama.cpp's RoPE tensors), so the RoPE data llama.cpp computes with is checked against the
  HF model's own frequencies, by llama.cpp's formulas, from what the `gguf` reader finds in the file.
- llama.cpp itself (llama-cpp-python), where it is installed: the same logits from the real runtime, and the
  LoRA adapter applied by llama.cpp to the base GGUF.
- The adapter GGUF: the `gguf` reader's lora_a / lora_b, mapped back by transformers' own GGUF name map, added to
  the base GGUF's weights as llama.cpp adds them (alpha / r): logits equal base + adapter in PEFT.
"""
import io
import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from studio import export, gguf_export

# Measured on this machine (CPU), relative to max |logit|; the limits leave a margin of about 3x or more.
F16_REL_TOL = 1e-5    # f16 of a bf16 model is exact: measured 2.7e-7 to 4.8e-7
Q8_REL_TOL = 0.12     # q8_0 on random weights (errors grow through untrained layers): measured 0.016 to 0.048
LORA_REL_TOL = 2e-3   # f16 LoRA A/B (PEFT computes in fp32): measured 2.1e-4 to 2.7e-4
LLAMA_CPP_F16_REL_TOL = 5e-3  # llama.cpp rounds activations to f16 for f16 matmuls: measured 7e-4 to 1.7e-3

BPE = REPO / "assets" / "tiny-qwen3"
FAMILIES = ["qwen3", "qwen2", "llama3", "mistral", "gemma3", "gemma3-vision", "phi3"]
SHAPE = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, rms_norm_eps=1e-6)


def spm_tokenizer(folder: Path) -> int:
    """A SentencePiece BPE tokenizer (as Gemma's and Mistral 7B's) trained on the sample data: tokenizer.model,
    and the tokenizer.json transformers makes of it. Returns its vocabulary size."""
    import sentencepiece as spm
    from transformers import AutoTokenizer
    rows = (REPO / "assets" / "sample_data" / "sample_chat.jsonl").read_text(encoding="utf-8").splitlines()[:400]
    texts = [turn["value"] for row in rows for turn in json.loads(row)["conversations"]]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=800,
                                   model_type="bpe", byte_fallback=True, character_coverage=0.995,
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
                                   add_dummy_prefix=False, normalization_rule_name="identity",  # as Gemma's
                                   remove_extra_whitespaces=False,
                                   pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer",
                                                              "bos_token": "<s>", "eos_token": "</s>"}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return 800


def tiny_model(family: str, folder: Path, seed: int = 0) -> Path:
    """A random model of `family` saved in bf16 (as a merge saves it) with a tokenizer that fits it."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    if family.startswith("gemma3"):
        vocab = spm_tokenizer(folder)
        text = dict(SHAPE, num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16, vocab_size=vocab + 6,
                    sliding_window=8, rope_scaling={"rope_type": "linear", "factor": 8.0},
                    pad_token_id=0, eos_token_id=1, bos_token_id=2)
        if family == "gemma3":
            model = tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**text))
        else:  # the multimodal checkpoint the Gemma 3 presets are: the GGUF holds its language model
            vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=28, patch_size=14)
            model = tf.Gemma3ForConditionalGeneration(tf.Gemma3Config(
                text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=vocab + 3,
                boi_token_index=vocab + 4, eoi_token_index=vocab + 5))
    else:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(BPE / name, folder / name)
        common = dict(SHAPE, num_hidden_layers=2, vocab_size=2292, tie_word_embeddings=False,
                      bos_token_id=2266, eos_token_id=2266, pad_token_id=2266)
        config = {
            "qwen3": lambda: tf.Qwen3Config(**dict(common, tie_word_embeddings=True), head_dim=16),
            "qwen2": lambda: tf.Qwen2Config(**common),
            "llama3": lambda: tf.LlamaConfig(**common, rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64}),
            "mistral": lambda: tf.MistralConfig(**common, sliding_window=None),
            # Phi-4-mini's layout: fused qkv / gate_up, partial rotary, LongRoPE, tied embeddings. llama.cpp takes
            # the short factors while its context (padded to 256) is within the original one, HF while the sequence
            # is: 256 keeps both on the short ones.
            "phi3": lambda: tf.Phi3Config(**dict(common, tie_word_embeddings=True, max_position_embeddings=1024),
                                          partial_rotary_factor=0.5, original_max_position_embeddings=256,
                                          rope_scaling={
                                              "type": "longrope", "long_factor": [1.0, 2.0, 4.0, 8.0],
                                              "short_factor": [1.0, 1.1, 1.5, 2.0]}),
        }[family]()
        model = tf.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # a wider spread than the init's std 0.02, so the logits differ token to token
        for param in model.parameters():
            if param.ndim == 2:
                param.normal_(0, 0.1)
    model.to(torch.bfloat16).save_pretrained(folder)
    return folder


def token_ids(n: int = 24, vocab: int = 700, seed: int = 1):
    import torch
    return torch.randint(4, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def hf_logits(folder: Path, ids):
    import torch
    from transformers import AutoModelForCausalLM
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)(ids).logits[0]


def gguf_logits(folder: Path, gguf_name: str, ids):
    """transformers' GGUF loader: the tensors read back from the file into the text model."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig
    config = AutoConfig.from_pretrained(folder)
    config = getattr(config, "text_config", None) or config
    if config.model_type == "mistral":  # transformers 5.17 maps GGUF names for Mistral only through Llama (as
        config = LlamaConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})  # llama.cpp)
    with torch.no_grad():
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_name, config=config,
                                                     dtype=torch.float32)
        return model(ids).logits[0]


def rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def fields(path: Path) -> tuple[dict, dict]:
    import gguf
    reader = gguf.GGUFReader(str(path))
    values = {k: f.contents() for k, f in reader.fields.items()}
    tensors = {t.name: t for t in reader.tensors}
    return values, tensors


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Each family's tiny model, its f16 and q8_0 GGUF, and the HF logits for one batch of token ids."""
    out = {}
    for family in FAMILIES:
        folder = tiny_model(family, tmp_path_factory.mktemp(family))
        for quant in gguf_export.GGUF_QUANTS:
            gguf_export.write_model(folder, folder / f"{quant}.gguf", quant, name=f"tiny {family}")
        out[family] = folder
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_reads_back_in_transformers_with_the_same_logits(models, family):
    folder = models[family]
    ids = token_ids()
    reference = hf_logits(folder, ids)
    f16, q8 = (rel(gguf_logits(folder, f"{q}.gguf", ids), reference) for q in gguf_export.GGUF_QUANTS)
    print(f"GGUF {family}: transformers' reader vs HF, relative max |diff|: f16 {f16:.2g}, q8_0 {q8:.2g}")
    assert f16 < F16_REL_TOL
    assert 0 < q8 < Q8_REL_TOL  # quantized: close, not identical
    values, tensors = fields(folder / "q8_0.gguf")
    assert values["general.architecture"] == gguf_export.plan(json.loads((folder / "config.json").read_text())
                                                              ).arch_name
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"  # norms stay f32, as llama.cpp's
    assert tensors["blk.0.ffn_down.weight"].tensor_type.name == "Q8_0"
    assert not [n for n in tensors if n.startswith(("v.", "mm."))]  # no vision tensors in the text GGUF
    # At the weights, the format's own bound (gguf's dequantize): every Q8_0 value within half a step of f16's,
    # plus what storing the step itself in f16 costs (up to 127 steps x 2^-11).
    import gguf
    import numpy as np
    exact = np.asarray(fields(folder / "f16.gguf")[1]["blk.0.ffn_down.weight"].data, np.float32).reshape(-1, 32)
    q8_0 = gguf.dequantize(tensors["blk.0.ffn_down.weight"].data, gguf.GGMLQuantizationType.Q8_0).reshape(-1, 32)
    step = np.abs(exact).max(axis=1, keepdims=True) / 127
    assert (np.abs(q8_0 - exact) <= step * (0.5 + 127 * 2.0 ** -11)).all()


def test_llama3_rope_freqs_give_hfs_frequencies_by_llama_cpps_formula(models):
    """llama.cpp's LLAMA graph: theta_i = pos * base^(-2i/d) / rope_freqs[i]."""
    import torch
    from transformers import AutoModelForCausalLM
    values, tensors = fields(models["llama3"] / "f16.gguf")
    base, dim = values["llama.rope.freq_base"], values["llama.rope.dimension_count"]
    freqs = torch.tensor(tensors["rope_freqs.weight"].data.copy())
    llama_cpp = base ** (-torch.arange(0, dim, 2).double() / dim) / freqs.double()
    hf = AutoModelForCausalLM.from_pretrained(models["llama3"]).model.rotary_emb.inv_freq.double()
    assert (llama_cpp / hf - 1).abs().max() < 1e-6
    assert freqs.min() == 1 and freqs.max() == 8  # high frequencies kept, low ones divided by the factor 8
    assert 1 < freqs[2] < 8  # and the smoothed band between


def test_phi3_longrope_factors_and_attention_factor_are_hfs(models):
    import torch
    from transformers import AutoModelForCausalLM
    config = json.loads((models["phi3"] / "config.json").read_text())
    rope = config.get("rope_parameters") or config["rope_scaling"]
    values, tensors = fields(models["phi3"] / "f16.gguf")
    rotary = AutoModelForCausalLM.from_pretrained(models["phi3"]).model.rotary_emb
    assert values["phi3.rope.dimension_count"] == 2 * len(rotary.inv_freq) == 8  # partial rotary: 8 of 16
    assert list(tensors["rope_factors_long.weight"].data) == rope["long_factor"]
    assert list(tensors["rope_factors_short.weight"].data) == rope["short_factor"]
    assert values["phi3.rope.scaling.attn_factor"] == pytest.approx(rotary.attention_scaling, rel=1e-6)
    assert values["phi3.rope.scaling.original_context_length"] == 256
    assert "blk.0.attn_qkv.weight" in tensors and "blk.0.ffn_up.weight" in tensors  # fused, as llama.cpp's PHI3
    assert "output.weight" not in tensors and torch.is_tensor(rotary.inv_freq)  # tied, as Phi-4-mini


def test_gemma3_layout_and_vocabulary_are_llama_cpps(models):
    """Gemma's norms are stored as 1 + w, the sliding window and the global layers' RoPE scaling are in the
    metadata, and the vocabulary is the SentencePiece model's own pieces, scores and types."""
    import sentencepiece as spm
    import torch
    from safetensors.torch import load_file
    folder = models["gemma3-vision"]
    values, tensors = fields(folder / "f16.gguf")
    assert values["gemma3.attention.sliding_window"] == 8
    assert values["gemma3.rope.scaling.type"] == "linear" and values["gemma3.rope.scaling.factor"] == 8.0
    assert values["gemma3.rope.freq_base"] == 1e6
    weights = load_file(folder / "model.safetensors")
    norm = next(v for k, v in weights.items() if k.endswith("layers.0.input_layernorm.weight"))
    assert torch.equal(torch.tensor(tensors["blk.0.attn_norm.weight"].data.copy()), norm.float() + 1)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    assert values["tokenizer.ggml.model"] == "llama" and values["tokenizer.ggml.add_space_prefix"] is False
    n = sp.vocab_size()
    assert values["tokenizer.ggml.tokens"][:n] == [sp.id_to_piece(i) for i in range(n)]
    assert values["tokenizer.ggml.scores"][:n] == pytest.approx([sp.get_score(i) for i in range(n)])
    assert values["tokenizer.ggml.token_type"][sp.piece_to_id("<0x0A>")] == 6  # BYTE, as llama.cpp reads it
    assert len(values["tokenizer.ggml.tokens"]) == json.loads((folder / "config.json").read_text())[
        "text_config"]["vocab_size"]  # padded to the embedding's rows


def test_bpe_vocabulary_reads_back_into_the_same_tokenizer(models):
    from transformers import AutoTokenizer
    text = "What is 7 + 5? The Eiffel Tower. 7 더하기 5는?"
    ours = AutoTokenizer.from_pretrained(models["llama3"])
    theirs = AutoTokenizer.from_pretrained(models["llama3"], gguf_file="q8_0.gguf")
    assert theirs(text, add_special_tokens=False)["input_ids"] == ours(text, add_special_tokens=False)["input_ids"]
    values, _ = fields(models["llama3"] / "q8_0.gguf")
    assert values["tokenizer.ggml.model"] == "gpt2" and values["tokenizer.ggml.pre"] == "llama-bpe"


# ---------------------------------------------------------------- refusals, before any work

@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(model_type="gpt2", architectures=["GPT2LMHeadModel"]),
     r"does not support this architecture: GPT2LMHeadModel .*supported: gemma3, llama, mistral, phi3, qwen2, qwen3"),
    (lambda c: c.update(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
                        rope_parameters=None),
     r"does not support rope scaling 'yarn' for Qwen3ForCausalLM"),
    (lambda c: c.update(rope_scaling={"rope_type": "dynamic", "factor": 2.0}, rope_parameters=None),
     r"does not support rope scaling 'dynamic'"),
])
def test_a_model_llama_cpp_would_run_otherwise_is_refused_in_both_languages(change, message):
    from studio.ui.i18n import STRINGS
    config = json.loads((BPE / "config.json").read_text())
    change(config)
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(export.ExportError, match=message) as info:
        gguf_export.plan(config)
    korean = STRINGS[info.value.key][1].format(**info.value.params)
    assert "GGUF" in korean and "convert_hf_to_gguf.py" in korean and korean != str(info.value)


def test_gemma3_that_llama_cpp_would_run_with_another_layout_is_refused(models):
    config = json.loads((models["gemma3"] / "config.json").read_text())
    config["query_pre_attn_scalar"] = 256
    with pytest.raises(export.ExportError, match=r"query_pre_attn_scalar 16, but this model has 256"):
        gguf_export.plan(config)
    config = json.loads((models["gemma3"] / "config.json").read_text())
    config["layer_types"] = ["sliding_attention"] * 5 + ["full_attention"]
    config["layer_types"][0] = "full_attention"
    with pytest.raises(export.ExportError, match="every 6th layer global"):
        gguf_export.plan(config)


@pytest.mark.parametrize("quant, message", [
    ("q4_k_m", r"can't write k-quants. Export f16 and run llama.cpp's `llama-quantize model-f16.gguf "
               r"model-q4_k_m.gguf Q4_K_M`"),
    ("q5_0", r"unknown GGUF type 'q5_0'; choose one of f16, q8_0"),
])
def test_a_gguf_type_the_writer_cannot_make_is_refused(quant, message):
    with pytest.raises(export.ExportError, match=message):
        gguf_export.check_quant(quant)


# ---------------------------------------------------------------- the adapter alone, as a llama.cpp LoRA

LORA_FAMILIES = ["qwen3", "llama3", "gemma3-vision", "phi3"]  # plain, q/k rows permuted, multimodal, fused


@pytest.fixture(scope="module")
def adapters(models, tmp_path_factory):
    """A random LoRA (A and B both non-zero) on each family's tiny model, its GGUF, the base's f16 GGUF, and
    the PEFT logits of base + adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    out = {}
    for family in LORA_FAMILIES:
        folder = tmp_path_factory.mktemp(f"lora-{family}")
        targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"] if family == "phi3" else \
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        torch.manual_seed(3)
        base = AutoModelForCausalLM.from_pretrained(models[family], dtype=torch.float32)
        peft = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False))
        with torch.no_grad():
            for name, param in peft.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.05)
        peft.save_pretrained(folder / "adapter")
        count = gguf_export.write_lora(folder / "adapter", json.loads((models[family] / "config.json").read_text()),
                                       folder / "lora.gguf", name=f"tiny {family} LoRA")
        with torch.no_grad():
            logits = peft(token_ids()).logits[0]
        out[family] = dict(folder=folder, count=count, logits=logits, base=models[family])
    return out


def apply_lora_from_gguf(base_folder: Path, base_gguf: Path, lora_path: Path):
    """The base model read from its f16 GGUF by transformers, plus the LoRA read by the `gguf` reader, added as
    llama.cpp adds it (W + alpha / r * B A), with transformers' own GGUF -> HF name map and q/k row order."""
    import gguf
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map
    config = AutoConfig.from_pretrained(base_folder)
    config = getattr(config, "text_config", None) or config
    model = AutoModelForCausalLM.from_pretrained(str(base_gguf.parent), gguf_file=base_gguf.name, config=config,
                                                 dtype=torch.float32)
    reader = gguf.GGUFReader(str(lora_path))
    values = {k: f.contents() for k, f in reader.fields.items()}
    assert values["general.type"] == "adapter" and values["adapter.type"] == "lora"
    arch = values["general.architecture"]
    processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=model.config.to_dict())
    hf_names = get_gguf_hf_weights_map(model, processor)
    params = dict(model.named_parameters())
    tensors = {t.name: gguf.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    with torch.no_grad():
        for name, a in tensors.items():
            if not name.endswith(".lora_a"):
                continue
            target = name[:-len(".lora_a")]
            b = processor.process(weights=tensors[target + ".lora_b"], name=target).weights  # back to HF's rows
            scale = values["adapter.lora.alpha"] / a.shape[0]
            params[hf_names[target]] += scale * torch.from_numpy(b.copy()) @ torch.from_numpy(a.copy())
    return model


@pytest.mark.parametrize("family", LORA_FAMILIES)
def test_adapter_gguf_applied_to_the_base_gguf_gives_base_plus_adapter(adapters, family):
    import torch
    case = adapters[family]
    values, tensors = fields(case["folder"] / "lora.gguf")
    layers = 6 if family.startswith("gemma3") else 2
    assert case["count"] == layers * (4 if family == "phi3" else 7)  # the vision tower's LoRA is left out
    assert all(t.tensor_type.name == "F16" for t in tensors.values())
    assert values["adapter.lora.alpha"] == 16.0
    with torch.no_grad():
        got = apply_lora_from_gguf(case["base"], case["base"] / "f16.gguf", case["folder"] / "lora.gguf")(token_ids()).logits[0]
    error, moved = rel(got, case["logits"]), rel(hf_logits(case["base"], token_ids()), case["logits"])
    print(f"LoRA GGUF {family}: gguf reader + transformers' map vs PEFT, relative max |diff| {error:.2g} "
          f"(the adapter itself moves the logits by {moved:.2g})")
    assert error < LORA_REL_TOL and moved > 50 * LORA_REL_TOL


def test_an_adapter_llama_cpp_cannot_apply_is_refused(adapters, tmp_path):
    from studio.ui.i18n import STRINGS
    adapter = tmp_path / "adapter"
    shutil.copytree(adapters["qwen3"]["folder"] / "adapter", adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(dict(config, use_dora=True)))
    base_config = json.loads((adapters["qwen3"]["base"] / "config.json").read_text())
    with pytest.raises(export.ExportError, match="DoRA is not a plain LoRA. Export the merged GGUF instead") as info:
        gguf_export.write_lora(adapter, base_config, tmp_path / "x.gguf")
    assert "병합 GGUF" in STRINGS[info.value.key][1].format(**info.value.params)
    assert not (tmp_path / "x.gguf").exists()


# ---------------------------------------------------------------- llama.cpp itself, where it is installed

LLAMA_CPP_Q8_REL_TOL = 0.12  # as Q8_REL_TOL: measured 0.022 to 0.049


def llama_cpp_logits(path: Path, ids, lora: Path | None = None):
    import numpy as np
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(str(path), n_ctx=64, n_batch=64, logits_all=True, verbose=False, n_threads=2,
                          lora_path=str(lora) if lora else None)
    llm.eval(ids[0].tolist())
    import torch
    return torch.from_numpy(np.array(llm.scores[:ids.shape[1]]))


@pytest.mark.parametrize("family", FAMILIES)
def test_llama_cpp_runs_every_family_with_the_same_logits(models, family):
    folder = models[family]
    ids = token_ids()
    reference = hf_logits(folder, ids)
    f16 = rel(llama_cpp_logits(folder / "f16.gguf", ids), reference)
    q8 = rel(llama_cpp_logits(folder / "q8_0.gguf", ids), reference)
    print(f"llama.cpp {family}: vs HF, relative max |diff|: f16 {f16:.2g}, q8_0 {q8:.2g}")
    assert f16 < LLAMA_CPP_F16_REL_TOL and q8 < LLAMA_CPP_Q8_REL_TOL


@pytest.mark.parametrize("family", LORA_FAMILIES)
def test_llama_cpp_applies_the_adapter_gguf_to_the_base_gguf(adapters, family):
    case = adapters[family]
    got = llama_cpp_logits(case["base"] / "f16.gguf", token_ids(), lora=case["folder"] / "lora.gguf")
    error = rel(got, case["logits"])
    print(f"llama.cpp LoRA {family}: base f16 GGUF + adapter GGUF vs PEFT, relative max |diff| {error:.2g}")
    assert error < LLAMA_CPP_F16_REL_TOL


def test_llama_cpp_tokenizes_as_the_tokenizer_does(models):
    """The vocabulary as llama.cpp reads it: SentencePiece (Gemma) and byte-level BPE (Llama 3)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer
    llama_cpp = pytest.importorskip("llama_cpp")
    text = "What is 7 + 5?\nThe Eiffel Tower, 7 더하기 5는? 안녕하세요."
    sp = spm.SentencePieceProcessor(model_file=str(models["gemma3"] / "tokenizer.model"))
    gemma = llama_cpp.Llama(str(models["gemma3"] / "f16.gguf"), vocab_only=True, verbose=False)
    assert gemma.tokenize(text.encode(), add_bos=False) == sp.encode(text)
    bpe = llama_cpp.Llama(str(models["llama3"] / "f16.gguf"), vocab_only=True, verbose=False)
    ours = AutoTokenizer.from_pretrained(models["llama3"])
    assert bpe.tokenize(text.encode(), add_bos=False) == ours(text, add_special_tokens=False)["input_ids"]
