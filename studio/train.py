"""The training worker: one run, top to bottom, the chapter's recipe driven by a config file.

    python -m studio.train runs/<run>            # what the Train tab's Start runs
    python -m studio.train runs/<run> --resume   # continue from the run's last checkpoint

Reads <run>/config.yaml; writes status.json, metrics.jsonl, checkpoints/ and adapter/. It talks
to the UI only through those files, so closing the browser never touches it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

# Unsloth patches transformers, TRL and PEFT when imported: it must come first.
import unsloth  # noqa: F401, I001
from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only

import torch
from transformers import TrainerCallback

from studio import data as data_mod, distributed as dist, templates
from studio.config import RunConfig, resolve_path
from studio.runs import last_checkpoint, read_status, write_json_atomic

GIB = 1024 ** 3


class RunFiles:
    """status.json and metrics.jsonl of one run, as the worker writes them."""

    def __init__(self, run_dir: Path):
        self.dir = run_dir
        self.writer = dist.is_main()  # dist: under torchrun only global rank 0 writes the run's files
        self.status = read_status(run_dir) if (run_dir / "status.json").exists() else {}
        self.status.update(pid=os.getpid())
        if dist.under_launcher():  # dist: torchrun (the parent) is the job; kill_job(launcher_pid) ends every rank
            self.status.update(launcher_pid=os.getppid(), world_size=dist.world_size())
        self.metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if self.writer else None
        if self.writer:
            (run_dir / "failed_rank").unlink(missing_ok=True)  # dist: a previous attempt's marker

    def event(self, kind: str, **fields) -> None:
        if not self.writer:
            return
        fields = {"event": kind, "time": round(time.time(), 3), **fields}
        self.metrics.write(json.dumps(fields, ensure_ascii=False) + "\n")
        self.metrics.flush()  # the UI polls this file: every line must be visible at once

    def set(self, **fields) -> None:
        self.status.update(fields, updated_at=time.time())
        if not self.writer or (self.dir / "failed_rank").exists():  # dist: a crashed rank's report wins
            return
        write_json_atomic(self.dir / "status.json", self.status)


def memory_figures(start_reserved_gb: float) -> dict:
    """The chapter's memory cell: peak reserved, the part used by training, % of the card."""
    if torch.cuda.is_available():
        dev = torch.cuda.current_device()  # dist: cuda:LOCAL_RANK (set_device at start)
        total = torch.cuda.get_device_properties(dev).total_memory / GIB
        peak = torch.cuda.max_memory_reserved(dev) / GIB
        return {"device": "cuda", "gpu_name": torch.cuda.get_device_name(dev), "total_gb": round(total, 3),
                "peak_reserved_gb": round(peak, 3), "peak_training_gb": round(peak - start_reserved_gb, 3),
                "peak_pct": round(100 * peak / total, 3),
                "training_pct": round(100 * (peak - start_reserved_gb) / total, 3)}
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    return {"device": "cpu", "process_peak_gb": round(rss_peak, 3)}


class StudioCallback(TrainerCallback):
    """Feeds metrics.jsonl (the live plot) and honours the STOP file between optimizer steps."""

    def __init__(self, files: RunFiles, start_reserved_gb: float):
        self.files, self.start_reserved_gb = files, start_reserved_gb
        self.t0 = time.time()
        self.last_tokens, self.last_time = 0, None
        self.fault_step = int(os.environ.get("STUDIO_FAULT_AT_STEP", "0"))  # tests provoke a crash here
        fault_rank = os.environ.get("STUDIO_FAULT_RANK")  # dist: ...on this rank only
        if fault_rank is not None and int(fault_rank) != dist.rank():
            self.fault_step = 0
        self.stopped = False

    def on_train_begin(self, args, state, control, **kw):
        self.last_time = time.time()
        self.files.set(state="running", step=state.global_step, max_steps=state.max_steps)
        self.files.event("train_begin", step=state.global_step, max_steps=state.max_steps)

    def on_step_end(self, args, state, control, **kw):
        if self.fault_step and state.global_step >= self.fault_step:
            if os.environ.get("STUDIO_FAULT_KIND") == "oom":
                raise torch.OutOfMemoryError(f"CUDA out of memory (fault injected at step {state.global_step})")
            raise RuntimeError(f"fault injected at step {state.global_step} (STUDIO_FAULT_AT_STEP)")
        elapsed = time.time() - self.t0
        stopping = self.files.status.get("state") == "stopping"
        self.files.set(state="stopping" if stopping else "running", step=state.global_step,
                       max_steps=state.max_steps, elapsed_s=round(elapsed, 2))
        if dist.agree_to_stop((self.files.dir / "STOP").exists()):  # dist: rank 0 decides, all stop together
            self.stopped = True
            self.files.set(state="stopping")
            control.should_save = True  # a checkpoint to resume from
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kw):
        logs = dict(logs or {})
        if "train_loss" in logs:
            return  # the final summary goes into the end event
        now = time.time()
        tokens = getattr(state, "num_input_tokens_seen", 0) or 0
        rate = None
        if self.last_time and tokens > self.last_tokens:
            rate = (tokens - self.last_tokens) / max(1e-6, now - self.last_time)
        self.last_tokens, self.last_time = tokens, now
        keep = {k: v for k, v in logs.items() if isinstance(v, (int, float))}
        if dist.world_size() > 1:  # dist: peak memory of every GPU (rank order), gathered on every rank
            keep["memory_per_gpu_gb"] = dist.max_memory_per_rank()
        self.files.event("log", step=state.global_step, max_steps=state.max_steps, tokens_seen=tokens,
                         tokens_per_s=round(rate, 1) if rate else None, elapsed_s=round(now - self.t0, 2),
                         **keep, **memory_figures(self.start_reserved_gb))


