"""The training worker: one run, top to bottom, the chapter's recipe driven by a config file.

    python -m studio.train runs/<run>            # what the Train tab's Start runs
    python -m studio.train runs/<run> --resume   # continue from the run's last checkpoint

Reads <run>/config.yaml; writes status.json (it alone), metrics.jsonl, checkpoints/ and adapter/. It talks to
the app only through those files, so closing the browser never touches it. It holds the machine's lock and the
run's lock (studio/runs/folder.py) for its whole life; the app hands them over when it launches the worker, and a
worker started by hand takes them itself.

Every phase from start to step 1 is in status.json as it happens (a heartbeat rewrites it every second), and
its duration goes into metrics.jsonl: worker start, model download/load, dataset, prepare (rows tokenized of
the total, with a rate, or "reused"), trainer set-up, first step.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from studio import checks, data as data_mod, distributed as dist, prepare, templates, timing
from studio.limits import caps
from studio.runs import folder
from studio.config import RunConfig

GIB = 1024 ** 3
HEARTBEAT_S = 1.0
STOP_POLL_S = 0.2  # a Stop before the first step ends the worker within this (and the status write)


def earlier_seconds(previous: dict) -> float:
    """The time earlier attempts of this run spent (a Resume continues the minutes cap where they left it)."""
    spent = previous.get("trained_before_s") or 0.0
    if previous.get("started_at"):
        spent += max(0.0, (previous.get("ended_at") or previous.get("updated_at") or previous["started_at"])
                     - previous["started_at"])
    return spent


class RunFiles:
    """status.json and metrics.jsonl of one run, as the worker writes them (the only writer; under torchrun,
    global rank 0 alone, or the first rank that fails)."""

    def __init__(self, run_dir: Path, resume: bool):
        self.dir = run_dir
        self.writer = dist.is_main()
        previous = folder.read_json(run_dir / "status.json") if resume else {}
        keep = ("step", "max_steps") if resume else ()
        self.status = {k: previous[k] for k in keep if k in previous}
        # the first status written already names the first phase: "starting" never shows without one
        self.status.update(state="starting", phase="worker", progress={}, pid=os.getpid(), started_at=time.time(),
                           resume=resume, phases=[], trained_before_s=round(earlier_seconds(previous), 2))
        if dist.under_launcher():  # torchrun (the parent) is the job: kill_job(launcher_pid) ends every rank
            self.status.update(launcher_pid=os.getppid(), world_size=dist.world_size())
        self.metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if self.writer else None
        if self.writer:
            (run_dir / "failed_rank").unlink(missing_ok=True)  # a previous attempt's marker
        self.lock = threading.Lock()
        # the "worker" phase began when the app launched us (a standby still importing took the run then)
        self.phase_started = min(time.time(), float(os.environ.pop("STUDIO_HANDED_AT", "") or time.time()))
        self.write()
        if self.writer:
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def write(self) -> None:
        if not self.writer or (self.dir / "failed_rank").exists():  # a crashed rank's report wins
            return
        with self.lock:
            self.status["updated_at"] = time.time()
            if self.status.get("phase"):
                self.status["phase_elapsed_s"] = round(time.time() - self.phase_started, 1)
            folder.write_json_atomic(self.dir / "status.json", self.status)

    def _heartbeat(self) -> None:
        """No phase may sit silent: the status is rewritten every second while the run is active. And a Stop
        that comes before the first optimizer step ends the worker now, whatever it is doing (a download, a
        model load, preparing rows): nothing is lost that a step would have saved."""
        last_write = time.time()
        while True:
            time.sleep(STOP_POLL_S)
            if self.status.get("state") not in folder.ACTIVE_STATES:
                return
            if self.status.get("state") == "starting" and (self.dir / "STOP").exists():
                self.stop_now()
            if time.time() - last_write >= HEARTBEAT_S:
                last_write = time.time()
                try:
                    self.write()
                except OSError:
                    pass

    def stop_now(self) -> None:
        """Stopped before training began: say so, then end this process and all it started (the prepare pool;
        under torchrun every rank), at once."""
        phase = self.status.get("phase")
        self.set(state="stopped", stopped_in=phase, ended_at=time.time(),
                 resumable=folder.last_checkpoint(self.dir) is not None)
        self.event("stopped_early", phase=phase)
        sys.stdout.flush()
        sys.stderr.flush()
        if dist.under_launcher():
            dist.kill_job(os.getppid())  # torchrun and every rank
        elif os.getpgrp() == os.getpid():  # our own session (the app starts us so): us and our children
            os.killpg(os.getpid(), 9)
        else:  # started by hand inside someone else's process group: our children, then us
            import psutil
            for child in psutil.Process().children(recursive=True):
                child.kill()
        os._exit(0)

    def event(self, kind: str, **fields) -> None:
        if not self.writer:
            return
        fields = {"event": kind, "time": round(time.time(), 3), **fields}
        with self.lock:
            self.metrics.write(json.dumps(fields, ensure_ascii=False) + "\n")
            self.metrics.flush()  # the app polls this file: every line must be visible at once

    def set(self, **fields) -> None:
        with self.lock:
            self.status.update(fields)
        self.write()

    def phase(self, name: str | None, **progress) -> None:
        """End the current phase (its duration goes to the summary) and begin `name` (None: training)."""
        now = time.time()
        with self.lock:
            current = self.status.get("phase")
            if current:
                took = round(now - self.phase_started, 2)
                self.status["phases"].append({"phase": current, "seconds": took,
                                              **({"detail": self.status["progress"].get("detail")}
                                                 if self.status.get("progress", {}).get("detail") else {})})
            self.status.update(phase=name, progress=progress)
            self.phase_started = now
        if current:
            self.event("phase", phase=current, seconds=self.status["phases"][-1]["seconds"])
        self.write()

    def progress(self, **progress) -> None:
        with self.lock:
            self.status["progress"] = {**self.status.get("progress", {}), **progress}
        # the heartbeat writes it within a second; frequent callers stay cheap


def memory_figures(start_reserved_gb: float) -> dict:
    """The chapter's memory cell: peak reserved, the part used by training, % of the card."""
    import torch
    if torch.cuda.is_available():
        dev = torch.cuda.current_device()  # cuda:LOCAL_RANK under torchrun
        total = torch.cuda.get_device_properties(dev).total_memory / GIB
        peak = torch.cuda.max_memory_reserved(dev) / GIB
        return {"device": "cuda", "gpu_name": torch.cuda.get_device_name(dev), "total_gb": round(total, 3),
                "peak_reserved_gb": round(peak, 3), "peak_training_gb": round(peak - start_reserved_gb, 3),
                "peak_pct": round(100 * peak / total, 3),
                "training_pct": round(100 * (peak - start_reserved_gb) / total, 3)}
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux
    return {"device": "cpu", "process_peak_gb": round(rss_peak, 3)}


