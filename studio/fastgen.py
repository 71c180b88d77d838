"""Fast single-stream decoding for chat: a static KV cache and a one-token decode step replayed as a CUDA graph.

Why: `model.generate` at batch 1 is bound by the host (hundreds of small kernel launches and Python per
token), so a 4B model makes ~35 tokens/s on a GPU that can read its weights ~400 times a second. Here the
decode step reads and writes only fixed tensors (token, position, KV cache, logits), so it is captured once
per attention length ("bucket") at load time and each token costs one graph launch.

How: the decoder runs the model's own modules (embedding, norms, q/k/v/o projections, MLP, lm_head; plain
`nn.Linear`, PEFT LoRA layers and bitsandbytes 4-bit layers alike) and does only the attention itself:
RoPE from a precomputed table, K/V written into the static cache with `index_copy_` at a device-side
position, SDPA over the first `bucket` cache slots with a mask. Prefill (the whole prompt at once) runs
the same modules eagerly with causal attention. Llama-style decoders only (llama, qwen2, qwen3, mistral);
anything else raises `FastPathUnavailable` so the caller can use `model.generate`.

On CPU the very same step function runs eagerly (no graph), which is what the tests check against
`model.generate`; on CUDA only `_capture`/`replay` are extra.

A plain 16-bit model (nn.Linear projections, RMSNorm, a SiLU MLP: what chat holds after merging the adapter)
takes a leaner step: q/k/v are one matrix and gate/up another (the modules' weights become views into them, so
no memory is added), and each layer's work before and after attention is two functions. On a GPU those two are
compiled (torch.compile, once for all layers and buckets): even inside a CUDA graph every kernel costs a few
microseconds, and a 4B model's token was ~2000 of them; fused, it is about ten per layer. Anything else (4-bit
layers, LoRA kept apart, other MLPs) keeps the modules' own forwards.

The host reads each token one step late: token i is copied to pinned memory and step i is already queued
before the host waits for token i, so the GPU never waits for Python (after an end-of-turn token the one
step already queued is wasted, which costs nothing visible).
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger("studio.fastgen")

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
SMALLEST_BUCKET = 256  # attention lengths captured: 256, 512, 1024, ... up to the cache length


class FastPathUnavailable(RuntimeError):
    """This model (or machine) cannot take the fast path; the message says why."""


class PromptTooLong(ValueError):
    """The prompt does not fit the static KV cache."""


@dataclass
class GenStats:
    prompt_tokens: int = 0
    tokens: int = 0  # new tokens yielded (an end-of-turn token counts, as in model.generate)
    seconds: float = 0.0  # from the call to the last token, prefill included
    tokens_per_s: float = 0.0  # tokens / seconds
    ttft_s: float = 0.0  # time to the first token (prefill + first sample)
    decode_tokens_per_s: float = 0.0  # tokens after the first / their time
    stopped: str = ""  # eos | max_new_tokens | stop | cache_full
    path: str = ""  # cuda-graph | eager

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Parts:
    """Where a Llama-style decoder keeps its modules."""
    embed: torch.nn.Module
    layers: list
    norm: torch.nn.Module
    lm_head: torch.nn.Module
    config: object
    n_heads: int
    n_kv: int
    head_dim: int
    scaling: float


@dataclass
class _Layer:
    """One decoder layer as plain tensors (the lean step): fused q/k/v and gate/up, norms' weights and eps."""
    ln1: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    o: torch.Tensor
    ln2: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor
    eps: float
    qk_eps: float


def _rms_eps(module) -> float | None:
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
    ok = type(module).__name__.endswith("RMSNorm") and isinstance(getattr(module, "weight", None), torch.Tensor)
    return float(eps) if ok and eps is not None else None


