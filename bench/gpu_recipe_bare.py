"""Benchmark 1: the chapter's recipe as a bare Unsloth script (the notebook, cell for cell).

    python bench/gpu_recipe_bare.py --model /tmp/studio-bench/qwen3-4b --data /tmp/studio-bench/chat.jsonl \
        --warmup 4 --steps 14 --out result.json

4-bit, LoRA r=8 alpha=8 on q,k,v,o,gate,up,down, batch 2 x accumulation 4, adamw_8bit, lr 2e-4,
gradient checkpointing "unsloth", linear schedule, warmup 5, max_length 2048, loss on the responses
only (qwen-3 markers). --load-in-4bit/--micro-batch/--accum/--gc override the recipe (the fit-to-GPU
benchmark measures other settings with this same script).

Tokens are counted on the CPU as the collator makes each micro-batch (bench.gpu_common.CpuTokenCounter),
with the trainer's "non_padding" definition, so this script pays no extra device sync for them.
--trainer-count uses the trainer's include_num_input_tokens_seen="non_padding" instead (what the
studio worker does) and checks that both counts agree.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

T_START = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import unsloth  # noqa: E402,F401  (first: it patches transformers, TRL, PEFT)
from unsloth import FastLanguageModel  # noqa: E402
from unsloth.chat_templates import get_chat_template, standardize_data_formats, train_on_responses_only  # noqa: E402

import torch  # noqa: E402

from bench import gpu_common as C  # noqa: E402

T_IMPORT = time.time()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=14, help="optimizer steps in all")
    ap.add_argument("--warmup", type=int, default=4, help="steps left out of the steady figures")
    ap.add_argument("--load-in-4bit", type=int, default=int(C.RECIPE["load_in_4bit"]))
    ap.add_argument("--micro-batch", type=int, default=C.RECIPE["micro_batch"])
    ap.add_argument("--accum", type=int, default=C.RECIPE["accum"])
    ap.add_argument("--gc", default=C.RECIPE["gc"], choices=["unsloth", "true", "false"])
    ap.add_argument("--max-length", type=int, default=C.RECIPE["max_length"])
    ap.add_argument("--trainer-count", action="store_true")
    ap.add_argument("--profile", type=int, default=0, metavar="STEP",
                    help="profile optimizer step STEP (torch.profiler): the top operators by host and device time")
    ap.add_argument("--name", default="1. bare Unsloth script")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    R = C.RECIPE

    # --- the notebook
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=a.model, max_seq_length=a.max_length, dtype=None, load_in_4bit=bool(a.load_in_4bit) and on_gpu)
    gc = {"true": True, "false": False}.get(a.gc, a.gc)
    model = FastLanguageModel.get_peft_model(
        model, r=R["r"], target_modules=R["targets"], lora_alpha=R["lora_alpha"], lora_dropout=R["lora_dropout"],
        bias="none", use_gradient_checkpointing=gc, random_state=R["random_state"])
    t_model = time.time()

    tokenizer = get_chat_template(tokenizer, chat_template="qwen-3")
    from datasets import load_dataset
    dataset = load_dataset("json", data_files=a.data, split="train")
    dataset = standardize_data_formats(dataset)

    def formatting_prompts_func(examples):
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=False)
                 for c in examples["conversations"]]
        return {"text": texts}
    # only the text column, like the studio worker's dataset (same rows, same order, same batches)
    dataset = dataset.map(formatting_prompts_func, batched=True, remove_columns=dataset.column_names)

    from trl import SFTConfig, SFTTrainer
    trainer = SFTTrainer(
        model=model, tokenizer=tokenizer, train_dataset=dataset, eval_dataset=None,
        args=SFTConfig(
            dataset_text_field="text", max_length=a.max_length, per_device_train_batch_size=a.micro_batch,
            gradient_accumulation_steps=a.accum, warmup_steps=R["warmup_steps"], max_steps=a.steps,
            learning_rate=R["lr"], logging_steps=1, optim=R["optim"] if on_gpu else "adamw_torch",
            weight_decay=R["weight_decay"], lr_scheduler_type=R["schedule"], seed=R["seed"], report_to="none",
            output_dir=os.environ.get("BENCH_TMP", "/tmp/studio-bench") + "/bare-out", save_strategy="no",
            include_num_input_tokens_seen="non_padding" if a.trainer_count else "no"))
    trainer = train_on_responses_only(trainer, instruction_part=C.INSTRUCTION_PART, response_part=C.RESPONSE_PART)

    # --- measuring (no device work)
    counter = C.CpuTokenCounter(trainer, tokenizer.pad_token_id)
    rec = C.recorder_callback(lambda state: counter.seen)
    trainer.add_callback(rec)
    if a.profile:
        trainer.add_callback(profiler_callback(a.profile))
    start_reserved = torch.cuda.max_memory_reserved() / C.GIB if on_gpu else 0.0
    t_prep = time.time()
    stats = trainer.train()
    t_train = time.time()

    res = {"name": a.name, "runner": "bare", "model": a.model, "load_in_4bit": bool(a.load_in_4bit),
           "micro_batch": a.micro_batch, "accum": a.accum, "gc": a.gc, "max_length": a.max_length,
           "steps": a.steps, "warmup": a.warmup, "logs": rec.logs, "micro_tokens": counter.micro,
           "train_runtime": stats.metrics.get("train_runtime"), "train_loss": stats.metrics.get("train_loss"),
           "import_s": T_IMPORT - T_START, "model_s": t_model - T_IMPORT, "prep_s": t_prep - t_model,
           "train_s": t_train - t_prep, "wall_s": time.time() - T_START, "start_reserved_gb": start_reserved,
           "versions": C.versions(), "trainable": model.get_nb_trainable_parameters()[0]}
    if on_gpu:
        res["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / C.GIB
        res["peak_alloc_gb"] = torch.cuda.max_memory_allocated() / C.GIB
    res.update(C.steady(rec.logs, a.warmup))
    if a.trainer_count:
        res["trainer_tokens"] = trainer.state.num_input_tokens_seen
        res["count_agrees"] = trainer.state.num_input_tokens_seen == counter.seen
    C.save_result(res, a.out)
    print(C.table([res], C.RESULT_COLUMNS))
    print(f"counted {counter.seen} tokens in {len(counter.micro)} micro-batches (largest {max(counter.micro)})"
          + (f"; trainer counted {res['trainer_tokens']}" if a.trainer_count else ""))
    return 0


def profiler_callback(step: int):
    """One optimizer step under torch.profiler: where a step's time goes, on the host and on the device."""
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    class Profile(TrainerCallback):
        prof = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step + 1 == step:
                acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
                self.prof = profile(activities=acts)
                self.prof.__enter__()
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self.prof is None:
                return
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            wall = time.perf_counter() - self.t0
            self.prof.__exit__(None, None, None)
            events = self.prof.key_averages()
            n_kernels = sum(e.count for e in events if getattr(e, "device_type", None) is not None
                            and str(e.device_type).endswith("CUDA"))
            print(f"# profile of step {step}: {wall:.3f} s wall; {n_kernels} device kernels")
            for key in ("self_cpu_time_total", "self_device_time_total"):
                try:
                    print(events.table(sort_by=key, row_limit=18, max_name_column_width=60))
                except Exception as exc:  # a build without device timing
                    print(f"# ({key}: {exc})")
            self.prof = None

    return Profile()


if __name__ == "__main__":
    sys.exit(main())