def make_callback(files: RunFiles, start_reserved_gb: float):
    import torch
    from transformers import TrainerCallback

    class StudioCallback(TrainerCallback):
        """Feeds metrics.jsonl (the live plot) and honours the STOP file between optimizer steps."""

        def __init__(self):
            self.t0 = time.time()
            self.last_tokens, self.last_time = 0, None
            self.fault_step = int(os.environ.get("STUDIO_FAULT_AT_STEP", "0"))  # tests provoke a crash here
            if os.environ.get("STUDIO_FAULT_RANK") not in (None, str(dist.rank())):  # ...on this rank only
                self.fault_step = 0
            self.stopped = False
            self.caps = caps()  # the deployment's per-run limits (a shared Space)

        def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kw):
            self.last_time = time.time()
            self.flops_per_token, self.peak_flops = model_flops(model, train_dataloader)
            files.phase("first_step", **({"detail": "compiles"} if torch.cuda.is_available() else {}))
            files.set(step=state.global_step, max_steps=state.max_steps)
            files.event("train_begin", step=state.global_step, max_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kw):
            if self.fault_step and state.global_step >= self.fault_step:
                if os.environ.get("STUDIO_FAULT_KIND") == "oom":
                    raise torch.OutOfMemoryError(f"CUDA out of memory (fault injected at step {state.global_step})")
                raise RuntimeError(f"fault injected at step {state.global_step} (STUDIO_FAULT_AT_STEP)")
            stopping = (files.dir / "STOP").exists()
            minutes = (files.status["trained_before_s"] + time.time() - files.status["started_at"]) / 60
            if self.caps["steps"] and state.global_step >= self.caps["steps"]:
                stopping, files.status["stop_reason"] = True, f"steps:{self.caps['steps']}"
            elif self.caps["minutes"] and minutes >= self.caps["minutes"]:
                stopping, files.status["stop_reason"] = True, f"minutes:{self.caps['minutes']}"
            stopping = dist.agree_to_stop(stopping)  # rank 0 decides; every rank stops at the same step
            self.stopped = self.stopped or stopping
            files.set(state="stopping" if stopping else "running", step=state.global_step,
                      max_steps=state.max_steps, elapsed_s=round(time.time() - self.t0, 2))
            if files.status.get("phase") == "first_step":  # after "running" is written: "starting" always has a phase
                files.phase(None)
            if stopping:
                control.should_save = True  # a checkpoint to resume from
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            if "train_loss" in logs:
                return  # the final summary goes into the end event
            if "eval_loss" in logs:  # with the preference stages' reward figures on the held-out pairs
                files.event("eval", step=state.global_step, eval_loss=logs["eval_loss"],
                            **{k: v for k, v in logs.items() if k.startswith("eval_rewards/")})
                return
            now = time.time()
            tokens = getattr(state, "num_input_tokens_seen", 0) or 0
            rate = None
            if self.last_time and tokens > self.last_tokens:
                rate = (tokens - self.last_tokens) / max(1e-6, now - self.last_time)
            self.last_tokens, self.last_time = tokens, now
            keep = {k: v for k, v in logs.items() if isinstance(v, (int, float))}
            if dist.world_size() > 1:  # peak memory of every GPU (rank order), gathered on every rank
                keep["memory_per_gpu_gb"] = dist.max_memory_per_rank()
            if rate and self.flops_per_token and self.peak_flops:  # model FLOPs utilisation, all GPUs together
                keep["mfu"] = round(rate * self.flops_per_token / (self.peak_flops * dist.world_size()), 4)
            files.event("log", step=state.global_step, max_steps=state.max_steps, tokens_seen=tokens,
                        tokens_per_s=round(rate, 1) if rate else None, elapsed_s=round(now - self.t0, 2),
                        **keep, **memory_figures(start_reserved_gb))

    return StudioCallback()


