"""GGUF for llama.cpp and Ollama: a merged model, or the LoRA adapter alone, written with the `gguf` package.

What llama.cpp needs is taken from what it maintains, not re-typed per family: tensor names come from the
`gguf` package's own tables (`gguf.get_tensor_name_map`), metadata keys from `gguf.Keys` / the writer's
`add_*` methods, SentencePiece vocabularies from `gguf.vocab`, and the RoPE frequencies from transformers'
own RoPE functions. What is left per family is the short list of steps that llama.cpp's
`convert_hf_to_gguf.py` / `convert_lora_to_gguf.py` take for it (checked against llama.cpp at commit
0024aa7417efd50a7c2a79e049dfbbbceb0beaaf): Llama/Mistral's q/k row order, Gemma's RMSNorm offset,
Llama 3's `rope_freqs`, Phi-3's LongRoPE factors, Gemma 3's sliding-window layout.

A model is written in two passes so that memory stays at one tensor, never the whole model: the first
pass runs the same conversion on meta tensors (shapes only) to write the header, the second converts
and writes one tensor at a time, straight into the file.

No gradio here.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from studio.export import ExportError

GGUF_QUANTS = ("f16", "q8_0")
GGUF_PACKAGE = "gguf==0.19.0"
ROW_CHUNK = 1 << 22  # elements quantized at once: the quantizer's temporaries stay small for a large embedding

MESSAGES = {
    "err_gguf_arch": (
        "GGUF export does not support this architecture: {arch} (model_type '{model_type}'); supported: "
        "{supported}. Export the merged 16-bit model instead and convert it with llama.cpp's convert_hf_to_gguf.py.",
        "GGUF 내보내기는 이 구조를 지원하지 않습니다: {arch} (model_type '{model_type}'). 지원: {supported}. "
        "병합 16비트 모델을 내보낸 뒤 llama.cpp의 convert_hf_to_gguf.py로 변환하세요."),
    "err_gguf_rope": (
        "GGUF export does not support rope scaling '{rope}' for {arch}: llama.cpp would run it with other "
        "positions than it was trained with. Export the merged 16-bit model and convert it with llama.cpp's "
        "convert_hf_to_gguf.py.",
        "GGUF 내보내기는 {arch}의 rope scaling '{rope}'을(를) 지원하지 않습니다: llama.cpp가 훈련 때와 다른 "
        "위치 인코딩으로 실행하게 됩니다. 병합 16비트 모델을 내보낸 뒤 llama.cpp의 convert_hf_to_gguf.py로 변환하세요."),
    "err_gguf_layout": (
        "GGUF export: llama.cpp runs {arch} with {expected}, but this model has {found}; its GGUF would not "
        "compute what the model computes. Use the merged 16-bit model with transformers or vLLM instead.",
        "GGUF 내보내기: llama.cpp는 {arch}을(를) {expected}(으)로 실행하지만 이 모델은 {found}입니다. GGUF가 "
        "모델과 다른 값을 계산하게 됩니다. 대신 병합 16비트 모델을 transformers나 vLLM으로 쓰세요."),
    "err_gguf_quant": (
        "unknown GGUF type '{quant}'; choose one of {choices}",
        "알 수 없는 GGUF 형식 '{quant}'. 다음 중에서 고르세요: {choices}"),
    "err_gguf_kquant": (
        "GGUF type '{quant}': the gguf package this studio pins ({package}) can't write k-quants. Export f16 "
        "and run llama.cpp's `llama-quantize model-f16.gguf model-{quant}.gguf {QUANT}`.",
        "GGUF 형식 '{quant}': 스튜디오가 쓰는 gguf 패키지({package})는 k-quant를 쓸 수 없습니다. f16으로 "
        "내보낸 뒤 llama.cpp의 `llama-quantize model-f16.gguf model-{quant}.gguf {QUANT}`를 실행하세요."),
    "err_gguf_tokenizer": (
        "GGUF export: the tokenizer can't be written for llama.cpp: {detail}. Export the merged 16-bit model and "
        "convert it with llama.cpp's convert_hf_to_gguf.py.",
        "GGUF 내보내기: 토크나이저를 llama.cpp 형식으로 쓸 수 없습니다: {detail}. 병합 16비트 모델을 내보낸 뒤 "
        "llama.cpp의 convert_hf_to_gguf.py로 변환하세요."),
    "err_gguf_base": (
        "the adapter GGUF goes with a GGUF of its base model, made from the base's 16-bit weights, and those "
        "can't be had for {base}: {detail}. Export the merged GGUF instead, or train from a local 16-bit copy of "
        "the base model.",
        "어댑터 GGUF에는 기본 모델의 16비트 가중치로 만든 기본 모델 GGUF가 함께 필요한데, {base}의 16비트 가중치를 "
        "구할 수 없습니다: {detail}. 대신 병합 GGUF를 내보내거나, 기본 모델의 16비트 사본을 로컬 폴더에 두고 "
        "그것으로 훈련하세요."),
    "err_gguf_lora": (
        "the adapter can't be written as a llama.cpp LoRA: {detail}. Export the merged GGUF instead (it "
        "carries the adapter inside the weights).",
        "어댑터를 llama.cpp LoRA로 쓸 수 없습니다: {detail}. 대신 병합 GGUF를 내보내세요 (어댑터가 가중치에 "
        "합쳐져 있습니다)."),
}


def refusal(key: str, **params) -> ExportError:
    """An ExportError the Export tab can say in the person's language (MESSAGES[key])."""
    return ExportError(MESSAGES[key][0].format(**params), key=key, params=params)