def lean_layers(parts: "_Parts") -> list[_Layer] | None:
    """The layers as plain tensors, fusing q/k/v and gate/up into one matrix each (the modules' weights become
    views into those, so memory stays as it was); None when a layer is not plain 16-bit Llama-style."""
    act = str(getattr(parts.config, "hidden_act", "") or "")
    if act not in ("silu", "swish"):
        return None
    plan = []
    for layer in parts.layers:
        attn, mlp = layer.self_attn, layer.mlp
        projs = [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        projs += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
        if any(type(m) is not torch.nn.Linear for m in projs):  # bitsandbytes, a PEFT layer, anything else
            return None
        if any(m.bias is not None for m in projs[3:]) or len({m.bias is None for m in projs[:3]}) > 1:
            return None
        eps = [_rms_eps(layer.input_layernorm), _rms_eps(layer.post_attention_layernorm)]
        q_norm = getattr(attn, "q_norm", None)
        qk_eps = _rms_eps(q_norm) if q_norm is not None else 1e-6
        if None in eps or qk_eps is None or len(set(eps)) > 1 or set(dict(mlp.named_children())) != {
                "gate_proj", "up_proj", "down_proj", "act_fn"}:
            return None
        plan.append((layer, projs, eps[0], qk_eps))
    out = []
    for layer, projs, eps, qk_eps in plan:
        attn = layer.self_attn
        qkv = _fuse(projs[:3])
        bias = None
        if projs[0].bias is not None:
            bias = torch.cat([m.bias.data for m in projs[:3]])
        out.append(_Layer(layer.input_layernorm.weight.data, qkv, bias,
                          attn.q_norm.weight.data if getattr(attn, "q_norm", None) is not None else None,
                          attn.k_norm.weight.data if getattr(attn, "k_norm", None) is not None else None,
                          projs[3].weight.data, layer.post_attention_layernorm.weight.data, _fuse(projs[4:6]),
                          projs[6].weight.data, eps, qk_eps))
    return out


def _fuse(linears: list) -> torch.Tensor:
    """One matrix of the linears' rows; each linear's weight becomes its rows of it (the old storage is freed)."""
    with torch.no_grad():
        fused = torch.cat([m.weight.data for m in linears])
        for m, rows in zip(linears, fused.split([m.out_features for m in linears])):
            m.weight.data = rows
    return fused


def _before_attention(x, ln1, eps: float, qkv_w, qkv_b, q_norm, k_norm, qk_eps: float, rope, n_heads: int,
                      n_kv: int, head_dim: int):
    """The lean step up to attention: norm, q/k/v in one matmul, Qwen3's per-head norms, RoPE as a matmul."""
    h = F.rms_norm(x, (x.shape[-1],), ln1, eps)
    q, k, v = F.linear(h, qkv_w, qkv_b).split([n_heads * head_dim, n_kv * head_dim, n_kv * head_dim], -1)
    q, k, v = q.view(1, 1, n_heads, head_dim), k.view(1, 1, n_kv, head_dim), v.view(1, 1, n_kv, head_dim)
    if q_norm is not None:
        q, k = F.rms_norm(q, (head_dim,), q_norm, qk_eps), F.rms_norm(k, (head_dim,), k_norm, qk_eps)
    return q.transpose(1, 2) @ rope, k.transpose(1, 2) @ rope, v.transpose(1, 2)


def _after_attention(x, attn_out, o_w, ln2, eps: float, gate_up_w, down_w):
    """The lean step after attention: o_proj and the residual, norm, gate/up in one matmul, SiLU, down."""
    x = x + F.linear(attn_out, o_w)
    gate, up = F.linear(F.rms_norm(x, (x.shape[-1],), ln2, eps), gate_up_w).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, down_w)