def model_flops(model, dataloader=None) -> tuple[float | None, float | None]:
    """(model FLOPs per trained token, the GPU's peak FLOP/s) for the live MFU figure; (None, None) on a CPU or a
    GPU whose peak is not known."""
    import torch
    if model is None or not torch.cuda.is_available():
        return None, None
    from studio import fit
    peak = fit.peak_tflops(torch.cuda.get_device_name())
    try:
        config = model.config.to_dict()
        lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
        lengths = getattr(getattr(dataloader, "dataset", None), "column_names", None)
        mean = 1024.0
        if lengths and "input_ids" in lengths:
            sample = dataloader.dataset.select(range(min(512, len(dataloader.dataset))))["input_ids"]
            mean = sum(len(x) for x in sample) / max(1, len(sample))
        return fit.train_flops_per_token(config, lora, mean), (peak * 1e12 if peak else None)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, None


def make_sample_callback(files: RunFiles, tokenizer, prompts: list[str], max_new_tokens: int = 48):
    """At each evaluation, a few fixed prompts answered greedily: watch it learn, step by step."""
    import torch
    from transformers import TrainerCallback

    from studio.chat import clean_reply

    class SampleCallback(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kw):
            if model is None or not prompts:
                return
            was_training = model.training
            model.eval()
            answers = []
            eos = [i for i in {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
                   if isinstance(i, int) and i >= 0]
            try:
                with torch.no_grad():
                    for prompt in prompts:
                        inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                               add_generation_prompt=True, return_tensors="pt",
                                                               return_dict=True).to(model.device)
                        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                             eos_token_id=eos or None, pad_token_id=tokenizer.pad_token_id)
                        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
                        answers.append(clean_reply(text, [tokenizer.eos_token or "", "<|im_end|>"]))
            finally:
                if was_training:
                    model.train()
            files.event("samples", step=state.global_step, prompts=prompts, answers=answers)
            if not files.writer:
                return
            with open(files.dir / "samples.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, "prompts": prompts, "answers": answers},
                                   ensure_ascii=False) + "\n")

    return SampleCallback()


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
        elif "input_ids" in inputs:
            n = inputs["input_ids"].numel()
        else:  # ORPO's batch: prompt + chosen and prompt + rejected, one mask each
            n = inputs["chosen_attention_mask"].sum() + inputs["rejected_attention_mask"].sum()
        pending[:] = [pending[0] + n] if pending else [n]

    def fold():  # every rank logs and saves at the same steps: the sum over ranks is one all_reduce per log
        mine = pending.pop() if pending else 0
        trainer.state.num_input_tokens_seen += int(dist.sum_across_ranks(mine))

    log, save = trainer.log, trainer._save_checkpoint
    trainer._track_num_input_tokens = track
    trainer.log = lambda *a, **k: (fold(), log(*a, **k))[1]
    trainer._save_checkpoint = lambda *a, **k: (fold(), save(*a, **k))[1]