def load_gguf():
    try:
        import gguf
    except ImportError:
        raise ExportError(f"GGUF export needs the 'gguf' package (pip install {GGUF_PACKAGE})") from None
    return gguf


def check_quant(quant: str) -> str:
    if quant in GGUF_QUANTS:
        return quant
    if re.fullmatch(r"q[2-6]_k(_[sml])?", (quant or "").lower()):
        raise refusal("err_gguf_kquant", quant=quant.lower(), QUANT=quant.upper(), package=GGUF_PACKAGE)
    raise refusal("err_gguf_quant", quant=quant, choices=", ".join(GGUF_QUANTS))


# ---------------------------------------------------------------- families

@dataclass(frozen=True)
class Family:
    arch: str            # gguf.MODEL_ARCH member
    bpe_pre: str         # llama.cpp's pre-tokenizer name for the family's byte-level BPE vocabulary
    ropes: tuple = ("default",)  # rope types llama.cpp runs as transformers does
    permute_qk: bool = False     # llama.cpp's LLAMA graph rotates adjacent pairs, HF's Llama the two halves
    norm_shift: float = 0.0      # Gemma's RMSNorm computes x * (1 + w): llama.cpp wants 1 + w stored


FAMILIES = {
    "qwen3": Family("QWEN3", "qwen2"),
    "qwen2": Family("QWEN2", "qwen2"),
    "llama": Family("LLAMA", "llama-bpe", ("default", "llama3", "linear"), permute_qk=True),
    "mistral": Family("LLAMA", "tekken", ("default",), permute_qk=True),  # llama.cpp runs Mistral as LLAMA
    "gemma3_text": Family("GEMMA3", "default", ("default", "linear"), norm_shift=1.0),
    "phi3": Family("PHI3", "gpt-4o", ("default", "longrope")),
}
MODEL_TYPES = {"gemma3": "gemma3_text"}  # a multimodal Gemma 3: the studio trains (and exports) its text model


@dataclass
class Plan:
    """What the writer needs to know about one model, checked before any work."""
    family: Family
    config: object  # the text model's transformers config
    arch_name: str

    @property
    def n_head(self) -> int:
        return self.config.num_attention_heads

    @property
    def n_kv(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.n_head

    @property
    def head_dim(self) -> int:
        return getattr(self.config, "head_dim", None) or self.config.hidden_size // self.n_head

    def rope(self, layer_type: str = "full_attention") -> dict:
        params = dict(self.config.rope_parameters or {})
        return dict(params.get(layer_type, params)) if layer_type in params else params


def text_config(config: dict):
    """The language model's transformers config (the text_config of a multimodal checkpoint)."""
    import transformers
    config = {k: v for k, v in config.items() if k != "quantization_config"}  # a 4-bit base: same shapes
    try:
        parsed = transformers.AutoConfig.for_model(**config)
    except Exception as exc:
        raise ExportError(f"GGUF export: this config.json can't be read ({str(exc)[:200]})") from None
    return getattr(parsed, "text_config", None) or parsed


def plan(config: dict) -> Plan:
    """The Plan for a model's config.json, or the refusal that says why llama.cpp can't run it as trained."""
    gguf = load_gguf()
    arch = (config.get("architectures") or ["?"])[0]
    model_type = MODEL_TYPES.get(config.get("model_type"), config.get("model_type", "?"))
    if model_type not in FAMILIES:
        raise refusal("err_gguf_arch", arch=arch, model_type=config.get("model_type", "?"),
                      supported=", ".join(sorted({"gemma3", *FAMILIES} - {"gemma3_text"})))
    family = FAMILIES[model_type]
    p = Plan(family, text_config(config), gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, family.arch)])
    for layer_type in ("full_attention", "sliding_attention") if family.arch == "GEMMA3" else ("full_attention",):
        rope = p.rope(layer_type)
        rope_type = rope.get("rope_type") or rope.get("type") or "default"
        allowed = ("default",) if layer_type == "sliding_attention" else family.ropes
        if rope_type not in allowed:
            raise refusal("err_gguf_rope", rope=rope_type, arch=arch)
    if family.arch == "GEMMA3":
        _check_gemma3(p, arch)
    return p