def _unwrap(model):
    """The *ForCausalLM inside a PEFT wrapper (PeftModel -> LoraModel -> model)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def locate_parts(model) -> _Parts:
    """The modules the decoder calls; FastPathUnavailable names what does not fit."""
    lm = _unwrap(model)
    config = getattr(lm, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise FastPathUnavailable(f"model type {model_type!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}")
    inner = getattr(lm, "model", None)
    layers = getattr(inner, "layers", None)
    lm_head = getattr(lm, "lm_head", None)
    if inner is None or layers is None or lm_head is None or not hasattr(inner, "embed_tokens"):
        raise FastPathUnavailable(f"{type(lm).__name__} has no model.layers / embed_tokens / lm_head")
    for name in ("sliding_attention", "chunked_attention"):
        if name in (getattr(config, "layer_types", None) or []):
            raise FastPathUnavailable(f"layers with {name} are not supported")
    if getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None):
        raise FastPathUnavailable("sliding-window attention is not supported")
    if getattr(config, "partial_rotary_factor", 1.0) not in (None, 1.0):
        raise FastPathUnavailable("partial rotary embeddings are not supported")
    n_heads = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    for i, layer in enumerate(layers):
        attn = getattr(layer, "self_attn", None)
        need = [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        need += [getattr(layer, n, None) for n in ("mlp", "input_layernorm", "post_attention_layernorm")]
        if any(m is None for m in need):
            raise FastPathUnavailable(f"layer {i} is not a Llama-style decoder layer ({type(layer).__name__})")
        extra = set(dict(layer.named_children())) - {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}
        if extra:  # e.g. Gemma's extra norms: this forward would silently skip them
            raise FastPathUnavailable(f"layer {i} has modules this decoder does not run: {sorted(extra)}")
    return _Parts(inner.embed_tokens, list(layers), inner.norm, lm_head, config, n_heads, n_kv, head_dim,
                  head_dim ** -0.5)


def rope_tables(model, config, head_dim: int, length: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (length, head_dim), computed as transformers' rotary embedding computes them."""
    lm = _unwrap(model)
    rotary = getattr(getattr(lm, "model", None), "rotary_emb", None)
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    rope_type = params.get("rope_type", params.get("type", "default")) or "default"
    if rope_type in ("dynamic", "longrope"):
        raise FastPathUnavailable(f"rope type {rope_type!r} changes with the length; not supported")
    inv_freq = getattr(rotary, "inv_freq", None)
    if (type(rotary).__module__.startswith("transformers.") and isinstance(inv_freq, torch.Tensor)
            and inv_freq.dtype == torch.float32 and inv_freq.numel() == head_dim // 2):
        inv_freq, scaling = inv_freq.detach(), float(getattr(rotary, "attention_scaling", 1.0))
    elif rope_type == "default":
        base = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        scaling = 1.0
    else:
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
        if rope_type not in ROPE_INIT_FUNCTIONS:
            raise FastPathUnavailable(f"rope type {rope_type!r} is unknown")
        inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None)
    inv = inv_freq.to(device=device, dtype=torch.float32)
    positions = torch.arange(length, device=device, dtype=torch.float32)
    freqs = (inv[None, :, None] @ positions[None, None, :]).transpose(1, 2)[0]  # same op as transformers
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


class _StepStandIn:
    """What a captured graph does, done eagerly: for running the graph path's code on a CPU."""

    def __init__(self, decoder, bucket: int):
        self.decoder, self.bucket = decoder, bucket

    def replay(self) -> None:
        self.decoder._step(self.bucket)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def buckets_for(max_cache_len: int, smallest: int = SMALLEST_BUCKET) -> list[int]:
    out, b = [], smallest
    while b < max_cache_len:
        out.append(b)
        b *= 2
    return out + [max_cache_len]


