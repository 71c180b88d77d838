"""Preference tuning (DPO or ORPO): the studio's worker against bare Unsloth + TRL, in one call.

    python bench/gpu_preference.py                          # Qwen3-4B shape, DPO, on the GPU (no network, no Gradio)
    python bench/gpu_preference.py --stage orpo
    python bench/gpu_preference.py --shape tiny --steps 6   # CPU smoke test of the plumbing

It builds what it measures: a random-init Qwen3 of the shape (bench/gpu_common.py SHAPES: qwen3-4b is hidden 2560,
intermediate 9728, 36 layers, 32 heads, 8 KV heads, head_dim 128, vocab 151936, tied embeddings) and synthetic pairs
(a prompt, a chosen and a rejected answer of random whole-word tokens; lengths uniform). Then, one after the other,
each in a process of its own (its own peak memory):
  1. studio: the run as the Train tab starts it: config.yaml (stage, beta, the chapter's LoRA recipe) ->
     studio.runs.create_run + launch -> `python -m studio.train RUN_DIR`; figures from its metrics.jsonl and
     status.json
  2. bare: the same settings as a plain script: Unsloth's FastLanguageModel + get_peft_model, get_chat_template,
     TRL's DPOTrainer (trl.DPOTrainer) or ORPOTrainer (trl.experimental.orpo)
Steady tokens/s as in every GPU benchmark (bench/gpu_common.steady): the tokens the model runs (prompt + chosen and
prompt + rejected, padding left out) between the end of step --warmup and the last step, over that wall time. Peak
memory: torch.cuda.max_memory_reserved of each process (on CPU: its peak RSS).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

T_START = time.time()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import gpu_common as C  # noqa: E402  (no unsloth import: the orchestrating process trains nothing)

SETTINGS = dict(C.RECIPE, max_length=1024, beta=0.1, lr=5e-6)  # the chapter's LoRA recipe; pairs up to 1024 tokens


def make_pairs(tokenizer, n: int, seed: int = 0, prompt=(64, 448), answer=(48, 320)) -> list[dict]:
    """TRL's conversational pairs of random whole-word tokens (one token each), lengths uniform in the ranges."""
    words = C._words(tokenizer)
    rng = random.Random(seed)

    def text(lo_hi):
        return " ".join(rng.choice(words) for _ in range(rng.randint(*lo_hi)))
    return [{"prompt": [{"role": "user", "content": text(prompt)}],
             "chosen": [{"role": "assistant", "content": text(answer)}],
             "rejected": [{"role": "assistant", "content": text(answer)}]} for _ in range(n)]


def run_studio(a, model_dir: Path, data: Path) -> dict:
    """The worker, launched as Start launches it."""
    os.environ["STUDIO_RUNS_DIR"] = str(a.work / "runs")
    from studio import runs
    from studio.config import chapter_recipe
    cfg = chapter_recipe()
    cfg.run_name = f"bench-{a.stage}-{a.shape}"
    cfg.model.name, cfg.model.max_seq_length = str(model_dir.resolve()), SETTINGS["max_length"]
    cfg.data.source, cfg.data.path = "file", str(data.resolve())
    t = cfg.train
    t.stage, t.beta, t.max_steps, t.max_length = a.stage, SETTINGS["beta"], a.steps, SETTINGS["max_length"]
    t.learning_rate, t.warmup_steps = SETTINGS["lr"], SETTINGS["warmup_steps"]
    t.per_device_train_batch_size, t.gradient_accumulation_steps = a.micro_batch, a.accum
    run_dir = runs.create_run(cfg)
    t0 = time.time()
    runs.launch(run_dir)

    def _term(signum, frame):  # an outer `timeout` must not leave the worker (its own session) on the GPU
        runs.kill(run_dir)
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, _term)
    while time.time() - t0 < a.timeout and runs.view(run_dir).get("state") not in runs.FINAL_STATES:
        time.sleep(0.25)
    if runs.view(run_dir).get("state") not in runs.FINAL_STATES:
        runs.kill(run_dir)
    status = runs.view(run_dir)
    tail = runs.MetricsTail(run_dir / "metrics.jsonl")
    tail.read_new()
    logs = [{"step": e["step"], "time": e["time"], "tokens": e.get("tokens_seen"), "loss": e.get("loss"),
             "margin": e.get("rewards/margins")} for e in tail.logs]
    res = {"name": f"studio worker ({a.stage.upper()})", "runner": "studio", "run_dir": str(run_dir),
           "state": status.get("state"), "error": status.get("error"), "logs": logs, "wall_s": time.time() - t0,
           "peak_reserved_gb": status.get("peak_reserved_gb", status.get("process_peak_gb"))}
    if status.get("state") != "completed":
        print(runs.log_tail(run_dir, 40))
    return res