def _check_gemma3(p: Plan, arch: str) -> None:
    """llama.cpp hard-codes Gemma 3's layout (llama-model.cpp): every 6th layer global, local RoPE base 10000,
    attention scaled by 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the 62-layer 27B)."""
    c = p.config
    n = c.num_hidden_layers
    expected_types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    if c.sliding_window and list(getattr(c, "layer_types", None) or expected_types) != expected_types:
        raise refusal("err_gguf_layout", arch=arch, expected="every 6th layer global (5 sliding, 1 global)",
                      found=f"layers {c.layer_types}")
    local_base = p.rope("sliding_attention").get("rope_theta", 10000.0)
    if c.sliding_window and float(local_base) != 10000.0:
        raise refusal("err_gguf_layout", arch=arch, expected="local RoPE base 10000", found=f"{local_base}")
    scalar = c.hidden_size // p.n_head if n == 62 else p.head_dim
    if getattr(c, "query_pre_attn_scalar", scalar) != scalar:
        raise refusal("err_gguf_layout", arch=arch, expected=f"query_pre_attn_scalar {scalar}",
                      found=f"{c.query_pre_attn_scalar}")
    if getattr(c, "attn_logit_softcapping", None):
        raise refusal("err_gguf_layout", arch=arch, expected="no attention logit soft-capping",
                      found=f"attn_logit_softcapping {c.attn_logit_softcapping}")