def report_targets(wanted: str, files: RunFiles | None = None) -> str:
    """The tracker the person picked, if its package is installed here; else none (and the run says why)."""
    import importlib.util
    package = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}.get(wanted)
    if package and importlib.util.find_spec(package) is None:
        if files:
            files.event("note", code="report_missing", tracker=wanted)
        return "none"
    return wanted if package else "none"


def trainer_args(cfg: RunConfig, run_dir: Path, on_gpu: bool, n_rows: int = 0, evaluating: bool = False,
                 files: RunFiles | None = None) -> dict:
    """The settings every stage's TRL config takes (SFTConfig, DPOConfig, ORPOConfig): the form's, as given."""
    t = cfg.train
    optim = t.optim
    if not on_gpu and "8bit" in optim:
        optim = "adamw_torch"  # bitsandbytes' 8-bit optimizers need a GPU
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run_dir / "tracker"))  # transformers 5: no logging_dir
    extra = dict(save_strategy="steps" if t.save_steps > 0 else "no", save_steps=t.save_steps if t.save_steps > 0 else 500)
    if evaluating:
        steps = t.max_steps if t.max_steps > 0 else int(
            -(-n_rows // (t.per_device_train_batch_size * t.gradient_accumulation_steps)) * t.num_train_epochs)
        every = t.eval_steps or max(1, steps // 10)
        # the best checkpoint is kept and loaded at the end: checkpoints at every evaluation
        extra = dict(eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every,
                     load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
                     per_device_eval_batch_size=t.per_device_train_batch_size)
    return dict(
        **extra,
        output_dir=str(run_dir / "checkpoints"),
        max_length=t.max_length,
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
        data_seed=t.seed,  # the shuffle's seed, stated: the balanced sampler below takes the same one
        save_total_limit=t.save_total_limit,
        include_num_input_tokens_seen="non_padding",  # tokens/s in the live figures
        report_to=report_targets(t.report_to, files),
        dataset_num_proc=1,
        # stated, not TRL's default (on): Unsloth's CPU path took that over the LoRA setting's "false" and
        # recomputed every layer (a quarter of each step); "unsloth"/"true" set up the model's own kind of it
        gradient_checkpointing=cfg.lora.use_gradient_checkpointing != "false",
        ddp_find_unused_parameters=False if dist.world_size() > 1 else None,  # no graph walk per step
    )


def sft_config(cfg: RunConfig, run_dir: Path, on_gpu: bool, n_rows: int = 0, evaluating: bool = False,
               files: RunFiles | None = None):
    from trl import SFTConfig
    return SFTConfig(
        **trainer_args(cfg, run_dir, on_gpu, n_rows, evaluating, files),
        packing=cfg.train.packing,
        # The rows come prepared: tokenized, masked, truncated, rows with no reply dropped (studio/prepare.py,
        # equal to TRL's output: tests/test_templates.py). TRL's own pass over them (and Unsloth's on a GPU) is
        # serial Python: 43-46 s before step 1 of an epoch on 100k rows (bench/gpu_trl_pass.py). Packing needs it.
        dataset_kwargs={"skip_prepare_dataset": True} if not cfg.train.packing else None,
        # several ranks: each step's rows (the same ones one GPU would take) split into micro-batches of equal
        # cost, so no rank waits for the longest (studio/balance.py); one rank keeps plain shuffling
        train_sampling_strategy="batch_rebalance" if dist.world_size() > 1 and cfg.distributed.balance
        else "random",
    )


def model_source(cfg: RunConfig, files: RunFiles) -> str:
    """A local folder as is; a Hub id downloaded first with progress (bytes of the total), then loaded."""
    from studio import access
    folder = access.model_folder(cfg.model.name)  # the rule the form had: a hand-edited config.yaml gets no more
    if folder is not None:
        return str(folder)
    from huggingface_hub import snapshot_download
    files.phase("model_download")
    try:
        return snapshot_download(cfg.model.name, token=os.environ.get("HF_TOKEN") or None,
                                 allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"],
                                 tqdm_class=progress_bar(files))
    except Exception as exc:
        raise RuntimeError(f"could not download {cfg.model.name}: {str(exc).splitlines()[0][:300]}") from None


def progress_bar(files: RunFiles):
    """A tqdm class that reports huggingface_hub's byte counts to status.json instead of a terminal."""
    from tqdm.auto import tqdm

    class StatusBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = open(os.devnull, "w")
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            super().update(n)
            if self.unit == "B" and self.total:
                files.progress(done=self.n, total=self.total, unit="bytes")

    return StatusBar


def prepared_rows(cfg: RunConfig, ds, indices, tokenizer, files: RunFiles, what: str, drop=()):
    """Prepare the chosen rows of `ds` (or reuse them from the cache); events say which.
    Returns (the prepared rows, {check code: rows left out while tokenizing})."""
    used = len(ds) if indices is None else len(indices)
    key = prepare.cache_key(cfg, tokenizer, indices, len(ds)) + ("-eval" if what == "eval" else "")
    cached = prepare.load_cached(key)
    if cached is not None:
        prepared, info = cached
        files.progress(done=used, total=used, detail="reused")
        files.event("prepared", rows=used, dropped=info["dropped"], reused=True, split=what)
        return prepared, info["left_out"]
    t0 = time.time()

    def report(done, total):
        files.progress(done=done, total=total, rate=round(done / max(1e-6, time.time() - t0), 1))

    prepared, left_out = prepare.prepare(ds, indices, tokenizer, cfg.data.template, cfg.train.max_length,
                                         cfg.data.train_on_responses_only, progress=report, drop=drop)
    dropped = len(left_out[prepare.NO_TRAINED_TOKENS])
    prepare.save_cached(key, prepared, {"dropped": dropped, "left_out": left_out, "rows": used})
    files.event("prepared", rows=used, dropped=dropped, reused=False, seconds=round(time.time() - t0, 2), split=what)
    return prepared, left_out


@dataclass
class RunRows:
    """The rows a run uses, before any tokenizing."""
    ds: data_mod.Dataset
    train: list[int] | None            # rows of ds it trains on (None: every row), data.drop's text checks applied
    eval_ds: data_mod.Dataset | None   # what it evaluates on, if anything
    eval: list[int]                    # rows of eval_ds
    left_out: dict[str, list[int]]     # data.drop's text checks: the rows each left out
    used: int                          # rows picked before data.drop

    @property
    def count(self) -> int:
        return len(self.ds) if self.train is None else len(self.train)

    def eval_prompts(self, n: int = 2) -> list[str]:
        """The first user turns of a few held-out rows: they join the sample prompts answered at each eval."""
        found = []
        for i in self.eval[:n] if self.eval_ds is not None else []:
            first_user = next((m["content"] for m in self.eval_ds.standardized(i) if m["role"] == "user"), None)
            if first_user:
                found.append(first_user[:500])
        return found


def run_rows(cfg: RunConfig, files: RunFiles, world: int = 1) -> RunRows:
    """Load the run's data and pick its rows (the eval holdout, the max_steps sample, data.drop's text checks)."""
    files.phase("data")
    allowed = data_mod.allowed_roots(folder.read_meta(files.dir).get("owner"))
    token = os.environ.get("HF_TOKEN")
    d, t = cfg.data, cfg.train
    ds = data_mod.load_dataset_source(d.source, d.path, d.split, d.max_rows, token=token, allowed_roots=allowed)
    eval_source = data_mod.eval_source(d)  # a second file, or another split of the same Hub dataset
    eval_file = data_mod.load_dataset_source(*eval_source, 0, token=token, allowed_roots=allowed) \
        if eval_source else None
    split = data_mod.run_split(ds, eval_file, d, t, t.per_device_train_batch_size * t.gradient_accumulation_steps
                               * world)
    indices, eval_ds = split.train, split.eval_ds
    used = len(ds) if indices is None else len(indices)
    files.event("dataset", rows=len(ds), used=used, format=ds.format, name=ds.name,
                eval_rows=len(split.eval))
    unknown = checks.unknown_checks(d.drop)  # a hand-edited config.yaml: Start refuses it, `studio.train` stops here
    if unknown:
        raise ValueError(checks.MESSAGES["err_drop_code"][0].format(code=unknown[0], known=", ".join(checks.CHECKS)))
    left_out = checks.text_drops(ds, indices, eval_ds, split.eval, d.drop)  # data.drop's text checks, before tokens
    gone = {i for rows in left_out.values() for i in rows}
    if gone:
        indices = [i for i in (range(len(ds)) if indices is None else indices) if i not in gone]
    return RunRows(ds, indices, eval_ds, split.eval, left_out, used)


def build_dataset(cfg: RunConfig, tokenizer, files: RunFiles, world: int = 1):
    """The rows this run trains on (and evaluates on), prepared or reused from the cache.

    Returns (train dataset, rows dropped, rows used, eval dataset or None, the eval rows' first user turns)."""
    rows = run_rows(cfg, files, world)
    files.phase("prepare", done=0, total=rows.count, unit="rows")
    train_set, token_left_out = prepared_rows(cfg, rows.ds, rows.train, tokenizer, files, "train", drop=cfg.data.drop)
    left_out = {**rows.left_out, **token_left_out}
    record_drops(files, cfg.data.drop, left_out, rows.used)
    eval_set = prepared_rows(cfg, rows.eval_ds, rows.eval, tokenizer, files, "eval")[0] \
        if rows.eval_ds is not None else None
    return train_set, len(left_out[prepare.NO_TRAINED_TOKENS]), rows.used, eval_set, rows.eval_prompts()


def record_drops(files: RunFiles, wanted, left_out: dict, used: int) -> None:
    """Every row the run left out, by check (dropped_rows.json: the exported script leaves out the same rows), and
    an event with the counts of the checks config.yaml asked for (data.drop), which the Train tab's summary says."""
    if not files.writer:
        return
    folder.write_json_atomic(files.dir / checks.DROPPED_ROWS_FILE, {code: rows for code, rows in left_out.items() if rows})
    if wanted:
        counts = {code: len(left_out.get(code, [])) for code in checks.CHECKS if code in wanted}
        files.event("data_drop", checks=list(wanted), counts=counts, total=sum(counts.values()), rows=used)


def run(run_dir: Path, files: RunFiles, resume: bool = False) -> int:
    cfg = RunConfig.load(run_dir / "config.yaml")
    # Unsloth patches transformers, TRL and PEFT when imported: it must come first.
    import unsloth  # noqa: F401, I001
    from unsloth import FastLanguageModel
    import torch
    dist.setup_device()  # cuda:LOCAL_RANK under torchrun (Unsloth loads onto it)
    on_gpu = torch.cuda.is_available()

    # 1. Model: FastLanguageModel.from_pretrained, then LoRA adapters on the chosen modules (or, for a preference
    # run that starts from an earlier run's adapter, the base with that adapter, trainable).
    source = model_source(cfg, files)
    start_adapter = None
    if cfg.model.adapter_from:
        from studio import preference
        start_adapter = preference.start_adapter(cfg, run_dir, source)  # the owner is checked again here
    files.phase("model_load")
    if os.environ.get("STUDIO_FAULT_SLOW_PHASE") == "model_load":  # tests: a load as slow as a big model's
        time.sleep(60)
    dtype = None if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    gc = {"true": True, "false": False}.get(cfg.lora.use_gradient_checkpointing, cfg.lora.use_gradient_checkpointing)
    model, tokenizer = FastLanguageModel.from_pretrained(
        str(start_adapter or source), max_seq_length=cfg.model.max_seq_length, dtype=dtype,
        load_in_4bit=cfg.model.load_in_4bit and on_gpu, token=os.environ.get("HF_TOKEN"),
        **({"use_gradient_checkpointing": gc} if start_adapter else {}))
    if start_adapter is None:
        model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora.r, lora_alpha=cfg.lora.lora_alpha, lora_dropout=cfg.lora.lora_dropout,
            target_modules=cfg.lora.target_modules, bias=cfg.lora.bias, use_gradient_checkpointing=gc,
            random_state=cfg.lora.random_state)
    trainable, total = model.get_nb_trainable_parameters()
    files.event("model", trainable=trainable, total=total, on_gpu=on_gpu,
                load_in_4bit=cfg.model.load_in_4bit and on_gpu, adapter_from=cfg.model.adapter_from or None)

    # 2-3. Data and trainer, the stage's own: SFT below; DPO and ORPO on chosen/rejected pairs in studio/preference.py
    tokenizer = templates.apply_template(tokenizer, cfg.data.template)
    if cfg.train.stage == "sft":
        trainer, studio_callback, start_reserved = sft_trainer(cfg, run_dir, model, tokenizer, files, on_gpu, total)
    else:
        from studio import preference
        trainer, studio_callback, start_reserved = preference.build_trainer(cfg, run_dir, model, tokenizer, files,
                                                                            on_gpu)
    files.event("memory_start", start_reserved_gb=round(start_reserved, 3), **memory_figures(start_reserved))

    checkpoint = folder.last_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise ValueError("this run has no checkpoint to resume from")
    if cfg.train.stage == "sft" and trainer.eval_dataset is not None and not resume:
        # the base model's eval loss and answers, once (a Resume has them)
        files.phase("base_eval")
        trainer.evaluate()  # LoRA's B starts at zero: the model is the base model until the first step
    stats = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)

    # 4. Save: the adapter (and tokenizer with its template), and the chapter's summary figures.
    files.phase("save")
    stopped = studio_callback.stopped  # the agreed answer, the same on every rank
    if dist.fsdp2_active():  # Unsloth's Trainer.save_model gathers the sharded adapter (every rank calls it)
        trainer.save_model(str(run_dir / "adapter"))
    else:  # one process, or DDP: rank 0 writes
        model.save_pretrained(str(run_dir / "adapter"), is_main_process=dist.is_main())
    if dist.is_main():
        tokenizer.save_pretrained(str(run_dir / "adapter"))
    files.phase(None)
    summary = {"train_runtime": round(stats.metrics.get("train_runtime", 0.0), 3),
               "train_loss": stats.metrics.get("train_loss"), "step": trainer.state.global_step,
               # as trained, not as asked: TRL's config default once turned it on behind a "false"
               "gradient_checkpointing": any(getattr(m, "gradient_checkpointing", False) for m in model.modules()),
               **memory_figures(start_reserved)}
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
        # load_best_model_at_end: the adapter saved above is the best checkpoint's
        summary.update(best_step=int(trainer.state.best_model_checkpoint.rsplit("-", 1)[-1]),
                       best_eval_loss=trainer.state.best_metric,
                       early_stopped=bool(not stopped and trainer.state.global_step < trainer.state.max_steps))
    files.event("end", stopped=stopped, phases=files.status["phases"], tokens_seen=trainer.state.num_input_tokens_seen,
                **summary)
    files.set(state="stopped" if stopped else "completed", ended_at=time.time(), **summary)
    if files.writer:
        try:  # this machine's tokens/s for this shape and setting: the next estimate's
            timing.remember(run_dir)
        except Exception:  # the run is complete whatever happens to the index
            traceback.print_exc()
    return 0


def stage_callbacks(cfg: RunConfig, files: RunFiles, tokenizer, start_reserved: float, eval_prompts=None) -> list:
    """The live figures and the STOP file (first: the run asks it whether it stopped); with an eval set, the sample
    answers at each evaluation and early stopping."""
    callbacks = [make_callback(files, start_reserved)]
    if eval_prompts is not None:
        from transformers import EarlyStoppingCallback
        callbacks.append(make_sample_callback(files, tokenizer, list(cfg.train.sample_prompts) + eval_prompts))
        if cfg.train.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    return callbacks


def sft_trainer(cfg: RunConfig, run_dir: Path, model, tokenizer, files: RunFiles, on_gpu: bool, total_params: int):
    """SFTTrainer on the rows prepared here (standardized, rendered with the chat template, tokenized, the prompts
    masked). Returns (trainer, the studio's callback, GPU memory reserved before training)."""
    import torch
    train_dataset, dropped, used, eval_dataset, eval_users = build_dataset(cfg, tokenizer, files, dist.world_size())
    for prepared in (train_dataset, eval_dataset):  # every row is cut to max_length already: Unsloth's mark for
        if prepared is not None:                     # it, so it keeps padding-free batches without its own pass
            prepared._unsloth_truncated_to = cfg.train.max_length
    if cfg.data.train_on_responses_only:
        files.event("dropped", count=dropped, total=used)  # rows with no response left after truncation
    if len(train_dataset) == 0:
        raise ValueError("no row has a response left after truncation: raise max_length")

    # The dataset is already tokenized and masked: TRL uses input_ids and labels as they are.
    files.phase("trainer")
    from trl import SFTTrainer
    start_reserved = torch.cuda.max_memory_reserved() / GIB if on_gpu else 0.0
    args = sft_config(cfg, run_dir, on_gpu, len(train_dataset), evaluating=eval_dataset is not None, files=files)
    callbacks = stage_callbacks(cfg, files, tokenizer, start_reserved, eval_users if eval_dataset is not None else None)
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=train_dataset,
                         eval_dataset=eval_dataset, args=args, callbacks=callbacks)
    from studio import balance  # acts where sft_config asked for balanced ranks
    balance.install(trainer, cfg.train.seed, balance.attention_share(model.config, total_params))
    if on_gpu or dist.world_size() > 1:  # else transformers gathers across ranks on every micro-batch
        count_tokens_lazily(trainer)
    return trainer, callbacks[0], start_reserved