def count_tokens_lazily(trainer) -> None:
    """Keep the non-padding token count (for tokens/s) on the GPU; read it only when the trainer logs or saves.

    transformers' Trainer._track_num_input_tokens calls .item() on every micro-batch, which makes the host
    wait for the GPU; Unsloth's loop otherwise never waits inside a step. On the chapter's host-bound recipe
    that wait cost up to 9% of tokens/s on an H100 (docs/benchmarks.md). Same numbers, one sync per log.
    """
    if not hasattr(trainer, "_track_num_input_tokens"):
        return  # another transformers version: keep its own counting
    pending: list = []

    def track(inputs):
        if "attention_mask" in inputs:
            n = inputs["attention_mask"].sum()
        else:
            n = inputs["input_ids"].numel()
        pending[:] = [pending[0] + n] if pending else [n]

    def fold():  # dist: every rank logs and saves at the same steps, so the sum is one all_reduce per log
        mine = pending.pop() if pending else 0
        trainer.state.num_input_tokens_seen += int(dist.sum_across_ranks(mine))

    log, save = trainer.log, trainer._save_checkpoint
    trainer._track_num_input_tokens = track
    trainer.log = lambda *a, **k: (fold(), log(*a, **k))[1]
    trainer._save_checkpoint = lambda *a, **k: (fold(), save(*a, **k))[1]


def build_text_dataset(cfg: RunConfig, tokenizer, files: RunFiles):
    """Load, standardize (role/content) and render every row with the chat template -> a `text` column."""
    from datasets import Dataset as HFDataset
    ds = data_mod.load_dataset_source(cfg.data.source, cfg.data.path, cfg.data.split, cfg.data.max_rows,
                                      token=os.environ.get("HF_TOKEN"))
    texts = [templates.render(tokenizer, conv) for conv in ds.iter_conversations()]
    files.event("dataset", rows=len(texts), format=ds.format, name=ds.name)
    return HFDataset.from_dict({"text": texts})


def sft_config(cfg: RunConfig, run_dir: Path, on_gpu: bool):
    from trl import SFTConfig
    t = cfg.train
    optim = t.optim
    if not on_gpu and "8bit" in optim:
        optim = "adamw_torch"  # bitsandbytes' 8-bit optimizers need a GPU
    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        dataset_text_field="text",
        max_length=t.max_length,
        packing=t.packing,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_steps,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        num_train_epochs=t.num_train_epochs,
        learning_rate=t.learning_rate,
        logging_steps=t.logging_steps,
        optim=optim,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler_type,
        seed=t.seed,
        save_strategy="steps" if t.save_steps > 0 else "no",
        save_steps=t.save_steps if t.save_steps > 0 else 500,
        save_total_limit=t.save_total_limit,
        include_num_input_tokens_seen="non_padding",  # tokens/s in the live figures
        report_to="none",
        dataset_num_proc=1,
        ddp_find_unused_parameters=False if dist.world_size() > 1 else None,  # dist: no graph walk per step
    )