def _add_hparams(writer, p: Plan) -> None:
    """The hyperparameters llama.cpp reads for this architecture (convert_hf_to_gguf's set_gguf_parameters)."""
    gguf = load_gguf()
    c, arch = p.config, p.family.arch
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(p.n_head)
    writer.add_head_count_kv(p.n_kv)
    writer.add_key_length(p.head_dim)
    writer.add_value_length(p.head_dim)
    writer.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    writer.add_vocab_size(c.vocab_size)
    rope = p.rope()
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    partial = rope.get("partial_rotary_factor", getattr(c, "partial_rotary_factor", None) or 1.0)
    writer.add_rope_dimension_count(int(p.head_dim * partial))
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif rope_type == "longrope":
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        writer.add_rope_scaling_attn_factors(float(ROPE_INIT_FUNCTIONS["longrope"](c)[1]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    if arch == "PHI3":
        writer.add_sliding_window(c.sliding_window or 0)  # 0: no sliding window (how llama.cpp tells Phi-4)
    if arch == "GEMMA3":
        if c.sliding_window:
            writer.add_sliding_window(c.sliding_window)
        if getattr(c, "final_logit_softcapping", None):
            writer.add_final_logit_softcapping(float(c.final_logit_softcapping))


def _extra_tensors(p: Plan):
    """Tensors llama.cpp computes RoPE from, beside the weights: (gguf name, float32 torch tensor)."""
    import torch
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    rope = p.rope()
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type == "llama3":
        # llama.cpp divides each default frequency base^(-2i/d) by rope_freqs[i]: give it HF's own llama3 ratio.
        dim = p.head_dim
        default = 1.0 / (float(rope["rope_theta"]) ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        yield "rope_freqs.weight", default / ROPE_INIT_FUNCTIONS["llama3"](p.config)[0]
    elif rope_type == "longrope":
        yield "rope_factors_long.weight", torch.tensor(rope["long_factor"], dtype=torch.float32)
        yield "rope_factors_short.weight", torch.tensor(rope["short_factor"], dtype=torch.float32)


# ---------------------------------------------------------------- tensors

_SKIPPED = re.compile(r"(^|\.)(vision_tower|vision_model|multi_modal_projector|multimodal_projector)\.")


def text_name(hf_name: str) -> str | None:
    """A checkpoint tensor name as the text model's (model.layers.N..., lm_head); None for vision tensors."""
    if _SKIPPED.search(hf_name) or hf_name.endswith("rotary_emb.inv_freq"):
        return None
    for prefix, replace in (("model.language_model.", "model."), ("language_model.model.", "model."),
                            ("language_model.lm_head.", "lm_head."), ("language_model.", "")):
        if hf_name.startswith(prefix):
            return replace + hf_name[len(prefix):]
    return hf_name


def _permute(weights, n_head: int):
    """HF's rotate-half q/k rows -> llama.cpp's interleaved pairs (convert_hf_to_gguf LlamaModel.permute)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def convert_tensor(p: Plan, name_map, hf_name: str, tensor):
    """(gguf name, tensor as llama.cpp wants it), or None for a tensor the text model doesn't use.
    Works on meta tensors too (the first pass)."""
    name = text_name(hf_name)
    if name is None:
        return None
    gguf_name = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
    if gguf_name is None:
        raise ExportError(f"GGUF export: no llama.cpp name for tensor '{hf_name}' ({p.arch_name})")
    if p.family.permute_qk and name.endswith("q_proj.weight"):
        tensor = _permute(tensor, p.n_head)
    elif p.family.permute_qk and name.endswith("k_proj.weight"):
        tensor = _permute(tensor, p.n_kv)
    if p.family.norm_shift and name.endswith("norm.weight"):
        tensor = tensor.float() + p.family.norm_shift
    return gguf_name, tensor


def _out_type(gguf, tensor, quant: str):
    """Norms and RoPE factors stay f32 (as llama.cpp writes them); rows that don't split into Q8_0 blocks
    stay f16."""
    q8 = gguf.GGMLQuantizationType.Q8_0
    if tensor.ndim == 1:
        return gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and tensor.shape[-1] % gguf.GGML_QUANT_SIZES[q8][0] == 0:
        return q8
    return gguf.GGMLQuantizationType.F16


def _nbytes(gguf, shape, qtype) -> int:
    size = math.prod(gguf.quants.quant_shape_to_byte_shape(tuple(shape), qtype)) if qtype == \
        gguf.GGMLQuantizationType.Q8_0 else math.prod(shape) * (4 if qtype == gguf.GGMLQuantizationType.F32 else 2)
    return int(size)


def _encode(gguf, tensor, qtype):
    """One torch tensor as the numpy array GGUF stores; Q8_0 quantized a slice of rows at a time."""
    import numpy as np
    import torch
    if qtype == gguf.GGMLQuantizationType.F32:
        return tensor.to(torch.float32).numpy()
    if qtype == gguf.GGMLQuantizationType.F16:
        return tensor.to(torch.float16).numpy()
    rows = tensor.reshape(-1, tensor.shape[-1])
    out = np.empty(gguf.quants.quant_shape_to_byte_shape(tuple(rows.shape), qtype), dtype=np.uint8)
    step = max(1, ROW_CHUNK // rows.shape[1])
    for start in range(0, rows.shape[0], step):
        out[start:start + step] = gguf.quants.quantize(rows[start:start + step].to(torch.float32).numpy(), qtype)
    return out.reshape(gguf.quants.quant_shape_to_byte_shape(tuple(tensor.shape), qtype))


def _model_tensors(p: Plan, model_dir: Path, meta: bool):
    """(gguf name, torch tensor) for every tensor the GGUF holds, read one at a time from the safetensors;
    meta=True gives meta tensors (shapes, no data)."""
    import torch
    from safetensors import safe_open
    gguf = load_gguf()
    name_map = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, p.family.arch), p.config.num_hidden_layers)
    shards = sorted(Path(model_dir).glob("*.safetensors"))
    if not shards:
        raise ExportError(f"{model_dir}: no .safetensors weights to convert")
    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            keys = list(f.keys())
        for key in keys:
            # The shard is opened again for each tensor: its memory map (counted in RSS as it is read) goes with it.
            with safe_open(str(shard), framework="pt") as f:
                if meta:
                    part = f.get_slice(key)
                    if part.get_dtype() not in dtypes:
                        raise ExportError(f"GGUF export: tensor '{key}' is {part.get_dtype()}; a 16- or 32-bit "
                                          "model is needed (a 4-bit checkpoint must be merged first)")
                    tensor = torch.empty(part.get_shape(), dtype=dtypes[part.get_dtype()], device="meta")
                else:
                    tensor = f.get_tensor(key)
            converted = convert_tensor(p, name_map, key, tensor)
            if converted is not None:
                yield converted
    for name, tensor in _extra_tensors(p):
        yield name, (tensor.to("meta") if meta else tensor)


def write_model(model_dir: Path, out: Path, quant: str, name: str = "", tokenizer_dirs=()) -> None:
    """One HF model folder (16 or 32-bit safetensors) to one GGUF file. `tokenizer_dirs`: where else to look for
    a SentencePiece tokenizer.model (transformers 5 saves only tokenizer.json)."""
    gguf = load_gguf()
    model_dir = Path(model_dir)
    check_quant(quant)
    p = plan(json.loads((model_dir / "config.json").read_text()))
    writer = gguf.GGUFWriter(str(out), p.arch_name)
    writer.add_type(gguf.GGUFType.MODEL)
    _add_hparams(writer, p)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens = add_tokenizer(writer, p, model_dir, tokenizer_dirs)
    writer.add_name(safe_name(name or model_dir.name, tokens))

    planned = []
    for gguf_name, tensor in _model_tensors(p, model_dir, meta=True):
        qtype = _out_type(gguf, tensor, quant)
        writer.add_tensor_info(gguf_name, tuple(tensor.shape), _numpy_dtype(gguf, qtype),
                               _nbytes(gguf, tensor.shape, qtype), raw_dtype=qtype)
        planned.append((gguf_name, qtype))
    if "token_embd.weight" not in dict(planned):
        raise ExportError("GGUF export: the model has no token embedding tensor")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for (gguf_name, tensor), (planned_name, qtype) in zip(_model_tensors(p, model_dir, meta=False), planned,
                                                          strict=True):
        assert gguf_name == planned_name, (gguf_name, planned_name)
        writer.write_tensor_data(_encode(gguf, tensor, qtype))
        del tensor
    writer.close()


def _numpy_dtype(gguf, qtype):
    import numpy as np
    return {gguf.GGMLQuantizationType.F32: np.float32, gguf.GGMLQuantizationType.F16: np.float16}.get(
        qtype, np.float32)  # with raw_dtype set, the shape is taken as the logical one


# ---------------------------------------------------------------- tokenizer

PHI3_NAME = re.compile(r"phi-?3", re.IGNORECASE)


def safe_name(name: str, tokens) -> str:
    """general.name, which llama.cpp also reads: a name with 'phi3' / 'phi-3' in it makes it mark Phi-3's
    SentencePiece tokens (</s>, <unk>, <s>), and a vocabulary without them (Phi-4-mini's) then fails to load."""
    have = {t.decode() if isinstance(t, bytes) else t for t in tokens}
    if {"</s>", "<unk>", "<s>", "<|endoftext|>"} <= have:
        return name
    return PHI3_NAME.sub(lambda m: m.group(0).replace("-", "").replace("3", " 3"), name)


def add_tokenizer(writer, p: Plan, model_dir: Path, tokenizer_dirs=()) -> list:
    """The vocabulary as llama.cpp reads it: a SentencePiece model (Gemma, Mistral 7B) as 'llama' with its
    scores, a byte-level BPE (Qwen, Llama 3, Phi-4, Mistral Tekken) as 'gpt2' with its merges."""
    gguf = load_gguf()
    vocab_size = p.config.vocab_size
    tok_json = Path(model_dir) / "tokenizer.json"
    model = json.loads(tok_json.read_text()).get("model", {}) if tok_json.is_file() else {}
    spm = next((d for d in (model_dir, *tokenizer_dirs) if d and (Path(d) / "tokenizer.model").is_file()), None)
    if model.get("type") == "BPE" and not model.get("byte_fallback"):
        return _add_bpe_vocab(writer, gguf, Path(model_dir), vocab_size, p.family.bpe_pre)
    if spm is not None:
        return _add_spm_vocab(writer, gguf, Path(spm), Path(model_dir), vocab_size, gemma=p.family.arch == "GEMMA3")
    if model:
        raise refusal("err_gguf_tokenizer", detail="a SentencePiece tokenizer needs its tokenizer.model, which "
                                                   "neither this model folder nor its base model has")
    else:
        raise refusal("err_gguf_tokenizer", detail="no tokenizer.json or tokenizer.model")


def _add_bpe_vocab(writer, gguf, model_dir: Path, vocab_size: int, pre: str) -> list[str]:
    """A byte-level BPE vocabulary as convert_hf_to_gguf's `_set_vocab_gpt2` writes it."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(reverse[i])
            types.append((gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
                         if i in added else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise refusal("err_gguf_tokenizer", detail="the BPE tokenizer has no merges")
    special.add_to_gguf(writer)
    return tokens


def _add_spm_vocab(writer, gguf, spm_dir: Path, model_dir: Path, vocab_size: int, gemma: bool) -> list[bytes]:
    """A SentencePiece vocabulary as convert_hf_to_gguf's `_set_vocab_sentencepiece` writes it (gguf.vocab)."""
    from gguf.vocab import SentencePieceVocab
    vocab = SentencePieceVocab(spm_dir)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    if len(tokens) > vocab_size:
        raise refusal("err_gguf_tokenizer", detail=f"tokenizer.model has {len(tokens)} tokens, the model "
                                                   f"{vocab_size}")
    for i in range(len(tokens), vocab_size):  # embedding rows past the vocabulary (padding)
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    if gemma:
        writer.add_add_space_prefix(False)  # as convert_hf_to_gguf's Gemma3Model.set_vocab
    gguf.SpecialVocab(model_dir, n_vocab=len(tokens)).add_to_gguf(writer)
    return tokens


# ---------------------------------------------------------------- the adapter alone (llama.cpp LoRA)

LORA_TENSOR = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>A|B)\.weight$")


def write_lora(adapter_dir: Path, base_config: dict, out: Path, name: str = "") -> int:
    """A PEFT LoRA adapter as a llama.cpp LoRA GGUF (convert_lora_to_gguf's format): blk.N.<tensor>.weight.lora_a
    (r x in) and .lora_b (out x r) in f16, adapter.lora.alpha; llama.cpp scales by alpha / r, as PEFT does.
    Returns the number of adapted weights."""
    gguf = load_gguf()
    import torch
    from safetensors.torch import load_file
    adapter_dir = Path(adapter_dir)
    p = plan(base_config)
    lora = json.loads((adapter_dir / "adapter_config.json").read_text())
    for key, what in (("use_dora", "DoRA"), ("modules_to_save", "modules_to_save (fully trained layers)"),
                      ("rank_pattern", "per-module ranks"), ("alpha_pattern", "per-module alphas")):
        if lora.get(key):
            raise refusal("err_gguf_lora", detail=f"{what} is not a plain LoRA")
    if lora.get("bias", "none") != "none":
        raise refusal("err_gguf_lora", detail=f"LoRA bias '{lora['bias']}' trains biases llama.cpp adapters can't carry")
    alpha = float(lora["lora_alpha"]) * (math.sqrt(lora["r"]) if lora.get("use_rslora") else 1.0)  # alpha/sqrt(r)

    name_map = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, p.family.arch), p.config.num_hidden_layers)
    pairs: dict[str, dict] = {}
    for key, tensor in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        match = LORA_TENSOR.match(key)
        if not match:
            raise refusal("err_gguf_lora", detail=f"'{key}' is not a LoRA A/B weight")
        pairs.setdefault(match["module"], {})[match["ab"]] = tensor
    writer = gguf.GGUFWriter(str(out), p.arch_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name or adapter_dir.name)
    count = 0
    for module, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise refusal("err_gguf_lora", detail=f"'{module}' has lora_{''.join(ab)} only")
        if text_name(module + ".weight") is None:
            continue  # a LoRA on the vision tower: the text GGUF has no such layer
        if module.rsplit(".", 1)[-1] in ("embed_tokens", "lm_head"):
            raise refusal("err_gguf_lora", detail=f"LoRA on '{module}' (embeddings) is not applied by every "
                                                  "llama.cpp build")
        gguf_name, lora_b = convert_tensor(p, name_map, module + ".weight", ab["B"])  # B's rows are W's rows
        writer.add_tensor(gguf_name + ".lora_a", ab["A"].to(torch.float16).numpy())
        writer.add_tensor(gguf_name + ".lora_b", lora_b.to(torch.float16).numpy())
        count += 1
    if not count:
        raise refusal("err_gguf_lora", detail="it has no LoRA weights on the language model")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count