def failure_hint(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".lower()
    if "out of memory" in text or type(exc).__name__ == "OutOfMemoryError":
        return "oom"
    if isinstance(exc, data_mod.DataError):
        return "data"
    return "crash"


def hold_locks(run_dir: Path) -> tuple[int, int]:
    """The locks the launcher handed over (STUDIO_LOCK_FDS), or, started by hand, taken here."""
    handed = os.environ.pop("STUDIO_LOCK_FDS", "")
    if dist.rank() != 0:  # under torchrun the launcher (started by the app) or rank 0 (by hand) holds them
        return -1, -1
    if handed:
        gpu, run = (int(x) for x in handed.split(","))
        return gpu, run
    try:
        return folder.take_locks(run_dir)
    except folder.Busy as exc:
        raise SystemExit(f"studio.train: {exc}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--standby", type=int, metavar="FD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.standby is not None:
        return standby(args.standby)
    if args.run_dir is None:
        parser.error("RUN_DIR is required")
    run_dir = args.run_dir.resolve()
    locks = hold_locks(run_dir)  # noqa: F841  (held until the process ends; the OS releases them)
    files = RunFiles(run_dir, args.resume)  # in the "worker" phase (imports) until the model loads
    code = 1
    try:
        code = run(run_dir, files, resume=args.resume)
    except BaseException as exc:  # every failure ends as a readable status, never a silent death
        traceback.print_exc()
        tb = traceback.format_exc().strip().splitlines()
        report = dict(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000], hint=failure_hint(exc),
                      traceback="\n".join(tb[:1] + tb[-20:]), ended_at=time.time(),
                      resumable=folder.last_checkpoint(run_dir) is not None)
        if isinstance(exc, data_mod.DataError):  # the UI says it in the reader's language (run_view.error_text)
            report["data_error"] = exc.as_dict()
        if dist.world_size() > 1:  # the first rank to fail reports (the others fail because it left)
            report.update(failed_rank=dist.rank(), world_size=dist.world_size())
            try:
                fd = os.open(run_dir / "failed_rank", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(dist.rank()).encode())
                os.close(fd)
                files.writer = True
                files.status.update(report, updated_at=time.time())
                folder.write_json_atomic(run_dir / "status.json", files.status)
            except FileExistsError:
                pass
        else:
            files.set(**report)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def prewarm() -> None:
    """What every run imports, done ahead of time by a standby worker."""
    import unsloth  # noqa: F401, I001
    from unsloth import FastLanguageModel  # noqa: F401
    import datasets  # noqa: F401
    import torch  # noqa: F401
    from trl import SFTConfig, SFTTrainer  # noqa: F401
    from unsloth_zoo.dataset_utils import train_on_responses_only  # noqa: F401


def standby(fd: int) -> int:
    """Wait, imports done, for the app to hand over a run (studio/runs/launcher.py: Standby); then run it.

    "R" says the imports are done; "A" says the run is ours: until the app reads it, the app keeps its own
    copies of the run's locks and starts the run fresh if this process dies first."""
    sock = socket.socket(fileno=fd)
    prewarm()
    try:
        sock.send(b"R")
    except OSError:
        pass  # the app may have gone, or handed a run over and be waiting for "A": read what it sent
    try:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
    except OSError:
        return 0
    if not message or len(fds) != 3:
        return 0  # the app went away: nothing to run
    gpu, run_lock, log = fds
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    try:
        job = json.loads(message)
        folder.apply_environment_changes(job.get("env_changes") or {})
        os.environ.update(job.get("env") or {})
        os.environ["STUDIO_LOCK_FDS"] = f"{gpu},{run_lock}"
        os.environ["STUDIO_HANDED_AT"] = str(job.get("handed_at") or time.time())  # the wait for our imports
        argv = [job["run_dir"]] + (["--resume"] if job.get("resume") else [])
    except Exception:  # said in the run's log; the app starts the run fresh (no "A" came)
        traceback.print_exc()
        return 1
    try:
        sock.send(b"A")
    except OSError:
        pass  # the app went away: the run is ours all the same
    sock.close()
    return main(argv)


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)  # skip the interpreter's slow teardown: the locks are released, and the next run starts, now