def run(run_dir: Path, resume: bool = False) -> int:
    files = RunFiles(run_dir)
    files.set(state="starting", resume=resume)
    cfg = RunConfig.load(run_dir / "config.yaml")
    dist.setup_device()  # dist: cuda:LOCAL_RANK (Unsloth loads onto it under torchrun)
    on_gpu = torch.cuda.is_available()

    # 1. Model: FastLanguageModel.from_pretrained, then LoRA adapters on the chosen modules.
    model_name = str(resolve_path(cfg.model.name)) if resolve_path(cfg.model.name).is_dir() else cfg.model.name
    dtype = None if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name, max_seq_length=cfg.model.max_seq_length, dtype=dtype,
        load_in_4bit=cfg.model.load_in_4bit and on_gpu, token=os.environ.get("HF_TOKEN"))
    gc = {"true": True, "false": False}.get(cfg.lora.use_gradient_checkpointing, cfg.lora.use_gradient_checkpointing)
    model = FastLanguageModel.get_peft_model(
        model, r=cfg.lora.r, lora_alpha=cfg.lora.lora_alpha, lora_dropout=cfg.lora.lora_dropout,
        target_modules=cfg.lora.target_modules, bias=cfg.lora.bias, use_gradient_checkpointing=gc,
        random_state=cfg.lora.random_state)
    trainable, total = model.get_nb_trainable_parameters()
    files.event("model", trainable=trainable, total=total, on_gpu=on_gpu,
                load_in_4bit=cfg.model.load_in_4bit and on_gpu)

    # 2. Data: standardize to role/content, render with the chat template.
    tokenizer = templates.apply_template(tokenizer, cfg.data.template)
    train_dataset = build_text_dataset(cfg, tokenizer, files)

    # 3. Trainer, and loss on the responses only.
    from trl import SFTTrainer
    start_reserved = torch.cuda.max_memory_reserved() / GIB if on_gpu else 0.0
    callback = StudioCallback(files, start_reserved)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train_dataset,
                         args=sft_config(cfg, run_dir, on_gpu), callbacks=[callback])
    if cfg.data.train_on_responses_only:
        before = len(trainer.train_dataset)
        instruction_part, response_part = templates.markers(tokenizer, cfg.data.template)
        trainer = train_on_responses_only(trainer, instruction_part=instruction_part, response_part=response_part)
        dropped = before - len(trainer.train_dataset)
        files.event("dropped", count=dropped, total=before)  # rows with no response left after truncation
        if len(trainer.train_dataset) == 0:
            raise ValueError("no row has a response left after truncation: raise max_length")
    if on_gpu or dist.world_size() > 1:  # dist: else transformers gathers across ranks on every micro-batch
        count_tokens_lazily(trainer)
    files.event("memory_start", start_reserved_gb=round(start_reserved, 3), **memory_figures(start_reserved))

    checkpoint = last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise ValueError("this run has no checkpoint to resume from")
    stats = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    # 4. Save: the adapter (and tokenizer with its template), and the chapter's summary figures.
    stopped = callback.stopped  # dist: the agreed answer, the same on every rank
    if dist.fsdp2_active():  # dist: Unsloth's Trainer.save_model gathers the sharded adapter (every rank calls)
        trainer.save_model(str(run_dir / "adapter"))
    else:  # one process, or DDP: rank 0 writes
        model.save_pretrained(str(run_dir / "adapter"), is_main_process=dist.is_main())
    if dist.is_main():
        tokenizer.save_pretrained(str(run_dir / "adapter"))
    summary = {"train_runtime": round(stats.metrics.get("train_runtime", 0.0), 3),
               "train_loss": stats.metrics.get("train_loss"), "step": trainer.state.global_step,
               **memory_figures(start_reserved)}
    files.event("end", stopped=stopped, **summary)
    files.set(state="stopped" if stopped else "completed", ended_at=time.time(), **summary)
    return 0


def failure_hint(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text:
        return "oom"
    if isinstance(exc, data_mod.DataError):
        return "data"
    return "crash"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    code = 1
    try:
        code = run(run_dir, resume=args.resume)
    except BaseException as exc:  # every failure ends as a readable status, never a silent death
        traceback.print_exc()
        tb = traceback.format_exc().strip().splitlines()
        status = read_status(run_dir)
        status.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000], hint=failure_hint(exc),
                      traceback="\n".join(tb[:1] + tb[-20:]), ended_at=time.time(), pid=os.getpid(),
                      resumable=last_checkpoint(run_dir) is not None)
        first = True
        if dist.world_size() > 1:  # dist: the first rank to fail reports (the others fail because it left)
            status.update(failed_rank=dist.rank(), world_size=dist.world_size())
            try:
                fd = os.open(run_dir / "failed_rank", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(dist.rank()).encode())
                os.close(fd)
            except FileExistsError:
                first = False
        if first:
            write_json_atomic(run_dir / "status.json", status)
    finally:
        try:  # release the one-job lock if it is ours (dist: rank 0's, or the failing rank's)
            lock = run_dir.parent / ".lock"
            if (dist.is_main() or code != 0) and lock.read_text().strip() == run_dir.name:
                lock.unlink()
        except OSError:
            pass
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