def run_bare(a) -> dict:
    """Bare Unsloth + TRL (this process was started for it: --bare)."""
    import unsloth  # noqa: F401  (first: it patches transformers, TRL, PEFT)
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import get_chat_template
    import torch
    from datasets import Dataset
    on_gpu = torch.cuda.is_available()
    S = SETTINGS
    model, tokenizer = FastLanguageModel.from_pretrained(str(a.model), max_seq_length=S["max_length"], dtype=None,
                                                         load_in_4bit=S["load_in_4bit"] and on_gpu)
    model = FastLanguageModel.get_peft_model(
        model, r=S["r"], lora_alpha=S["lora_alpha"], lora_dropout=S["lora_dropout"], target_modules=S["targets"],
        bias="none", use_gradient_checkpointing=S["gc"], random_state=S["random_state"])
    tokenizer = get_chat_template(tokenizer, chat_template="qwen-3")
    rows = [json.loads(line) for line in a.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    if a.stage == "dpo":
        from trl import DPOConfig as Config, DPOTrainer as Trainer
    else:
        from trl.experimental.orpo import ORPOConfig as Config, ORPOTrainer as Trainer
    trainer = Trainer(model=model, processing_class=tokenizer, train_dataset=Dataset.from_list(rows), args=Config(
        output_dir=str(a.work / "bare-out"), beta=S["beta"], max_length=S["max_length"],
        per_device_train_batch_size=a.micro_batch, gradient_accumulation_steps=a.accum,
        warmup_steps=S["warmup_steps"], max_steps=a.steps, learning_rate=S["lr"], logging_steps=1,
        optim=S["optim"] if on_gpu else "adamw_torch", weight_decay=S["weight_decay"],
        lr_scheduler_type=S["schedule"], seed=S["seed"], report_to="none", save_strategy="no",
        gradient_checkpointing=True))
    counter = C.CpuTokenCounter(trainer, tokenizer.pad_token_id)
    rec = C.recorder_callback(lambda state: counter.seen)
    trainer.add_callback(rec)
    t0 = time.time()
    trainer.train()
    peak = torch.cuda.max_memory_reserved() / C.GIB if on_gpu else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    return {"name": f"bare Unsloth + TRL ({a.stage.upper()})", "runner": "bare", "state": "completed",
            "logs": rec.logs, "wall_s": time.time() - t0, "peak_reserved_gb": peak, "versions": C.versions()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="qwen3-4b", choices=sorted(C.SHAPES))
    ap.add_argument("--stage", default="dpo", choices=["dpo", "orpo"])
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=4, help="steps left out of the steady figures")
    ap.add_argument("--micro-batch", type=int, default=SETTINGS["micro_batch"], help="pairs per micro-batch")
    ap.add_argument("--accum", type=int, default=SETTINGS["accum"])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("BENCH_TMP", "/tmp/studio-bench")))
    ap.add_argument("--timeout", type=float, default=280, help="seconds each path may take (both fit one 10-min call)")
    ap.add_argument("--out", default="", help="write both results as JSON here")
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.bare:
        print("BARE_RESULT " + json.dumps(run_bare(a)), flush=True)
        return 0

    from transformers import AutoTokenizer
    model_dir = C.build_model(a.shape, a.work / a.shape)
    pairs = a.steps * a.micro_batch * a.accum  # every pair once: both paths train on the same rows in the same order
    data = C.write_jsonl(make_pairs(AutoTokenizer.from_pretrained(C.TOKENIZER_SRC), pairs), a.work / "pairs.jsonl")
    print(f"{a.stage.upper()} on {a.shape}: {pairs} pairs -> {data}; {a.steps} steps of {a.micro_batch} x "
          f"{a.accum} pairs; warm-up {a.warmup}", flush=True)
    results = [run_studio(a, model_dir, data)]
    bare = subprocess.run([sys.executable, __file__, "--bare", "--model", str(model_dir), "--data", str(data),
                           "--stage", a.stage, "--steps", str(a.steps), "--micro-batch", str(a.micro_batch),
                           "--accum", str(a.accum), "--work", str(a.work)], capture_output=True, text=True,
                          timeout=a.timeout, cwd=REPO)
    line = next((x for x in bare.stdout.splitlines() if x.startswith("BARE_RESULT ")), None)
    if line is None:
        print(bare.stdout[-3000:], bare.stderr[-3000:])
        results.append({"name": "bare Unsloth + TRL", "state": "failed", "logs": []})
    else:
        results.append(json.loads(line.removeprefix("BARE_RESULT ")))
    for r in results:
        try:
            r.update(C.steady(r["logs"], a.warmup))
        except ValueError as exc:
            r["steady_error"] = str(exc)
    C.save_result({"shape": a.shape, "stage": a.stage, "results": results}, a.out)
    print(C.table(results, [("name", "path", ""), ("state", "state", ""), ("tokens_per_s", "steady tokens/s", ",.0f"),
                            ("s_per_step", "s/step", ".3f"), ("tokens_per_step", "tokens/step", ",.0f"),
                            ("peak_reserved_gb", "peak memory GiB", ".2f"), ("wall_s", "wall s", ".0f")]))
    studio, bare_res = results
    if "tokens_per_s" in studio and "tokens_per_s" in bare_res:
        print(f"studio / bare tokens/s: {studio['tokens_per_s'] / bare_res['tokens_per_s']:.3f}; peak memory "
              f"{studio['peak_reserved_gb']:.2f} vs {bare_res['peak_reserved_gb']:.2f} GiB; same tokens per step: "
              f"{abs(studio['tokens_per_step'] - bare_res['tokens_per_step']) < 0.5}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
