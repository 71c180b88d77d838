"""Chat speed: one stream, warm, greedy, N new tokens after a ~100-token chat prompt, on a random-init model
of a real shape (bench/gpu_common.py builds it). One markdown table: tokens/s, time to first token, peak memory.

    python3 bench/gpu_chat.py                        # Qwen3-4B shape, every case, <= --budget-s seconds in all
    python3 bench/gpu_chat.py --shape tiny           # CPU smoke test of the whole script (bundled tokenizer)
    python3 bench/gpu_chat.py --cases studio unsloth4 --new-tokens 128

Cases (each in its own process on a GPU, so peak memory and Unsloth's class patches stay per case):
  unsloth4     bare Unsloth: FastLanguageModel.from_pretrained(load_in_4bit=True) + for_inference + generate
  unsloth16    the same in 16 bits
  hf16         plain transformers bf16 + generate (no Unsloth in the process)
  studio       studio.chat.load_model on the 16-bit model: studio.fastgen.FastDecoder (static KV cache +
               CUDA-graph decode step), timed at the decoder; a second row times studio.chat.answer (text)
  studio_lora  a run with a random LoRA adapter trained "in 4 bits", chatted with its 16-bit merge (the Chat
               tab's "16-bit chat" box): the 16-bit base, the adapter merged, FastDecoder
  studio4      FastDecoder straight on the 4-bit Unsloth model (graphs over bitsandbytes layers)
  studio_modules  FastDecoder through the model's own modules (lean=False: the step before the lean one)
  unsloth16g   bare Unsloth 16-bit with UNSLOTH_DECODE_CUDA_GRAPHS=1 (Unsloth's own graphed decode; not default)
  hf16c        transformers bf16, static KV cache + torch.compile(mode="reduce-overhead") (its documented fast
               path; the first calls compile, then warm runs are timed; no time to first token)

The limit: one token reads every weight once, so tokens/s <= HBM bandwidth / weight bytes (H100 SXM 3.35 TB/s,
H200 4.8 TB/s); "% of limit" is each case against it.

tokens/s = new tokens / wall time of the whole call (prefill included), median of --repeats warm runs.
TTFT = time to the first token: generate(max_new_tokens=1) for the generate cases, the stream's first token
for the studio cases. Peak memory: torch.cuda.max_memory_allocated over the case's process (load included).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.time()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import gpu_common as C  # noqa: E402  (imports no unsloth, no CUDA)

ALL_CASES = ["studio", "unsloth4", "unsloth16", "hf16", "studio_lora", "studio4", "unsloth16g", "studio_modules",
             "hf16c"]
DEFAULT_CASES = ["studio", "unsloth4", "unsloth16", "hf16", "studio_lora", "studio4"]
LABELS = {
    "unsloth4": "bare Unsloth 4-bit generate",
    "unsloth16": "bare Unsloth 16-bit generate",
    "unsloth16g": "bare Unsloth 16-bit generate, UNSLOTH_DECODE_CUDA_GRAPHS=1",
    "hf16": "plain transformers bf16 generate",
    "studio": "studio FastDecoder (16-bit)",
    "studio_chat": "studio chat.answer (text, 16-bit)",
    "studio_lora": "studio chat, LoRA merged into 16-bit",
    "studio4": "studio FastDecoder on the 4-bit model",
    "studio_modules": "studio FastDecoder, module forwards (before the lean step)",
    "hf16c": "transformers bf16, static cache + torch.compile",
}
HBM_TB_S = {"H100": 3.35, "H200": 4.8}  # by the GPU's name
CASE_LIMIT_S = 150  # one case: process start, imports, load, warm-up, timed runs
NEED_S = {"studio": 60, "unsloth4": 45, "unsloth16": 40, "unsloth16g": 45, "hf16": 45, "studio_lora": 60,
          "studio4": 45, "studio_modules": 45, "hf16c": 150}
CASE_LIMIT = {"hf16c": 300, "studio": 200, "studio_lora": 200}
COLUMNS = [("label", "case", ""), ("tokens_per_s", "tokens/s", ".1f"), ("x_unsloth4", "x bare Unsloth 4-bit", ".2f"),
           ("x_unsloth16", "x bare Unsloth 16-bit", ".2f"), ("decode_tokens_per_s", "decode-only tokens/s", ".1f"),
           ("ttft_s", "first token s", ".3f"), ("pct_limit", "% of limit", ".0f"),
           ("peak_alloc_gib", "peak alloc GiB", ".2f"), ("peak_reserved_gib", "peak reserved GiB", ".2f"),
           ("load_s", "load s", ".1f"), ("note", "note", "")]


# ---------------------------------------------------------------- shared by the cases

def prompt_ids(tokenizer, n_tokens: int) -> list[int]:
    """A ~n_tokens qwen-3 chat prompt (one user turn + the assistant header), deterministic."""
    import random
    words = C._words(tokenizer)
    rng = random.Random(7)
    user = " ".join(rng.choice(words) for _ in range(max(4, n_tokens - 8)))
    text = C.render_qwen3([{"from": "human", "value": user}]) + "<|im_start|>assistant\n"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return ids


def messages_for(tokenizer, n_tokens: int) -> list[dict]:
    import random
    words = C._words(tokenizer)
    rng = random.Random(7)
    return [{"role": "user", "content": " ".join(rng.choice(words) for _ in range(max(4, n_tokens - 8)))}]


def device():
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def memory() -> dict:
    import torch
    if not torch.cuda.is_available():
        return {}
    return {"peak_alloc_gib": torch.cuda.max_memory_allocated() / C.GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / C.GIB}


def time_generate(model, ids: list[int], new_tokens: int, repeats: int) -> dict:
    """model.generate, greedy, exactly new_tokens (min_new_tokens = max_new_tokens): warm-up, then timed."""
    import torch
    dev = next(model.parameters()).device
    x = torch.tensor([ids], device=dev)
    kw = dict(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, use_cache=True,
              pad_token_id=model.generation_config.pad_token_id or 0)
    with torch.inference_mode():
        model.generate(**kw, max_new_tokens=16, min_new_tokens=16)  # warm-up
        ttft = []
        for _ in range(3):
            sync()
            t = time.perf_counter()
            model.generate(**kw, max_new_tokens=1, min_new_tokens=1)
            sync()
            ttft.append(time.perf_counter() - t)
        rates, out = [], None
        for _ in range(repeats):
            sync()
            t = time.perf_counter()
            out = model.generate(**kw, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
            sync()
            n = out.shape[1] - x.shape[1]
            rates.append(n / (time.perf_counter() - t))
    return {"tokens_per_s": statistics.median(rates), "runs": [round(r, 2) for r in rates],
            "ttft_s": statistics.median(ttft), "tokens": int(n), "first_tokens": out[0, x.shape[1]:].tolist()[:64]}


def time_decoder(decoder, ids: list[int], new_tokens: int, repeats: int) -> dict:
    decoder.generate(ids, 16)  # warm-up
    rates, ttft, tokens = [], [], []
    for _ in range(repeats):
        tokens = decoder.generate(ids, new_tokens, eos_token_ids=())
        s = decoder.last_stats
        rates.append(s.tokens_per_s)
        ttft.append(s.ttft_s)
    return {"tokens_per_s": statistics.median(rates), "runs": [round(r, 2) for r in rates],
            "ttft_s": statistics.median(ttft), "tokens": len(tokens), "path": decoder.path,
            "decode_tokens_per_s": decoder.last_stats.decode_tokens_per_s, "first_tokens": tokens[:64]}


def agreement(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ---------------------------------------------------------------- the cases (run in a child process on a GPU)

def case_generate(name: str, model_dir: str, a) -> dict:
    four_bit = name == "unsloth4"
    if name == "unsloth16g":
        os.environ["UNSLOTH_DECODE_CUDA_GRAPHS"] = "1"
    t0 = time.time()
    if name == "hf16":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map=device())
        model.eval()
        tok = AutoTokenizer.from_pretrained(model_dir)
        note = "no unsloth imported"
    else:
        import unsloth  # noqa: F401
        import torch
        from unsloth import FastLanguageModel
        four_bit = four_bit and torch.cuda.is_available()
        model, tok = FastLanguageModel.from_pretrained(model_dir, max_seq_length=2048, load_in_4bit=four_bit)
        FastLanguageModel.for_inference(model)
        note = "4-bit" if four_bit else ("16-bit" + (" (CPU: no 4-bit)" if name == "unsloth4" else ""))
    load_s = time.time() - t0
    ids = prompt_ids(tok, a.prompt_tokens)
    r = time_generate(model, ids, a.new_tokens, a.repeats)
    r.update(memory(), load_s=load_s, note=note, prompt_tokens=len(ids))
    return r


def case_studio(name: str, model_dir: str, a) -> list[dict]:
    import unsloth  # noqa: F401
    import torch
    from studio.chat import BaseTarget, RunTarget, answer, load_model
    t0 = time.time()
    if name == "studio_lora":
        run_id = make_lora_run(model_dir, Path(a.work) / "runs")
        loaded = load_model(RunTarget(Path(a.work) / "runs" / run_id, fast16=True))
    elif name == "studio_modules":
        os.environ["STUDIO_FAST_CHAT"] = "0"  # load without a decoder; make the module-forward one below
        loaded = load_model(BaseTarget(model_dir, max_seq_length=2048, load_in_4bit=False))
        from studio import fastgen
        loaded.decoder = fastgen.FastDecoder(loaded.model, max_cache_len=4096, lean=False,
                                             require_cuda_graph=torch.cuda.is_available())
    else:
        loaded = load_model(BaseTarget(model_dir, max_seq_length=2048, load_in_4bit=False))
    load_s = time.time() - t0
    dec = loaded.decoder
    if dec is None:
        raise RuntimeError(f"no fast path: {loaded.fast_reason}")
    tok = loaded.tokenizer
    ids = prompt_ids(tok, a.prompt_tokens)
    r = time_decoder(dec, ids, a.new_tokens, a.repeats)
    merged = "PeftModel" not in type(loaded.model).__name__ and not hasattr(loaded.model, "peft_config")
    note = f"{r['path']}, buckets {dec.buckets[0]}..{dec.buckets[-1]}, " + \
        ("lean step, compiled" if dec.compiled else "lean step" if dec.lean is not None else "module forwards")
    if name == "studio_lora":
        note += ", adapter merged" if merged else ", adapter NOT merged"
    # the same prompt through model.generate on this very model: how far the greedy tokens agree
    # (random weights make near-ties common, so bf16 rounding differences can part them early)
    with torch.inference_mode():
        x = torch.tensor([ids], device=dec.device)
        ref = loaded.model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False,
                                    max_new_tokens=32, min_new_tokens=32, pad_token_id=0)[0, len(ids):].tolist()
    note += f", greedy = generate for {agreement(ref, r['first_tokens'])}/32 tokens"
    check = dec.compare_with_model(ids + r["first_tokens"][:8])  # a decode step vs the model's forward
    note += f", step logits vs model forward: rel diff {check['rel_diff']:.2g}, same argmax {check['same_argmax']}"
    r["logits_rel_diff"] = check["rel_diff"]
    r.update(memory(), load_s=load_s, note=note, prompt_tokens=len(ids), case=name)
    rows = [r]
    if name == "studio":  # the Chat tab's path: messages -> template -> decoder -> text
        msgs = messages_for(tok, a.prompt_tokens)
        list(answer(loaded, msgs, max_new_tokens=16))  # warm-up
        rates, ttft = [], []
        for _ in range(a.repeats):
            s = {}
            list(answer(loaded, msgs, max_new_tokens=a.new_tokens, stats=s))
            rates.append(s["tokens_per_s"])
            ttft.append(s["ttft_s"])
        rows.append({"case": "studio_chat", "tokens_per_s": statistics.median(rates),
                     "runs": [round(x, 2) for x in rates], "ttft_s": statistics.median(ttft), **memory(),
                     "decode_tokens_per_s": s.get("decode_tokens_per_s"),
                     "tokens": s["tokens"], "note": f"{s['path']}, {s['prompt_tokens']}-token prompt, "
                                                    f"stopped: {s.get('stopped', '')}"})
    return rows


def case_studio4(model_dir: str, a) -> dict:
    import unsloth  # noqa: F401
    import torch
    from unsloth import FastLanguageModel
    from studio import fastgen
    t0 = time.time()
    four_bit = torch.cuda.is_available()
    model, tok = FastLanguageModel.from_pretrained(model_dir, max_seq_length=2048, load_in_4bit=four_bit)
    FastLanguageModel.for_inference(model)
    dec = fastgen.FastDecoder(model, max_cache_len=4096, require_cuda_graph=torch.cuda.is_available())
    load_s = time.time() - t0
    ids = prompt_ids(tok, a.prompt_tokens)
    r = time_decoder(dec, ids, a.new_tokens, a.repeats)
    check = dec.compare_with_model(ids + r["first_tokens"][:8])
    r.update(memory(), load_s=load_s, prompt_tokens=len(ids), logits_rel_diff=check["rel_diff"],
             note=f"{r['path']}, " + ("4-bit" if four_bit else "16-bit (CPU: no 4-bit)") +
             f", step logits vs model forward: rel diff {check['rel_diff']:.2g}, same argmax {check['same_argmax']}")
    return r


def make_lora_run(model_dir: str, runs_dir: Path) -> str:
    """A run folder as the worker leaves it: config.yaml (trained in 4 bits) + adapter/ with a random LoRA
    adapter (both matrices random, so merging changes every target weight). Built on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from studio.config import RunConfig
    run_id = "bench-lora"
    run_dir = runs_dir / run_id
    adapter = run_dir / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    cfg = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(cfg)
    lcfg = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=C.RECIPE["targets"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(skeleton, lcfg)
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=gen) * 0.01).to(torch.bfloat16)
             for k, v in get_peft_model_state_dict(peft_model).items()}
    save_file(state, str(adapter / "adapter_model.safetensors"))
    lcfg.base_model_name_or_path = model_dir
    lcfg.save_pretrained(str(adapter))
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(str(adapter))
    rc = RunConfig()
    rc.model.name, rc.model.load_in_4bit, rc.model.max_seq_length = model_dir, True, 2048
    rc.save(run_dir / "config.yaml")
    return run_id


