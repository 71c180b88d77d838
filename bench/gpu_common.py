"""Shared helpers of the GPU benchmarks (bench/gpu_*.py): random-init models of the real Qwen3
shapes, synthetic chat rows, one definition of "steady tokens/s", and result tables.

Steady tokens/s, the same in every benchmark: non-padding training tokens (the trainer's
include_num_input_tokens_seen="non_padding" count: attention_mask.sum() when the batch has one,
else input_ids != pad) between the end of optimizer step `warmup` and the end of the last step,
over the wall-clock time between those two log events. Every log event comes after the loss
was read back (logging_steps=1), so the GPU has finished the step when its time is taken.

Nothing here imports unsloth (the plain transformers + PEFT benchmark uses it too).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKENIZER_SRC = REPO / "assets" / "tiny-qwen3"  # Qwen3's special tokens, small BPE vocab
GIB = 1024 ** 3

# The real configs (Qwen/Qwen3-4B, Qwen/Qwen3-0.6B config.json), weights random.
SHAPES = {
    "qwen3-4b": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
                     max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
                       max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    "qwen3-8b": dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=False,
                     max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
    # CPU smoke tests of the benchmark plumbing only
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32, vocab_size=4096, tie_word_embeddings=True,
                 max_position_embeddings=4096, rope_theta=1_000_000.0, rms_norm_eps=1e-6),
}

# The chapter's recipe (studio.config.chapter_recipe), as the bare scripts spell it out.
RECIPE = dict(load_in_4bit=True, r=8, lora_alpha=8, lora_dropout=0.0, gc="unsloth", micro_batch=2, accum=4,
              optim="adamw_8bit", lr=2e-4, schedule="linear", warmup_steps=5, max_length=2048, weight_decay=0.01,
              seed=3407, random_state=2025,
              targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
INSTRUCTION_PART, RESPONSE_PART = "<|im_start|>user\n", "<|im_start|>assistant\n"


# ---------------------------------------------------------------- models

def build_model(shape: str, out_dir: Path, device: str | None = None) -> Path:
    """A random-init Qwen3ForCausalLM of `shape` in bf16, saved with the bundled tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and list(out_dir.glob("*.safetensors")):
        return out_dir
    tok = AutoTokenizer.from_pretrained(TOKENIZER_SRC)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    dims = SHAPES[shape]
    cfg = Qwen3Config(**dims, hidden_act="silu", attention_bias=False, attention_dropout=0.0, use_cache=True,
                      bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, use_sliding_window=False,
                      max_window_layers=dims["num_hidden_layers"], initializer_range=0.02)
    cfg.architectures = ["Qwen3ForCausalLM"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = Qwen3ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.config.dtype = torch.bfloat16
    n = sum(p.numel() for p in model.parameters())
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    print(f"built {shape}: {n / 1e9:.3f} B params, bf16, in {time.time() - t0:.1f}s -> {out_dir}", flush=True)
    return out_dir


# ---------------------------------------------------------------- data

def _words(tokenizer) -> list[str]:
    """Vocabulary entries that are one token each as ' word' (byte-level BPE: 'Ġword')."""
    words = sorted(k[1:] for k in tokenizer.get_vocab() if k.startswith("Ġ") and k[1:].isascii()
                   and k[1:].isalpha() and k[1:].islower() and len(k) > 2)
    if len(words) < 50:
        raise RuntimeError("tokenizer has too few whole-word tokens for synthetic text")
    return words


def chat_lengths(n: int = 256, lo: int = 128, hi: int = 1536, seed: int = 0) -> list[int]:
    """Target token lengths of the synthetic rows (rendered with the qwen-3 template)."""
    rng = random.Random(seed)
    return [rng.randint(lo, hi) for _ in range(n)]


# Tokens the qwen-3 template adds around one user + one assistant turn:
# <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n ... <|im_end|>\n
TEMPLATE_OVERHEAD = 16


def make_rows(tokenizer, n: int = 256, lo: int = 128, hi: int = 1536, seed: int = 0) -> list[dict]:
    """ShareGPT rows whose rendered length (qwen-3 template) is uniform in [lo, hi] tokens; deterministic."""
    words = _words(tokenizer)
    rng = random.Random(seed + 1)
    rows = []
    for total in chat_lengths(n, lo, hi, seed):
        body = max(8, total - TEMPLATE_OVERHEAD)
        user = max(4, int(body * rng.uniform(0.15, 0.45)))
        u = [rng.choice(words) for _ in range(user)]
        g = [rng.choice(words) for _ in range(body - user)]
        row = {"conversations": [{"from": "human", "value": " ".join(u)}, {"from": "gpt", "value": " ".join(g)}]}
        got = len(tokenizer(render_qwen3(row["conversations"]), add_special_tokens=False).input_ids)
        if got != total:  # one correction pass on the answer's length
            g = g[:max(4, len(g) + total - got)] if got > total else g + [rng.choice(words) for _ in range(total - got)]
            row["conversations"][1]["value"] = " ".join(g)
        rows.append(row)
    return rows


def render_qwen3(conversations: list[dict]) -> str:
    """The text Unsloth's get_chat_template(tok, "qwen-3") renders for a ShareGPT row (checked on CPU
    against Unsloth's own template by bench/gpu_common.py --check); for the no-Unsloth benchmark."""
    role = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
    out = []
    for turn in conversations:
        r = role[turn["from"]]
        content = turn["value"]
        if r == "assistant":
            content = "<think>\n\n</think>\n\n" + content
        out.append(f"<|im_start|>{r}\n{content}<|im_end|>\n")
    return "".join(out)


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def token_lengths(tokenizer, rows: list[dict], max_length: int = 2048) -> list[int]:
    return [min(max_length, len(tokenizer(render_qwen3(r["conversations"]), add_special_tokens=False).input_ids))
            for r in rows]


# ---------------------------------------------------------------- measuring

def non_padding_tokens(batch: dict, pad_id) -> int:
    """The trainer's "non_padding" count, on the CPU batch (no device sync)."""
    if "chosen_attention_mask" in batch:  # ORPO: prompt + chosen and prompt + rejected (the studio counts the same)
        return int(batch["chosen_attention_mask"].sum() + batch["rejected_attention_mask"].sum())
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    ids = batch["input_ids"]
    return int((ids != pad_id).sum()) if pad_id is not None else int(ids.numel())


class CpuTokenCounter:
    """Counts non-padding tokens of each micro-batch as the collator makes it, on the CPU, and credits
    them when the trainer consumes that micro-batch (training_step): the count at a log event is
    exactly the tokens of the steps done, like state.num_input_tokens_seen, without its GPU sync."""

    def __init__(self, trainer, pad_id):
        self.pending: list[tuple[int, int]] = []  # (tokens, micro-batch shape numel) in collation order
        self.seen = 0
        self.micro = []  # tokens of every consumed micro-batch (the memory estimate needs the largest)
        collate, step = trainer.data_collator, trainer.training_step

        def counting_collator(features):
            batch = collate(features)
            self.pending.append(non_padding_tokens(batch, pad_id))
            return batch

        def counting_step(*args, **kwargs):
            tokens = self.pending.pop(0) if self.pending else 0
            self.seen += tokens
            self.micro.append(tokens)
            return step(*args, **kwargs)

        trainer.data_collator = counting_collator
        trainer.training_step = counting_step


def recorder_callback(token_source):
    """A TrainerCallback recording (step, time, tokens, loss, peak reserved) at every log event."""
    import torch
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "train_loss" in logs and "loss" not in logs:
                return
            self.logs.append({"step": state.global_step, "time": time.time(), "tokens": token_source(state),
                              "loss": logs.get("loss"),
                              "peak_reserved_gb": torch.cuda.max_memory_reserved() / GIB
                              if torch.cuda.is_available() else None})
    return Recorder()


def steady(logs: list[dict], warmup: int, time_key: str = "time", tokens_key: str = "tokens") -> dict:
    """Steady figures from log events (one per optimizer step): tokens/s and s/step after `warmup` steps."""
    logs = sorted((e for e in logs if e.get(tokens_key) is not None), key=lambda e: e["step"])
    after = [e for e in logs if e["step"] >= warmup]
    if len(after) < 2:
        raise ValueError(f"too few log events after warm-up ({len(after)})")
    a, b = after[0], after[-1]
    dt = b[time_key] - a[time_key]
    dtok = b[tokens_key] - a[tokens_key]
    steps = b["step"] - a["step"]
    return {"tokens_per_s": dtok / dt, "s_per_step": dt / steps, "measured_steps": steps,
            "measured_tokens": dtok, "tokens_per_step": dtok / steps}


def versions() -> dict:
    import importlib.metadata as md
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "datasets", "unsloth",
                 "unsloth_zoo", "triton"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    try:
        import torch
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            out["gpu"] = p.name
            out["gpu_total_gib"] = round(p.total_memory / GIB, 2)
            out["cuda"] = torch.version.cuda
    except Exception:
        pass
    return out


def save_result(result: dict, path) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1), encoding="utf-8")


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Markdown table; columns are (key, header, format)."""
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    lines = [head, sep]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("-" if v is None else (format(v, fmt) if fmt else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


RESULT_COLUMNS = [("name", "benchmark", ""), ("tokens_per_s", "steady tokens/s", ",.0f"),
                  ("s_per_step", "s/step", ".3f"), ("peak_reserved_gb", "peak reserved GiB", ".2f"),
                  ("peak_alloc_gb", "peak allocated GiB", ".2f"), ("tokens_per_step", "tokens/step", ",.0f"),
                  ("measured_steps", "measured steps", "d"), ("wall_s", "process wall s", ".0f")]


def prepare(out_root: Path, shapes=("qwen3-4b", "qwen3-0.6b"), rows: int = 256) -> dict:
    """Models under out_root/<shape>, and the synthetic data set out_root/chat.jsonl."""
    from transformers import AutoTokenizer
    out_root = Path(out_root)
    paths = {s: str(build_model(s, out_root / s)) for s in shapes}
    tok = AutoTokenizer.from_pretrained(TOKENIZER_SRC)
    data = out_root / "chat.jsonl"
    rows_ = make_rows(tok, rows)
    write_jsonl(rows_, data)
    lens = token_lengths(tok, rows_)
    print(f"data: {len(rows_)} rows -> {data}; rendered tokens min {min(lens)} mean {sum(lens) / len(lens):.0f} "
          f"max {max(lens)}", flush=True)
    return {"models": paths, "data": str(data), "lengths": lens}


def check_render() -> None:
    """CPU check: render_qwen3 == Unsloth's qwen-3 template; TEMPLATE_OVERHEAD is right."""
    import unsloth  # noqa: F401
    from transformers import AutoTokenizer
    from unsloth.chat_templates import get_chat_template
    from studio import data as data_mod, templates
    tok = get_chat_template(AutoTokenizer.from_pretrained(TOKENIZER_SRC), chat_template="qwen-3")
    rows = make_rows(tok, 16)
    for row in rows:
        conv = data_mod.standardize_row(row, data_mod.Dataset("x", [row], "sharegpt", "conversations"), 0)
        ours, theirs = render_qwen3(row["conversations"]), templates.render(tok, conv)
        assert ours == theirs, (ours[:200], theirs[:200])
    lens = token_lengths(tok, rows)
    want = chat_lengths(16)
    print("render check ok; lengths", list(zip(want, lens))[:6])
    assert all(abs(a - b) <= 3 for a, b in zip(want, lens)), list(zip(want, lens))


