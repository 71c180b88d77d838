"""Fit-to-GPU preset: estimate peak GPU memory and speed of LoRA settings, pick the fastest that fits.

Given the model's config (config.json as a dict), max_length, the rows' token lengths (optional) and the
GPU's free memory, `candidates()` estimates every setting of
    weights 4-bit or 16-bit  x  micro-batch 1, 2, 4, 8 (accumulation = effective batch / micro-batch)
    x  gradient checkpointing off ("false"), on ("true"), Unsloth's offloaded ("unsloth")
and `pick()` returns the fastest one whose worst-case peak fits with a safety margin, else the chapter's
recipe (4-bit, 2 x 4, "unsloth") marked fits=False. The effective batch (8 in the chapter) and everything
else in the recipe stay as they are: the preset changes how fast a step runs, not what it computes.

Memory model (peak reserved, what torch.cuda.max_memory_reserved and the studio's status.json report):
    peak = weights + LoRA state + FIXED_GB + activations(T)
  T is the token count of the largest micro-batch of the run (Unsloth's padding-free batches on a
  Hopper GPU: the sum of the rows' lengths; padded batches: micro-batch x the longest row).
  weights       16-bit: 2 B/param; 4-bit: NF4 with double quant on every linear layer of the decoder
                (0.5 + 1/64 + 4/(64*256) B/param), embeddings (tied with lm_head) in bf16.
  LoRA state    10 B per LoRA param (fp32 weight + grad, 8-bit Adam), r * (in + out) per module.
  activations   act = 4 h + 2 q + 2 kv + 3 I bf16 elements per token and layer (h hidden, q = heads *
                head_dim, kv = kv_heads * head_dim, I intermediate), V the vocabulary:
                "false":   T * (ACT_NO_CKPT * act * 2 B * layers + LOGIT_NO_CKPT * V)
                "unsloth": T * (ACT_ONE_LAYER * act * 2 B + ACT_OFFLOAD_BUF * h * 2 B + LOGIT_CKPT * V)
                "true":    the same + the layer inputs kept on the GPU (h * 2 B * layers per token)
Calibration (docs/benchmarks.md, "Fit-to-GPU preset"; `bench/gpu_fit_preset.py --calibrate`): least squares
on 8 measured settings, one H100 80GB HBM3, torch 2.11, transformers 5.17, unsloth 2026.10.9, Qwen3-4B and
Qwen3-0.6B shapes, synthetic chat rows of 128-1536 tokens. Largest error of the estimate shown in the UI:
3.7% (recipe 4B: 3.23 GiB measured, 3.25 estimated; 16-bit batch 8 no checkpointing: 36.03 vs 37.23).

Speed model (tokens/s on that H100; only the ranking and the ratio to the recipe are used):
    seconds per micro-batch = HOST_S_PER_LAYER * layers
                            + PFLOPs * (S_PER_PFLOP + RECOMPUTE_S_PER_PFLOP if checkpointing)
                            + 4-bit: DEQUANT_S_PER_GPARAM * linear Gparams * (2, or 3 with checkpointing)
    PFLOPs = tokens * (4 * params + 6 * layers * q * mean context) / 1e15 (forward + input gradients; the
    frozen base has no weight gradients). The host term dominates on that machine (Unsloth's padding-free
    path: ~12 ms a layer and micro-batch), so the micro-batch decides the speed. Measured there for 4B: the
    recipe 3,481 tokens/s (mean of 11 runs), 16-bit batch 8 without checkpointing 12,288 (2 runs).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

GIB = 1024 ** 3

# ---- memory coefficients (H100 calibration; see the module docstring)
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
LORA_BYTES_PER_PARAM = 10.0
ACT_NO_CKPT = 0.9605
LOGIT_NO_CKPT = 1.538
ACT_ONE_LAYER = 0.6371
LOGIT_CKPT = 0.2315
ACT_OFFLOAD_BUF = 4.0
FIXED_GB = 0.3053
# ---- speed coefficients
HOST_S_PER_LAYER = 0.01185
S_PER_PFLOP = 0.824
RECOMPUTE_S_PER_PFLOP = 2.284
DEQUANT_S_PER_GPARAM = 2.516 / 3.0e3  # NF4 read + bf16 written per param, at ~3 TB/s
# ---- picking
MARGIN_FRACTION = 0.08  # of the free memory, kept unused
MARGIN_GB = 1.0         # and at least this much
MICRO_BATCHES = (1, 2, 4, 8)
CHECKPOINTING = ("false", "true", "unsloth")
RECIPE = dict(load_in_4bit=True, micro_batch=2, grad_accum=4, gradient_checkpointing="unsloth")

# Shapes of models people pick without a local config.json at hand (the Hub ids the UI offers).
KNOWN = {
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False),
}


@dataclass
class Estimate:
    load_in_4bit: bool
    micro_batch: int
    grad_accum: int
    gradient_checkpointing: str
    peak_gb: float           # expected peak reserved GiB for these rows (largest micro-batch of the run)
    worst_gb: float          # bound: a micro-batch of the longest rows; this is what must fit
    tokens_per_s: float      # estimated on the reference H100
    tokens_per_s_rel: float  # vs the chapter's recipe (same model, rows and GPU)
    fits: bool

    @property
    def label(self) -> str:
        gc = {"false": "no checkpointing", "true": "checkpointing", "unsloth": "Unsloth offloaded checkpointing"}
        return (f"{'4-bit' if self.load_in_4bit else '16-bit'}, batch {self.micro_batch} x {self.grad_accum}, "
                f"{gc[self.gradient_checkpointing]}")

    @property
    def is_recipe(self) -> bool:
        return (self.load_in_4bit, self.micro_batch, self.grad_accum, self.gradient_checkpointing) == tuple(
            RECIPE.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


# ---------------------------------------------------------------- shape

def shape(model_config: dict) -> dict:
    """Parameter counts and dimensions from a (Qwen/Llama-style) config.json dict."""
    c = dict(model_config.get("text_config") or model_config)
    h = int(c["hidden_size"])
    inter = int(c["intermediate_size"])
    layers = int(c["num_hidden_layers"])
    heads = int(c["num_attention_heads"])
    kv_heads = int(c.get("num_key_value_heads") or heads)
    head_dim = int(c.get("head_dim") or h // heads)
    vocab = int(c["vocab_size"])
    tied = bool(c.get("tie_word_embeddings", False))
    q, kv = heads * head_dim, kv_heads * head_dim
    attn = h * q + 2 * h * kv + q * h
    mlp = 3 * h * inter
    linear = layers * (attn + mlp)
    embed = vocab * h * (1 if tied else 2)
    # LoRA on q, k, v, o, gate, up, down: r * (in + out) per module
    lora_per_r = layers * ((h + q) + 2 * (h + kv) + (q + h) + 2 * (h + inter) + (inter + h))
    return dict(h=h, inter=inter, layers=layers, q=q, kv=kv, vocab=vocab, tied=tied, linear=linear, embed=embed,
                params=linear + embed, lora_per_r=lora_per_r, act_elems=4 * h + 2 * q + 2 * kv + 3 * inter)


def model_config_for(name: str) -> dict | None:
    """config.json (local folder, or the Hub through its cache), else a known shape by name; None if unknown."""
    from studio.models import ModelError, load_model_config
    try:
        return load_model_config(name)
    except (ModelError, OSError, ValueError):
        pass
    key = name.lower().split("/")[-1]
    for k, v in KNOWN.items():
        if key.startswith(k) and (len(key) == len(k) or not key[len(k)].isdigit()):
            return dict(v)
    return None


# ---------------------------------------------------------------- memory

def weights_gb(s: dict, load_in_4bit: bool) -> float:
    if load_in_4bit:
        return (s["linear"] * NF4_BYTES + s["embed"] * 2) / GIB
    return s["params"] * 2 / GIB


def activations_gb(s: dict, tokens: float, gradient_checkpointing: str) -> float:
    """Activations and logits/loss buffers at the peak, for `tokens` in the micro-batch."""
    per_layer = s["act_elems"] * 2 * tokens
    if gradient_checkpointing == "false":
        return (ACT_NO_CKPT * per_layer * s["layers"] + LOGIT_NO_CKPT * s["vocab"] * tokens) / GIB
    ckpt = ACT_ONE_LAYER * per_layer + LOGIT_CKPT * s["vocab"] * tokens
    if gradient_checkpointing == "true":  # layer inputs stay on the GPU
        return (2 * s["h"] * s["layers"] * tokens + ckpt) / GIB
    return (ACT_OFFLOAD_BUF * 2 * s["h"] * tokens + ckpt) / GIB  # "unsloth": layer inputs offloaded


def estimate(model_config: dict, max_length: int, load_in_4bit: bool, micro_batch: int,
             gradient_checkpointing: str, tokens: float | None = None, r: int = 8) -> float:
    """Peak reserved GiB. `tokens`: tokens in the largest micro-batch (default micro_batch x max_length)."""
    s = shape(model_config)
    t = float(tokens if tokens is not None else micro_batch * max_length)
    return (weights_gb(s, load_in_4bit) + s["lora_per_r"] * r * LORA_BYTES_PER_PARAM / GIB + FIXED_GB
            + activations_gb(s, t, gradient_checkpointing))


def largest_micro_batch(lengths: list[int] | None, micro_batch: int, max_length: int, micro_batches: int = 240,
                        padding_free: bool = True, trials: int = 24, seed: int = 0) -> tuple[float, float]:
    """(expected, worst) tokens of the largest micro-batch over a run of `micro_batches` micro-batches,
    drawing shuffled rows as the trainer does. Worst = micro_batch x the longest row (padded), a bound for
    padded and padding-free batches alike. No lengths: every row is max_length long."""
    if not lengths:
        t = float(micro_batch * max_length)
        return t, t
    lens = [max(1, min(int(x), max_length)) for x in lengths]
    worst = float(micro_batch * max(lens))
    rng = random.Random(seed)
    total = 0.0
    for _ in range(trials):
        order, best, i = [], 0, 0
        for _ in range(micro_batches):
            if i + micro_batch > len(order):
                order = order[i:] + rng.sample(lens, len(lens))
                i = 0
            batch = order[i:i + micro_batch]
            i += micro_batch
            best = max(best, sum(batch) if padding_free else micro_batch * max(batch))
        total += best
    return min(worst, total / trials), worst


# ---------------------------------------------------------------- speed

def tokens_per_s(model_config: dict, load_in_4bit: bool, micro_batch: int, gradient_checkpointing: str,
                 mean_length: float) -> float:
    """Estimated training tokens/s on the reference H100 (Unsloth's padding-free batches).

    On that machine a micro-batch costs a fixed host time per layer (launching the padding-free path's
    kernels from Python: ~12 ms a layer) plus its GPU work, so bigger micro-batches win until the GPU is
    the bottleneck; recomputation (checkpointing) costs GPU time, 4-bit costs a dequantization pass per
    linear weight and pass. "true" and "unsloth" checkpointing cost the same here (Unsloth's offload is
    asynchronous), so ties go to the smaller peak ("unsloth")."""
    s = shape(model_config)
    t = micro_batch * mean_length
    pflops = t * (4 * s["params"] + 6 * s["layers"] * s["q"] * mean_length / 2) / 1e15
    ckpt = gradient_checkpointing != "false"
    sec = HOST_S_PER_LAYER * s["layers"] + pflops * (S_PER_PFLOP + (RECOMPUTE_S_PER_PFLOP if ckpt else 0))
    if load_in_4bit:
        sec += DEQUANT_S_PER_GPARAM * s["linear"] / 1e9 * (3 if ckpt else 2)
    return t / sec


# dense bf16 tensor-core peak, TFLOP/s, by a word of the GPU's name (the first that matches)
PEAK_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("H800", 989.4), ("A100", 312.0),
               ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 125.0), ("RTX 4090", 165.2),
               ("RTX 3090", 71.0))


def peak_tflops(gpu_name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS if k in (gpu_name or "")), None)


def train_flops_per_token(model_config: dict, lora_params: int, mean_length: float) -> float:
    """Model FLOPs a trained token costs (what MFU counts; a recomputed forward is not counted): the frozen base's
    forward and its activation gradients (4 x params), the adapter's forward and both gradients (6 x its params),
    causal attention's matmuls."""
    s = shape(model_config)
    return 4 * s["params"] + 6 * lora_params + 6 * s["layers"] * s["q"] * mean_length / 2


# ---------------------------------------------------------------- choosing

def usable_gb(free_gb: float) -> float:
    return free_gb - max(MARGIN_GB, MARGIN_FRACTION * free_gb)


def candidates(model_config: dict, max_length: int, free_gb: float, effective_batch: int = 8,
               lengths: list[int] | None = None, steps: int = 60, r: int = 8) -> list[Estimate]:
    """Every setting, fastest first."""
    mean_len = (sum(min(x, max_length) for x in lengths) / len(lengths)) if lengths else max_length
    out = []
    base = tokens_per_s(model_config, True, 2, "unsloth", mean_len)
    for q4 in (True, False):
        for mb in MICRO_BATCHES:
            if effective_batch % mb:
                continue
            accum = effective_batch // mb
            exp_t, worst_t = largest_micro_batch(lengths, mb, max_length, micro_batches=max(1, steps) * accum)
            for gc in CHECKPOINTING:
                peak = estimate(model_config, max_length, q4, mb, gc, tokens=exp_t, r=r)
                worst = estimate(model_config, max_length, q4, mb, gc, tokens=worst_t, r=r)
                tps = tokens_per_s(model_config, q4, mb, gc, mean_len)
                out.append(Estimate(q4, mb, accum, gc, round(peak, 3), round(worst, 3), round(tps, 1),
                                    round(tps / base, 3), worst <= usable_gb(free_gb)))
    out.sort(key=lambda e: (-e.tokens_per_s, e.worst_gb))
    return out


def pick(model_config: dict, max_length: int, free_gb: float, effective_batch: int = 8,
         lengths: list[int] | None = None, steps: int = 60, r: int = 8) -> Estimate:
    """The fastest setting that fits; the chapter's recipe (fits=False when even it does not) otherwise."""
    cands = candidates(model_config, max_length, free_gb, effective_batch, lengths, steps, r)
    for e in cands:
        if e.fits:
            return e
    recipe = [e for e in cands if e.load_in_4bit and e.gradient_checkpointing == "unsloth"
              and e.micro_batch == min(RECIPE["micro_batch"], effective_batch)]
    return recipe[0] if recipe else min(cands, key=lambda e: e.worst_gb)


def recipe_estimate(model_config: dict, max_length: int, free_gb: float, lengths=None, steps: int = 60,
                    r: int = 8) -> Estimate:
    for e in candidates(model_config, max_length, free_gb, 8, lengths, steps, r):
        if e.is_recipe:
            return e
    raise AssertionError("the recipe is always a candidate")


# ---------------------------------------------------------------- the studio side

def free_gpu_gb() -> float | None:
    """Free memory of GPU 0 in GiB, without creating a CUDA context in this process (nvidia-smi)."""
    from studio import gpu
    row = gpu.nvidia_smi("memory.free")
    try:
        if row:
            return float(row[0]) * 1024 ** 2 / GIB
    except ValueError:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.mem_get_info(0)[0] / GIB
    except Exception:
        pass
    return None


def pick_for_run(cfg, free_gb: float | None = None, lengths: list[int] | None = None) -> Estimate:
    """pick() for a studio RunConfig (model from cfg.model.name; effective batch, r, steps from cfg)."""
    mc = model_config_for(cfg.model.name)
    if mc is None:
        raise ValueError(f"no config.json for {cfg.model.name}: cannot estimate its memory")
    if free_gb is None:
        free_gb = free_gpu_gb()
    if free_gb is None:
        raise ValueError("no GPU found")
    t = cfg.train
    eff = t.per_device_train_batch_size * t.gradient_accumulation_steps
    steps = t.max_steps if t.max_steps > 0 else 60
    distributed = getattr(cfg, "distributed", None)
    if distributed is not None:
        from studio.distributed import world_plan
        n = world_plan(distributed).world_size
        if n > 1:  # plan per GPU and per strategy; the chosen strategy goes into the config too
            strategy, est = pick_multi_gpu(mc, t.max_length, free_gb, n, effective_batch=eff, lengths=lengths,
                                           steps=steps, r=cfg.lora.r)
            distributed.strategy = strategy
            return est
    return pick(mc, t.max_length, free_gb, eff, lengths, steps, cfg.lora.r)


def apply(cfg, est: Estimate):
    """Put a preset into a RunConfig (in place; returned for chaining)."""
    cfg.model.load_in_4bit = est.load_in_4bit
    cfg.train.per_device_train_batch_size = est.micro_batch
    cfg.train.gradient_accumulation_steps = est.grad_accum
    cfg.lora.use_gradient_checkpointing = est.gradient_checkpointing
    return cfg


# What describe() says -> (English, Korean); studio/ui/i18n.py takes them in.
MESSAGES = {
    "fit_no_gpu": ("No GPU here: the fit-to-GPU preset needs one (on CPU the bundled defaults are already right).",
                   "GPU가 없습니다: 이 기능은 GPU가 필요합니다(CPU에서는 내장 기본값이 이미 적절합니다)."),
    "fit_no_config": ("No estimate: the model's config.json is not available.",
                      "추정할 수 없습니다: 모델의 config.json이 없습니다."),
    "fit_planned": ("planned on {n} sampled rows of this dataset (mean {mean} tokens, longest {longest})",
                    "이 데이터셋에서 뽑은 {n}개 행 기준 (평균 {mean} 토큰, 최장 {longest})"),
    "fit_assumed": ("every row assumed {n} tokens long", "모든 행을 {n} 토큰으로 가정"),
    "fit_free": ("GPU free: {free} GiB · {planned}", "GPU 여유: {free} GiB · {planned}"),
    "fit_header": ("| | settings | est. peak GiB | worst case GiB | est. speed |",
                   "| | 설정 | 예상 최대 GiB | 최악의 경우 GiB | 예상 속도 |"),
    "fit_chapter": ("the chapter's settings", "교재 설정"),
    "fit_pick": ("fit to this GPU", "이 GPU에 맞춤"),
    "fit_none_fits": ("Even the chapter's settings may not fit: shorten max_length or free GPU memory.",
                      "교재 설정도 들어가지 않을 수 있습니다: max_length를 줄이거나 GPU 메모리를 비우세요."),
}


def describe(cfg, free_gb: float | None = None, lengths: list[int] | None = None, say=None) -> str:
    """Markdown for the Train tab: the chapter's settings and the preset, with their estimates.
    `say(key, **fields)` words it (the UI passes its translations; English by default)."""
    say = say or (lambda key, **kw: MESSAGES[key][0].format(**kw))
    mc = model_config_for(cfg.model.name)
    if mc is None:
        return say("fit_no_config")
    free_gb = free_gpu_gb() if free_gb is None else free_gb
    if free_gb is None:
        return say("fit_no_gpu")
    t = cfg.train
    steps = t.max_steps if t.max_steps > 0 else 60
    rec = recipe_estimate(mc, t.max_length, free_gb, lengths, steps, cfg.lora.r)
    best = pick_for_run(cfg, free_gb, lengths)
    rows = [(say("fit_chapter"), rec), (say("fit_pick"), best)]
    planned = say("fit_planned", n=len(lengths), mean=f"{sum(lengths) / len(lengths):,.0f}",
                  longest=f"{max(lengths):,}") if lengths else say("fit_assumed", n=t.max_length)
    lines = [say("fit_free", free=f"{free_gb:.1f}", planned=planned), "", say("fit_header"),
             "| --- | --- | --- | --- | --- |"]
    for name, e in rows:
        lines.append(f"| {name} | {e.label} | {e.peak_gb:.1f} | {e.worst_gb:.1f} | {e.tokens_per_s_rel:.1f}x |")
    if not best.fits:
        lines += ["", say("fit_none_fits")]
    return "\n".join(lines)


def dataset_lengths(cfg, token: str | None = None, user=None, n: int = 256) -> list[int] | None:
    """Token lengths of a seeded sample of the run's own rows (template + EOS), or None if they cannot be read
    (then the estimate assumes every row is max_length long)."""
    from studio import data, prepare, templates
    try:
        ds = data.DATASETS.get(cfg.data.source, cfg.data.path, cfg.data.split, cfg.data.max_rows, token,
                               data.allowed_roots(getattr(user, "name", None)))
        tok = templates.TOKENIZERS.get(cfg.model.name, cfg.data.template, token)
        return prepare.sample_lengths(ds, tok, n=n, seed=cfg.train.seed)
    except Exception:  # offline Hub, a bad row: plan for the worst case instead
        return None


# ---------------------------------------------------------------- several GPUs (studio/distributed.py)
# Per-GPU peak of a run over N GPUs, from the one-GPU estimate above. The per-GPU micro-batch and
# accumulation stay what they are (the global batch is N times larger, as DDP does by default).
#   ddp:   every GPU holds what one GPU holds, plus DDP's gradient buckets (a flat fp32 copy of the LoRA
#          gradients, DDP_BUCKET_BYTES per LoRA param).
#   fsdp2: Unsloth's native FSDP2 (unsloth/models/fsdp2_perf.py plan_fsdp2_layout). If the whole model
#          takes at most FSDP2_FIT_FRACTION of one GPU, the frozen weights stay replicated (the "fit"
#          layout: one GPU's figure less the sharded part of the LoRA state). Otherwise every decoder block
#          is sharded: linear weights / N, plus FSDP2_GATHERED_BLOCKS blocks gathered at a time (the one
#          computing and the one prefetched), plus the root unit (embeddings, lm_head, norms) whole.
# Not yet calibrated on GPUs (bench/run_multi_gpu.sh measures it); the speed factors are assumptions.
DDP_BUCKET_BYTES = 4.0
FSDP2_FIT_FRACTION = 0.4       # Unsloth's UNSLOTH_FSDP2_FIT_FRACTION default
FSDP2_GATHERED_BLOCKS = 2
STRATEGY_EFFICIENCY = {"ddp": 0.95, "fsdp2-fit": 0.93, "fsdp2-sharded": 0.8}  # per-GPU speed vs one GPU


def fsdp2_shards_frozen(model_config: dict, load_in_4bit: bool, total_gb: float) -> bool:
    """Unsloth's layout rule: frozen weights are sharded only when the model exceeds 40% of one GPU."""
    return weights_gb(shape(model_config), load_in_4bit) > FSDP2_FIT_FRACTION * total_gb


def per_gpu_gb(single_gb: float, model_config: dict, load_in_4bit: bool, strategy: str, n_gpus: int,
               total_gb: float, r: int = 8) -> float:
    """Per-GPU peak GiB under `strategy` on n_gpus, from the one-GPU estimate `single_gb`."""
    s = shape(model_config)
    lora_state = s["lora_per_r"] * r * LORA_BYTES_PER_PARAM / GIB
    if n_gpus <= 1:
        return single_gb
    if strategy == "ddp":
        return single_gb + s["lora_per_r"] * r * DDP_BUCKET_BYTES / GIB
    if strategy != "fsdp2":
        raise ValueError(f"unknown strategy {strategy!r}")
    out = single_gb - lora_state * (1 - 1 / n_gpus)
    if fsdp2_shards_frozen(model_config, load_in_4bit, total_gb):
        per_param = NF4_BYTES if load_in_4bit else 2.0
        linear = s["linear"] * per_param / GIB
        block = linear / s["layers"]
        out += -linear + linear / n_gpus + min(FSDP2_GATHERED_BLOCKS, s["layers"]) * block
    return out


def candidates_multi_gpu(model_config: dict, max_length: int, free_gb: float, n_gpus: int, strategy: str,
                         total_gb: float | None = None, effective_batch: int = 8, lengths=None, steps: int = 60,
                         r: int = 8) -> list[Estimate]:
    """candidates() with per-GPU memory for `strategy` and the job's tokens/s (all GPUs), fastest first.
    free_gb: free memory of one GPU (the smallest); total_gb: its size (the FSDP2 layout rule), default free_gb."""
    total_gb = total_gb or free_gb
    out = []
    for e in candidates(model_config, max_length, free_gb, effective_batch, lengths, steps, r):
        peak = per_gpu_gb(e.peak_gb, model_config, e.load_in_4bit, strategy, n_gpus, total_gb, r)
        worst = per_gpu_gb(e.worst_gb, model_config, e.load_in_4bit, strategy, n_gpus, total_gb, r)
        key = strategy if strategy == "ddp" else (
            "fsdp2-sharded" if fsdp2_shards_frozen(model_config, e.load_in_4bit, total_gb) else "fsdp2-fit")
        eff = STRATEGY_EFFICIENCY[key] if n_gpus > 1 else 1.0
        out.append(Estimate(e.load_in_4bit, e.micro_batch, e.grad_accum, e.gradient_checkpointing, round(peak, 3),
                            round(worst, 3), round(e.tokens_per_s * n_gpus * eff, 1),
                            round(e.tokens_per_s_rel * n_gpus * eff, 3), worst <= usable_gb(free_gb)))
    out.sort(key=lambda e: (-e.tokens_per_s, e.worst_gb))
    return out


def pick_multi_gpu(model_config: dict, max_length: int, free_gb: float, n_gpus: int,
                   strategies=("ddp", "fsdp2"), total_gb: float | None = None, effective_batch: int = 8,
                   lengths=None, steps: int = 60, r: int = 8) -> tuple[str, Estimate]:
    """The fastest (strategy, setting) that fits on every GPU; ties go to the first strategy listed (DDP:
    fewer collectives). Nothing fits: FSDP2's smallest setting, fits=False."""
    best = None
    for strategy in strategies:
        for e in candidates_multi_gpu(model_config, max_length, free_gb, n_gpus, strategy, total_gb,
                                      effective_batch, lengths, steps, r):
            if e.fits and (best is None or e.tokens_per_s > best[1].tokens_per_s):
                best = (strategy, e)
            if e.fits:
                break  # candidates are fastest first
    if best is not None:
        return best
    last = strategies[-1]
    return last, min(candidates_multi_gpu(model_config, max_length, free_gb, n_gpus, last, total_gb,
                                          effective_batch, lengths, steps, r), key=lambda e: e.worst_gb)