def case_hf_compiled(model_dir: str, a) -> dict:
    """transformers' own fast path: a static KV cache and the forward compiled with CUDA graphs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map=device()).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model.generation_config.cache_implementation = "static"
    model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    ids = prompt_ids(tok, a.prompt_tokens)
    x = torch.tensor([ids], device=device())
    kw = dict(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, pad_token_id=0,
              max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens)
    with torch.inference_mode():
        for _ in range(2):  # the compiles (prefill and decode shapes), then the graphs' capture
            model.generate(**kw)
        load_s = time.time() - t0
        rates = []
        for _ in range(a.repeats):
            sync()
            t = time.perf_counter()
            out = model.generate(**kw)
            sync()
            rates.append((out.shape[1] - x.shape[1]) / (time.perf_counter() - t))
    return {"tokens_per_s": statistics.median(rates), "runs": [round(r, 2) for r in rates], "load_s": load_s,
            "tokens": int(out.shape[1] - x.shape[1]), "prompt_tokens": len(ids), **memory(),
            "note": "load_s includes the two compiling calls"}


def bandwidth_limit(model_dir: str, gpu: str) -> float | None:
    """tokens/s if every decode step only read the 16-bit weights once at the card's HBM bandwidth."""
    tb_s = next((v for k, v in HBM_TB_S.items() if k in gpu), None)
    if not tb_s:
        return None
    weights = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
    return tb_s * 1e12 / weights if weights else None