def eos_ids_of(tokenizer, model=None) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, the chat templates' turn ends, the generation config's."""
    ids: set[int] = set()
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        for t in (tokenizer.eos_token, "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
            if t and t in vocab:
                ids.add(vocab[t])
    gen = getattr(_unwrap(model), "generation_config", None) if model is not None else None
    eos = getattr(gen, "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else list(eos or []))
    return sorted(ids)


class FastDecoder:
    """Greedy / sampled single-stream generation with a static KV cache (+ CUDA graphs on a GPU).

    decoder = FastDecoder(model, max_cache_len=2048)          # captures the graphs on CUDA
    for token_id in decoder.stream(input_ids, 256): ...         # then decoder.last_stats
    """

    def __init__(self, model, max_cache_len: int = 2048, use_cuda_graph: bool | None = None,
                 require_cuda_graph: bool = False, buckets: list[int] | None = None, fixed_shapes: bool | None = None,
                 attention: str = "sdpa", graph_standin: bool = False, fused_ops: bool | None = None,
                 warmup: bool = True, lean: bool | None = None, compile_layers: bool | None = None):
        """use_cuda_graph: None = on CUDA devices. fixed_shapes: attend over a whole bucket with a mask (what a
        graph needs) even when running eagerly; None = only with graphs. Eagerly, the step otherwise attends
        over exactly the filled slots, which computes bit for bit what transformers' decode step computes.
        attention: "sdpa" or "matmul" (the decode step's attention; capture falls back to "matmul").
        graph_standin: off CUDA, objects that replay the step eagerly take the graphs' place, so everything
        around the capture (warm-up, buckets, the replay check, replayed streaming) runs on a CPU too.
        fused_ops: fewer, larger kernels (F.rms_norm; RoPE as one small matmul per tensor), within a rounding
        of transformers' ops; None = with graphs (on a GPU a token is ~2000 kernels, each costing
        microseconds even inside a graph).
        lean: the lean step for a plain 16-bit model (module docstring); None = wherever it applies.
        compile_layers: compile the lean step's two per-layer functions; None = on a GPU (STUDIO_FASTGEN_COMPILE=0
        turns it off)."""
        if attention not in ("sdpa", "matmul"):
            raise ValueError(f"attention must be 'sdpa' or 'matmul', not {attention!r}")
        self.model = model
        self.parts = p = locate_parts(model)
        weight = p.embed.weight
        self.device, self.dtype = weight.device, weight.dtype
        if self.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise FastPathUnavailable(f"embedding dtype {self.dtype} is not a float type")
        max_pos = getattr(p.config, "max_position_embeddings", None)
        if max_pos:
            max_cache_len = min(int(max_cache_len), int(max_pos))
        if max_cache_len < 2:
            raise ValueError("max_cache_len must be at least 2")
        self.max_cache_len = L = int(max_cache_len)
        window = getattr(p.layers[0].self_attn, "sliding_window", None) or getattr(p.config, "sliding_window", None)
        if window and getattr(p.config, "use_sliding_window", True) and int(window) < L:
            # a window no shorter than the cache never hides a cached token: plain attention is the same
            raise FastPathUnavailable(f"sliding-window attention ({window} tokens) is not supported")
        self.buckets = sorted({min(b, L) for b in (buckets or buckets_for(L))} | {L})
        self.lock = threading.Lock()  # one stream at a time: one cache, one set of graphs
        self.last_stats: GenStats | None = None
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.graph_error = ""  # why graphs are not used, when they are not
        with torch.inference_mode():
            shape = (len(p.layers), 1, p.n_kv, L, p.head_dim)
            self.k_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
            self.v_cache = torch.zeros(shape, device=self.device, dtype=self.dtype)
            self.cos, self.sin = rope_tables(model, p.config, p.head_dim, L, self.device, self.dtype)
            self.slots = torch.arange(L, device=self.device)
            self.token = torch.zeros((1, 1), dtype=torch.long, device=self.device)  # the step's input
            self.pos = torch.zeros((1,), dtype=torch.long, device=self.device)  # its position
            self.logits = torch.zeros((1, self._vocab()), dtype=torch.float32, device=self.device)  # its output
            on_cuda = self.device.type == "cuda"
            self.host_tokens = torch.zeros((2,), dtype=torch.long, pin_memory=on_cuda)
        self.attention = attention  # decode attention: "sdpa", or "matmul" when SDPA cannot be captured
        self.graph_standin = graph_standin and self.device.type != "cuda"
        self.fused_ops = (self.device.type == "cuda" or self.graph_standin) if fused_ops is None else bool(fused_ops)
        self.lean = lean_layers(p) if lean is not False and self.fused_ops else None
        if lean and self.lean is None:
            raise FastPathUnavailable("the lean step needs a plain 16-bit Llama-style model")
        import os
        want_compile = (self.device.type == "cuda" and os.environ.get("STUDIO_FASTGEN_COMPILE", "1") != "0") \
            if compile_layers is None else bool(compile_layers)
        self.before, self.after = _before_attention, _after_attention
        if self.lean is not None and want_compile:  # one compile each: every layer and bucket has these shapes
            self.before = torch.compile(_before_attention, dynamic=False, fullgraph=True)
            self.after = torch.compile(_after_attention, dynamic=False, fullgraph=True)
        self.compiled = self.lean is not None and want_compile
        with torch.inference_mode():  # rotate_half as a matrix: x @ half_turn == rotate_half(x)
            h = p.head_dim // 2
            self.half_turn = torch.zeros((p.head_dim, p.head_dim), device=self.device, dtype=self.dtype)
            first = torch.arange(h, device=self.device)
            self.half_turn[first + h, first] = -1
            self.half_turn[first, first + h] = 1
        want_graph = (self.device.type == "cuda" or self.graph_standin) if use_cuda_graph is None else use_cuda_graph
        errors = []
        for attn_kind in (dict.fromkeys((attention, "matmul")) if want_graph else ()):
            self.attention = attn_kind
            try:
                self._capture()
                break
            except Exception as exc:  # any failure: try the next attention, then run eagerly; say why
                self.graphs = {}
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                errors.append(f"{attn_kind} attention: {type(exc).__name__}: {first}")
                log.warning("fast chat: CUDA graph capture failed (%s)", errors[-1])
                if self.device.type == "cuda":
                    try:
                        torch.cuda.synchronize(self.device)
                    except Exception:
                        pass
        if want_graph and not self.graphs:
            self.attention = attention
            self.graph_error = "; ".join(errors)
        if require_cuda_graph and not self.graphs:
            raise FastPathUnavailable("CUDA graphs unavailable" + (f": {self.graph_error}" if self.graph_error else
                                                                   " (not on a CUDA device)"))
        self.fixed_shapes = bool(self.graphs) if fixed_shapes is None else bool(fixed_shapes or self.graphs)
        if warmup and not self.graphs:
            self._warm_eager()

    @property
    def path(self) -> str:
        if not self.graphs:
            return "eager"
        return "graph-standin" if self.graph_standin else "cuda-graph"

    def _vocab(self) -> int:
        w = getattr(self.parts.lm_head, "weight", None)
        out = getattr(self.parts.lm_head, "out_features", None)
        return int(out or (w.shape[0] if w is not None else self.parts.config.vocab_size))

    # ------------------------------------------------------------------ the model, by hand

    def _norm(self, module, x):
        """The module's RMSNorm; with fused_ops one F.rms_norm kernel for a standard RMSNorm."""
        eps = getattr(module, "variance_epsilon", getattr(module, "eps", None))
        if self.fused_ops and type(module).__name__.endswith("RMSNorm") and eps is not None:
            return F.rms_norm(x, (x.shape[-1],), module.weight, eps)
        return module(x)

    def _attention_in(self, layer, h, cos, sin, rope=None):
        """q, k, v of (1, heads, seq, head_dim), RoPE applied, as transformers' Llama/Qwen attention does.
        rope: a (head_dim, head_dim) matrix doing cos/sin rotation for one position (x @ rope)."""
        p, attn = self.parts, layer.self_attn
        seq = h.shape[1]
        q = attn.q_proj(h).view(1, seq, p.n_heads, p.head_dim)
        k = attn.k_proj(h).view(1, seq, p.n_kv, p.head_dim)
        v = attn.v_proj(h).view(1, seq, p.n_kv, p.head_dim)
        if getattr(attn, "q_norm", None) is not None:  # Qwen3: RMSNorm per head before RoPE
            q, k = self._norm(attn.q_norm, q), self._norm(attn.k_norm, k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if rope is not None:
            return q @ rope, k @ rope, v
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        return q, k, v

    def _layer_out(self, layer, x, attn_out):
        x = x + layer.self_attn.o_proj(attn_out)
        return x + layer.mlp(self._norm(layer.post_attention_layernorm, x))

    def _prefill(self, ids: torch.Tensor) -> None:
        """The prompt (1, T) in one forward: fills cache slots [0, T), logits of the last token, pos = T."""
        p = self.parts
        T = ids.shape[1]
        x = p.embed(ids)
        cos, sin = self.cos[:T].unsqueeze(0), self.sin[:T].unsqueeze(0)
        rep = p.n_heads // p.n_kv
        for i, layer in enumerate(p.layers):
            q, k, v = self._attention_in(layer, self._norm(layer.input_layernorm, x), cos, sin)
            self.k_cache[i, :, :, :T].copy_(k)
            self.v_cache[i, :, :, :T].copy_(v)
            if rep > 1:  # transformers' repeat_kv
                k = k[:, :, None].expand(1, p.n_kv, rep, T, p.head_dim).reshape(1, p.n_heads, T, p.head_dim)
                v = v[:, :, None].expand(1, p.n_kv, rep, T, p.head_dim).reshape(1, p.n_heads, T, p.head_dim)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, scale=p.scaling)
            x = self._layer_out(layer, x, o.transpose(1, 2).reshape(1, T, p.n_heads * p.head_dim))
        x = self._norm(p.norm, x[:, -1:])
        self.logits.copy_(p.lm_head(x)[:, -1].float())
        self.pos.fill_(T)

    def _step(self, bucket: int, exact: bool = False) -> None:
        """One token: reads self.token at self.pos, writes its K/V and self.logits, pos += 1.
        Only fixed tensors, no host reads, no shapes that change: this is what the CUDA graph holds.
        exact: `bucket` is the number of filled slots (pos + 1), so no mask (eager only)."""
        p = self.parts
        rep = p.n_heads // p.n_kv
        x = p.embed(self.token)  # (1, 1, hidden)
        cos = self.cos.index_select(0, self.pos).unsqueeze(0)  # (1, 1, head_dim)
        sin = self.sin.index_select(0, self.pos).unsqueeze(0)
        mask = None  # additive, made once per step (a bool mask would be converted again in every layer)
        if not exact:
            mask = torch.zeros((1, 1, 1, bucket), device=self.device, dtype=self.dtype).masked_fill(
                (self.slots[:bucket] > self.pos).view(1, 1, 1, bucket), float("-inf"))
        rope = None
        if self.fused_ops:  # this position's rotation, once for all layers: x*cos + rotate_half(x)*sin = x @ rope
            rope = torch.diag(cos.view(-1)) + self.half_turn * sin.view(1, -1)
        for i, layer in enumerate(p.layers):
            if self.lean is not None:
                w = self.lean[i]
                q, k, v = self.before(x, w.ln1, w.eps, w.qkv, w.qkv_bias, w.q_norm, w.k_norm, w.qk_eps, rope,
                                      p.n_heads, p.n_kv, p.head_dim)
            else:
                q, k, v = self._attention_in(layer, self._norm(layer.input_layernorm, x), cos, sin, rope)
            kc, vc = self.k_cache[i], self.v_cache[i]
            kc.index_copy_(2, self.pos, k)
            vc.index_copy_(2, self.pos, v)
            # grouped-query attention without copying K/V: the `rep` query heads that share a K/V head
            # are that head's query rows (query head h reads K/V head h // rep, as repeat_kv does)
            o = self._decode_attention(q.reshape(1, p.n_kv, rep, p.head_dim), kc[:, :, :bucket],
                                       vc[:, :, :bucket], mask)
            o = o.reshape(1, 1, p.n_heads * p.head_dim)
            if self.lean is not None:
                x = self.after(x, o, self.lean[i].o, self.lean[i].ln2, self.lean[i].eps, self.lean[i].gate_up,
                               self.lean[i].down)
            else:
                x = self._layer_out(layer, x, o)
        self.logits.copy_(p.lm_head(self._norm(p.norm, x))[:, -1].float())
        self.pos.add_(1)

    def _decode_attention(self, q, k, v, mask):
        if self.attention == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.parts.scaling)
        # "matmul": transformers' eager attention (float32 softmax); plain GEMMs, for when an SDPA kernel
        # cannot be captured in a graph
        scores = torch.matmul(q, k.transpose(2, 3)) * self.parts.scaling
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(-1, dtype=torch.float32).to(q.dtype), v)

    # ------------------------------------------------------------------ CUDA graphs

    def _capture(self) -> None:
        """One graph per bucket, all in one memory pool (they never run at the same time)."""
        on_cuda = self.device.type == "cuda"
        if not on_cuda and not self.graph_standin:
            raise FastPathUnavailable("CUDA graphs need a CUDA device")
        t0 = time.time()
        with torch.inference_mode():
            side = torch.cuda.Stream(self.device) if on_cuda else None
            if on_cuda:
                side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side) if on_cuda else contextlib.nullcontext():  # warm-up off the capture stream
                for b in self.buckets:  # (cuBLAS handles, lazy inits, autotuning happen here, not in the graph)
                    for _ in range(2):
                        self.pos.zero_()
                        self._step(b)
            if on_cuda:
                torch.cuda.current_stream(self.device).wait_stream(side)
                torch.cuda.synchronize(self.device)
            pool = None
            for b in self.buckets:
                self.pos.zero_()
                if on_cuda:
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph, pool=pool):
                        self._step(b)
                    pool = graph.pool()
                else:
                    graph = _StepStandIn(self, b)
                self.graphs[b] = graph
            if on_cuda:
                torch.cuda.synchronize(self.device)
            self._check_graphs()
        log.info("fast chat: %s %d decode graphs (buckets %s, %s attention) in %.2fs",
                 "captured" if on_cuda else "stood in for", len(self.graphs), self.buckets, self.attention,
                 time.time() - t0)

    def _check_graphs(self) -> None:
        """A replayed step must compute what the eager step computes (else graphs are dropped)."""
        ids = torch.tensor([[1, 2, 3, 4]], device=self.device)
        self._prefill(ids)
        self.token.fill_(5)
        self._step(self.buckets[0])
        eager = self.logits.clone()
        self.pos.fill_(ids.shape[1])
        self.graphs[self.buckets[0]].replay()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if int(self.pos.item()) != ids.shape[1] + 1:
            raise RuntimeError("replayed graph did not advance the position")
        diff = (self.logits - eager).abs().max().item()
        scale = eager.abs().max().item() + 1e-6
        if not math.isfinite(diff) or diff > 1e-2 * scale:
            raise RuntimeError(f"replayed step differs from the eager step (max |diff| {diff:.3g}, scale {scale:.3g})")

    def _warm_eager(self) -> None:
        """One tiny prefill + step, so the first answer pays no lazy initialisation."""
        with torch.inference_mode():
            self._prefill(torch.tensor([[1, 2]], device=self.device))
            self._run_step(3)

    def _run_step(self, filled: int) -> None:
        """The step for a token whose position makes `filled` cache slots in use."""
        if not self.fixed_shapes:
            self._step(filled, exact=True)
            return
        bucket = next(b for b in self.buckets if b >= filled)
        graph = self.graphs.get(bucket)
        if graph is not None:
            graph.replay()
        else:
            self._step(bucket)

    # ------------------------------------------------------------------ sampling

    def _select(self, temperature: float, top_p: float, generator) -> None:
        """Next token from self.logits into self.token, on the device (no host sync)."""
        logits = self.logits
        if not temperature or temperature <= 0:
            self.token.copy_(logits.argmax(-1, keepdim=True))
            return
        scores = logits / float(temperature)
        if top_p is not None and 0 < top_p < 1:  # transformers' TopPLogitsWarper
            sorted_scores, order = torch.sort(scores, descending=False)
            cumulative = sorted_scores.softmax(-1).cumsum(-1)
            remove = cumulative <= (1 - top_p)
            remove[..., -1:] = False
            scores = scores.scatter(-1, order, sorted_scores.masked_fill(remove, float("-inf")))
        probs = scores.softmax(-1)
        # exponential-race sampling: argmax(p / E), E ~ Exp(1), draws from p without a host sync
        noise = torch.empty_like(probs).exponential_(1, generator=generator)
        self.token.copy_((probs / noise).argmax(-1, keepdim=True))

    # ------------------------------------------------------------------ streaming

    def check_prompt(self, n_tokens: int) -> None:
        if n_tokens < 1:
            raise ValueError("the prompt is empty")
        if n_tokens >= self.max_cache_len:
            raise PromptTooLong(f"the prompt has {n_tokens} tokens but the chat's KV cache holds {self.max_cache_len} "
                                f"(max_seq_length); shorten the conversation or load with a larger max_seq_length")

    def stream(self, input_ids, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
               stop_event: threading.Event | None = None, eos_token_ids=(), seed: int | None = None):
        """Yield new token ids (ints) as they are made; sets self.last_stats when done (or stopped).

        input_ids: (1, T) tensor or a list of ints. eos_token_ids: the token that ends the answer is
        yielded, then the stream ends. seed: sampling draws from a torch.Generator seeded with it, so two
        models compared with one seed see the same random numbers."""
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        if ids.dim() == 1:
            ids = ids[None]
        if ids.dim() != 2 or ids.shape[0] != 1:
            raise ValueError(f"one prompt at a time: input_ids of shape (1, T), got {tuple(ids.shape)}")
        T = ids.shape[1]
        self.check_prompt(T)
        max_new = int(max_new_tokens)
        if max_new < 1:
            raise ValueError("max_new_tokens must be at least 1")
        limit = min(max_new, self.max_cache_len - T)
        eos = {int(e) for e in (eos_token_ids or ())}
        generator = None
        if temperature and temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        stats = GenStats(prompt_tokens=T, path=self.path if self.graphs or not self.fixed_shapes else "eager-fixed")
        on_cuda = self.device.type == "cuda"
        events = [torch.cuda.Event() for _ in range(2)] if on_cuda else None
        ids = ids.to(self.device)

        def queue_read(i: int) -> None:  # copy token i to the host without waiting for it
            with torch.inference_mode():
                self.host_tokens[i % 2].copy_(self.token[0, 0], non_blocking=on_cuda)
            if on_cuda:
                events[i % 2].record()

        def launch(i: int) -> None:  # step i: token i -> logits -> token i + 1
            with torch.inference_mode():
                self._run_step(T + i + 1)
                self._select(temperature, top_p, generator)

        now = time.perf_counter  # bound here: a generator closed at interpreter exit still finds it
        with self.lock:
            t0 = now()
            t_first = None
            try:
                with torch.inference_mode():
                    self._prefill(ids)
                    self._select(temperature, top_p, generator)
                n = 0
                while True:
                    queue_read(n)
                    more = n + 1 < limit
                    if more:
                        launch(n)  # queued before we wait for token n: the GPU keeps working
                    if on_cuda:
                        events[n % 2].synchronize()
                    token = int(self.host_tokens[n % 2])
                    n += 1
                    if t_first is None:
                        t_first = now()
                        stats.ttft_s = t_first - t0
                    stats.tokens = n
                    yield token
                    if token in eos:
                        stats.stopped = "eos"
                    elif stop_event is not None and stop_event.is_set():
                        stats.stopped = "stop"
                    elif not more:
                        stats.stopped = "max_new_tokens" if n >= max_new else "cache_full"
                    if stats.stopped:
                        break
            finally:
                if on_cuda:
                    torch.cuda.synchronize(self.device)  # a queued step must not outlive the lock
                end = now()
                stats.seconds = end - t0
                if stats.tokens:
                    stats.tokens_per_s = stats.tokens / stats.seconds
                    if stats.tokens > 1 and t_first is not None and end > t_first:
                        stats.decode_tokens_per_s = (stats.tokens - 1) / (end - t_first)
                if not stats.stopped:
                    stats.stopped = "stop"  # the consumer closed the generator
                self.last_stats = stats

    def compare_with_model(self, input_ids) -> dict:
        """The decode step's logits for the last token of input_ids (prefill of the others, one step) next to
        the model's own forward: max |difference| relative to max |logit|, and whether the argmax agrees."""
        ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1).to(self.device)
        T = ids.shape[1] - 1
        if T < 1:
            raise ValueError("need at least two tokens")
        self.check_prompt(T + 1)
        with self.lock, torch.inference_mode():
            self._prefill(ids[:, :T])
            self.token.copy_(ids[:, T:])
            self._run_step(T + 1)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            ours = self.logits[0].clone()
            theirs = self.model(input_ids=ids).logits[0, -1].float()
        diff = (ours - theirs).abs().max().item()
        return {"rel_diff": diff / (theirs.abs().max().item() + 1e-9),
                "same_argmax": bool(ours.argmax() == theirs.argmax())}

    def generate(self, input_ids, max_new_tokens: int = 256, **kwargs) -> list[int]:
        """All new token ids at once (the stream, collected)."""
        return list(self.stream(input_ids, max_new_tokens, **kwargs))