def summary(results_dir) -> None:
    """Benchmarks 1-3 (and repeats) side by side, with the targets."""
    res = {}
    for p in sorted(Path(results_dir).glob("bench*.json")):
        res[p.stem] = json.loads(p.read_text())
    rows = [r for r in res.values() if "tokens_per_s" in r]
    for r in rows:
        r.setdefault("peak_alloc_gb", None)
    print(table(rows, RESULT_COLUMNS))
    checks = []
    pairs = [("bench1", "bench2"), ("bench1_rep", "bench2_rep"), ("bench1_rep", "bench2_fix")]
    pairs += [(f"bench1_r{n}", f"bench2_fix_r{n}") for n in range(2, 10)]
    pairs += [(f"bench1_d{n}", f"bench2_d{n}") for n in range(1, 10)]
    for b1, b2 in pairs:
        if b1 in res and b2 in res and "tokens_per_s" in res[b1] and "tokens_per_s" in res[b2]:
            x, y = res[b1], res[b2]
            px, py = x.get("peak_reserved_gb"), y.get("peak_reserved_gb")
            peak = f"peak {py:.3f} vs {px:.3f} GiB (diff {py - px:+.3f}, target within 0.2)" if px and py else "no peak"
            checks.append(f"studio/bare tokens/s ({b2}/{b1}): {y['tokens_per_s'] / x['tokens_per_s']:.4f} "
                          f"(target >= 0.97); {peak}; "
                          f"same tokens/step: {abs(y['tokens_per_step'] - x['tokens_per_step']) < 0.5}")
    if "bench1" in res and "bench3" in res and "tokens_per_s" in res["bench3"]:
        checks.append(f"bare/hf_peft tokens/s: {res['bench1']['tokens_per_s'] / res['bench3']['tokens_per_s']:.2f} "
                      f"(target >= 1.7)")
    print("\n".join(checks))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="build the benchmark models and data")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_TMP", "/tmp/studio-bench")))
    ap.add_argument("--shapes", nargs="+", default=["qwen3-4b", "qwen3-0.6b"])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--check", action="store_true", help="CPU check of the template rendering")
    ap.add_argument("--summary", type=Path, default=None, help="print the table of benchmarks 1-3 in this folder")
    a = ap.parse_args()
    if a.summary:
        summary(a.summary)
    elif a.check:
        sys.path.insert(0, str(REPO))
        check_render()
    else:
        print(json.dumps({k: v for k, v in prepare(a.out, a.shapes, a.rows).items() if k != "lengths"}))