def run_case(name: str, model_dir: str, a) -> list[dict]:
    if name == "hf16c":
        rows = [case_hf_compiled(model_dir, a)]
    elif name in ("unsloth4", "unsloth16", "unsloth16g", "hf16"):
        rows = [case_generate(name, model_dir, a)]
    elif name in ("studio", "studio_lora", "studio_modules"):
        rows = case_studio(name, model_dir, a)
    elif name == "studio4":
        rows = [case_studio4(model_dir, a)]
    else:
        raise ValueError(f"unknown case {name}")
    for r in rows:
        r.setdefault("case", name)
    return rows


# ---------------------------------------------------------------- orchestration

def env_info() -> dict:
    info = C.versions()
    info["python"] = sys.version.split()[0]
    return info


def child(a) -> int:
    """--child CASE: one case, its rows as JSON on the last line of stdout."""
    try:
        rows = run_case(a.child, a.model_dir, a)
        out = {"rows": rows, "env": env_info()}
    except Exception as exc:
        import traceback
        traceback.print_exc()
        out = {"rows": [{"case": a.child, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}], "env": env_info()}
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def build(a) -> str:
    model_dir = Path(a.models) / a.shape
    if (model_dir / "config.json").is_file() and list(model_dir.glob("*.safetensors")):
        return str(model_dir)
    if a.isolate:  # in a child, so this process never holds GPU memory
        code = "import sys; from bench import gpu_common as C; C.build_model(sys.argv[1], sys.argv[2])"
        subprocess.run([sys.executable, "-c", code, a.shape, str(model_dir)], check=True, cwd=str(REPO),
                       timeout=max(30, a.deadline - time.time()))
    else:
        C.build_model(a.shape, model_dir)
    return str(model_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="qwen3-4b", choices=sorted(C.SHAPES))
    ap.add_argument("--cases", nargs="+", default=None, choices=ALL_CASES, help=f"default: {' '.join(DEFAULT_CASES)}")
    ap.add_argument("--new-tokens", type=int, default=None, help="default 256 (tiny: 32)")
    ap.add_argument("--prompt-tokens", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per case after one warm-up (median); "
                                                                "default 2 (tiny: 1)")
    ap.add_argument("--budget-s", type=float, default=360, help="all of it, model build included")
    ap.add_argument("--models", default=os.environ.get("BENCH_TMP", "/tmp/studio-bench"))
    ap.add_argument("--isolate", choices=["auto", "yes", "no"], default="auto",
                    help="each case in its own process (auto: on a GPU)")
    ap.add_argument("--json", default="", help="also write every row here")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--work", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    tiny = a.shape == "tiny"
    a.new_tokens = a.new_tokens or (32 if tiny else 256)
    a.repeats = a.repeats or (1 if tiny else 2)
    if a.child:
        return child(a)
    import torch  # no CUDA initialised here: cases measure their own memory
    on_gpu = torch.cuda.is_available()
    a.isolate = {"yes": True, "no": False}.get(a.isolate, on_gpu)
    a.deadline = T_START + a.budget_s
    cases = a.cases or DEFAULT_CASES
    a.work = a.work or tempfile.mkdtemp(prefix="gpu-chat-")
    print(f"# chat speed: shape {a.shape}, {a.new_tokens} new tokens, ~{a.prompt_tokens}-token prompt, greedy, "
          f"one stream, median of {a.repeats} warm runs; cases {' '.join(cases)}", flush=True)
    t = time.time()
    a.model_dir = build(a)
    print(f"# model: {a.model_dir} (ready in {time.time() - t:.1f}s)", flush=True)
    rows, env = [], None
    for name in cases:
        left = a.deadline - time.time()
        need = NEED_S.get(name, 45) if on_gpu else 5
        if left < need:
            rows.append({"case": name, "error": f"skipped: {left:.0f}s of the budget left, needs ~{need}s"})
            print(f"# {name}: skipped ({left:.0f}s left)", flush=True)
            continue
        t = time.time()
        if a.isolate:
            cmd = [sys.executable, __file__, "--child", name, "--model-dir", a.model_dir, "--work", a.work,
                   "--new-tokens", str(a.new_tokens), "--prompt-tokens", str(a.prompt_tokens),
                   "--repeats", str(a.repeats)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=min(left - 3, CASE_LIMIT.get(name, CASE_LIMIT_S)), cwd=str(REPO))
                result = next((json.loads(line[7:]) for line in reversed(proc.stdout.splitlines())
                               if line.startswith("RESULT ")), None)
                if result is None:
                    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
                    result = {"rows": [{"case": name, "error": f"exit {proc.returncode}: " + " / ".join(tail)[-600:]}]}
                elif any("error" in r for r in result["rows"]):
                    print("\n".join(proc.stderr.strip().splitlines()[-20:]), flush=True)
            except subprocess.TimeoutExpired:
                result = {"rows": [{"case": name, "error": f"timed out after {min(left - 3, CASE_LIMIT_S):.0f}s"}]}
        else:
            try:
                result = {"rows": run_case(name, a.model_dir, a), "env": None}
            except Exception as exc:
                import traceback
                traceback.print_exc()
                result = {"rows": [{"case": name, "error": f"{type(exc).__name__}: {exc}"}]}
        env = env or result.get("env")
        for r in result["rows"]:
            r["wall_s"] = time.time() - t
            rows.append(r)
            brief = {k: r.get(k) for k in ("tokens_per_s", "ttft_s", "peak_alloc_gib", "error") if r.get(k) is not None}
            print(f"# {r['case']}: {json.dumps(brief)} ({r['wall_s']:.0f}s)", flush=True)
    env = env or env_info()
    print(f"# environment: GPU {env.get('gpu', 'none (CPU)')}, torch {env.get('torch')}, CUDA {env.get('cuda', '-')}, "
          f"transformers {env.get('transformers')}, unsloth {env.get('unsloth', '-')}, peft {env.get('peft', '-')}, "
          f"bitsandbytes {env.get('bitsandbytes', '-')}, python {env.get('python')}", flush=True)
    by_case = {r["case"]: r for r in rows if "tokens_per_s" in r}
    limit = bandwidth_limit(a.model_dir, env.get("gpu") or "")
    for r in rows:
        if limit and "tokens_per_s" in r and r["case"] not in ("studio4", "unsloth4"):
            r["pct_limit"] = 100 * r["tokens_per_s"] / limit
        r["label"] = LABELS.get(r["case"], r["case"])
        if "error" in r:
            r["note"] = r["error"]
        for base in ("unsloth4", "unsloth16"):
            if "tokens_per_s" in r and base in by_case:
                r[f"x_{base}"] = r["tokens_per_s"] / by_case[base]["tokens_per_s"]
    print()
    print(C.table(rows, COLUMNS))
    print()
    if limit:
        print(f"bandwidth limit of the 16-bit weights on this card: {limit:.0f} tokens/s")
    if "studio" in by_case and "unsloth16" in by_case:
        print(f"studio / warm bare Unsloth 16-bit generate: "
              f"{by_case['studio']['tokens_per_s'] / by_case['unsloth16']['tokens_per_s']:.2f}x")
    if "studio" in by_case and "unsloth4" in by_case:
        s, u = by_case["studio"], by_case["unsloth4"]
        print(f"studio / bare Unsloth 4-bit: {s['tokens_per_s'] / u['tokens_per_s']:.2f}x (target >= 4); "
              f"studio first token {s['ttft_s']:.3f}s (target <= 1s)")
    print(f"# total {time.time() - T_START:.0f}s", flush=True)
    if a.json:
        C.save_result({"env": env, "rows": rows, "args": {k: v for k, v in vars(a).items() if k != "deadline"}}, a.json)
    return 0 if by_case else 1


if __name__ == "__main__":
    sys.exit(main())
