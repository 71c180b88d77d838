"""Tab 4 · Train: the SFTConfig form, the run's YAML, Start/Stop/Resume, and the live curve.

Start writes a run folder and launches `python -m studio.train RUN_DIR`, then returns. A timer
polls the run's status.json and the new lines of metrics.jsonl; the plot is rebuilt only when
the step moved. Reloading the page re-attaches to whatever run is live.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

import gradio as gr

from studio import config as config_mod, data, models, runs
from studio.config import OPTIMIZERS, SCHEDULERS, RunConfig
from studio.ui import dataset_tab
from studio.ui.i18n import t
from studio.ui.plots import training_figure

POLL_S = 1.0


@dataclass
class TrainTab:
    run_name: gr.Textbox
    max_length: gr.Number
    packing: gr.Checkbox
    batch: gr.Number
    accum: gr.Number
    warmup: gr.Number
    max_steps: gr.Number
    epochs: gr.Number
    lr: gr.Number
    logging_steps: gr.Number
    optim: gr.Dropdown
    weight_decay: gr.Number
    scheduler: gr.Dropdown
    seed: gr.Number
    save_steps: gr.Number
    save_limit: gr.Number
    responses_only: gr.Checkbox
    yaml_view: gr.Code
    command: gr.Textbox
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    fit: gr.Button
    fit_info: gr.Markdown
    progress: gr.Markdown
    plot: gr.Plot
    summary: gr.Markdown
    error: gr.Markdown
    timer: gr.Timer
    state: gr.State

    def config_fields(self) -> dict:
        return {"run_name": self.run_name, "train.max_length": self.max_length, "train.packing": self.packing,
                "train.per_device_train_batch_size": self.batch, "train.gradient_accumulation_steps": self.accum,
                "train.warmup_steps": self.warmup, "train.max_steps": self.max_steps,
                "train.num_train_epochs": self.epochs, "train.learning_rate": self.lr,
                "train.logging_steps": self.logging_steps, "train.optim": self.optim,
                "train.weight_decay": self.weight_decay, "train.lr_scheduler_type": self.scheduler,
                "train.seed": self.seed, "train.save_steps": self.save_steps,
                "train.save_total_limit": self.save_limit, "data.train_on_responses_only": self.responses_only}


def build(I, cfg: RunConfig) -> TrainTab:
    tc = cfg.train
    with gr.Row():
        run_name = gr.Textbox(cfg.run_name, label=I("run_name"), scale=2)
        max_length = gr.Number(tc.max_length, label=I("max_length"), info=I("max_length_info"), precision=0)
        batch = gr.Number(tc.per_device_train_batch_size, label=I("batch"), precision=0)
        accum = gr.Number(tc.gradient_accumulation_steps, label=I("accum"), info=I("accum_info"), precision=0)
    with gr.Row():
        max_steps = gr.Number(tc.max_steps, label=I("max_steps"), precision=0)
        epochs = gr.Number(tc.num_train_epochs, label=I("epochs"))
        lr = gr.Number(tc.learning_rate, label=I("lr"), info=I("lr_info"))
        warmup = gr.Number(tc.warmup_steps, label=I("warmup"), precision=0)
    with gr.Row():
        optim = gr.Dropdown(OPTIMIZERS, value=tc.optim, label=I("optim"), info=I("optim_info"))
        scheduler = gr.Dropdown(SCHEDULERS, value=tc.lr_scheduler_type, label=I("scheduler"))
        responses_only = gr.Checkbox(cfg.data.train_on_responses_only, label=I("responses_only"),
                                     info=I("responses_only_info"))
        packing = gr.Checkbox(tc.packing, label=I("packing"), info=I("packing_info"))
    with gr.Accordion(I("advanced"), open=False):
        with gr.Row():
            logging_steps = gr.Number(tc.logging_steps, label=I("logging_steps"), precision=0)
            weight_decay = gr.Number(tc.weight_decay, label=I("weight_decay"))
            seed = gr.Number(tc.seed, label=I("seed"), precision=0)
            save_steps = gr.Number(tc.save_steps, label=I("save_steps"), precision=0)
            save_limit = gr.Number(tc.save_total_limit, label=I("save_limit"), precision=0)
    with gr.Row():
        fit = gr.Button(I("fit_gpu"), scale=1, elem_id="fit-btn")
        fit_info = gr.Markdown(I("fit_gpu_info"), elem_id="fit-info")
    with gr.Accordion(I("config_preview"), open=False):
        yaml_view = gr.Code(cfg.to_yaml(), language="yaml", label=I("config_preview"), interactive=False)
        command = gr.Textbox("python -m studio.train runs/<run>", label=I("command_preview"), interactive=False)
    with gr.Row():
        start = gr.Button(I("start"), variant="primary", elem_id="start-btn")
        stop = gr.Button(I("stop"), variant="stop", elem_id="stop-btn")
        resume = gr.Button(I("resume"), elem_id="resume-btn")
    progress = gr.Markdown(elem_id="train-progress")
    error = gr.Markdown(elem_id="train-error")
    plot = gr.Plot(label=I("loss_plot"), elem_id="loss-plot")
    summary = gr.Markdown(elem_id="train-summary")
    timer = gr.Timer(POLL_S, active=False)
    state = gr.State(None)  # this browser's view: {"run": id, "tail": MetricsTail, "step": last plotted}
    return TrainTab(run_name, max_length, packing, batch, accum, warmup, max_steps, epochs, lr, logging_steps, optim,
                    weight_decay, scheduler, seed, save_steps, save_limit, responses_only, yaml_view, command, start,
                    stop, resume, fit, fit_info, progress, plot, summary, error, timer, state)


# ---------------------------------------------------------------- the form <-> RunConfig

def config_from_values(keys: list[str], values: list) -> RunConfig:
    tree: dict = {}
    for key, value in zip(keys, values):
        if value is None:
            raise gr.Error(f"'{key.split('.')[-1]}' is empty")
        section, _, name = key.rpartition(".")
        (tree.setdefault(section, {}) if section else tree)[name] = value
    try:
        return RunConfig.from_dict(tree)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def values_from_config(cfg: RunConfig, keys: list[str]) -> list:
    flat = cfg.to_dict()
    out = []
    for key in keys:
        node = flat
        for part in key.split("."):
            node = node[part]
        out.append(node)
    return out


def preview(keys: list[str], values: list) -> tuple[str, str]:
    try:
        cfg = config_from_values(keys, values)
    except gr.Error as exc:
        return f"# {exc.message}", ""
    return cfg.to_yaml(), f"python -m studio.train runs/<time>-{runs.sanitize_name(cfg.run_name)}"


# ---------------------------------------------------------------- start / stop / resume

def check_before_start(cfg: RunConfig, token: str | None, request) -> None:
    """Everything that can be refused before a run folder exists: the form, the model, every data row."""
    try:  # fails fast and clearly for a missing folder or an unreachable Hub
        context = models.load_model_config(cfg.model.name, token).get("max_position_embeddings")
    except models.ModelError as exc:
        raise gr.Error(t(str(exc), request)) from None  # a message key or a plain message
    errors = config_mod.validate(cfg, context)
    if errors:
        raise gr.Error(" ".join(dict.fromkeys(t(key, request) for _, key in errors)))
    try:
        ds = dataset_tab.get_dataset(cfg.data.source, cfg.data.path, cfg.data.split, cfg.data.max_rows, token)
        for _ in ds.iter_conversations():  # a bad row is named now, not an hour into training
            pass
    except data.DataError as exc:
        raise gr.Error(str(exc)) from None


def start(keys, values, token, request: gr.Request | None = None):
    cfg = config_from_values(keys, values)
    check_before_start(cfg, token or None, request)
    holder = runs.active_run()
    if holder is not None:
        raise gr.Error(t("err_busy", request, run=holder.name))
    run_dir = runs.create_run(cfg)
    try:
        runs.start_worker(run_dir, env={"HF_TOKEN": token} if token else None)
    except runs.Busy as exc:  # lost a race with another browser: leave nothing behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise gr.Error(t("err_busy", request, run=exc.run_dir.name)) from None
    gr.Info(t("started", request, run=run_dir.name))
    return attach(run_dir.name)


def attach(run_id: str | None):
    """A fresh view of a run for this browser: its whole curve so far, and the timer on while it lives."""
    state = {"run": run_id, "tail": None, "step": -1}
    if run_id:
        state["tail"] = runs.MetricsTail(runs.runs_root() / run_id / "metrics.jsonl")
    return state, gr.Timer(active=bool(run_id))


def stop(state, request: gr.Request | None = None):
    run_id = (state or {}).get("run")
    if not run_id:
        raise gr.Error(t("progress_idle", request))
    run_dir = runs.resolve_run(run_id)
    if runs.read_status(run_dir).get("state") in runs.ACTIVE_STATES:
        runs.request_stop(run_dir)
        gr.Info(t("stop_requested", request))
    return state


def resume(state, token, request: gr.Request | None = None):
    run_id = (state or {}).get("run")
    if not run_id:
        raise gr.Error(t("progress_idle", request))
    run_dir = runs.resolve_run(run_id)
    if not runs.last_checkpoint(run_dir):
        raise gr.Error("this run has no checkpoint to resume from")
    try:
        runs.start_worker(run_dir, resume=True, env={"HF_TOKEN": token} if token else None)
    except runs.Busy as exc:
        raise gr.Error(t("err_busy", request, run=exc.run_dir.name)) from None
    return attach(run_id)


def on_load():
    """Page (re)load: re-attach to the live run, else show the latest run."""
    runs.reap()
    live = runs.active_run()
    if live is not None:
        return attach(live.name)
    latest = next(iter(runs.list_runs()), None)
    return attach(latest["id"] if latest else None)


# ---------------------------------------------------------------- polling

def poll(state, request: gr.Request | None = None):
    """training_status: progress line, plot (only when the step moved), summary, error."""
    runs.reap()
    if not state or not state.get("run"):
        return state, t("progress_idle", request), gr.skip(), "", "", gr.Timer(active=False)
    run_dir = runs.runs_root() / state["run"]
    status = runs.read_status(run_dir)
    tail: runs.MetricsTail = state["tail"]
    tail.read_new()
    logs = tail.logs
    step = logs[-1]["step"] if logs else 0
    plot = gr.skip()
    if step != state["step"]:
        state["step"] = step
        plot = training_figure(logs)
    live = status.get("state") in runs.ACTIVE_STATES
    return (state, progress_line(status, logs, run_dir.name, request), plot,
            summary_text(tail.events, status, request), error_text(status, request), gr.Timer(active=live))


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def progress_line(status: dict, logs: list[dict], run_id: str, request=None) -> str:
    state = status.get("state", "created")
    step, total = status.get("step", 0), status.get("max_steps") or 0
    last = logs[-1] if logs else {}
    elapsed = status.get("elapsed_s") or last.get("elapsed_s")
    if state in runs.ACTIVE_STATES and status.get("started_at") and not elapsed:
        elapsed = time.time() - status["started_at"]
    eta = elapsed / step * (total - step) if step and total and elapsed else None
    pct = f" · {100 * step / total:.0f}%" if total else ""
    parts = [f"**{run_id}** · `{state}` · {t('progress_step', request)} **{step} / {total or '?'}**{pct}",
             t("progress_elapsed", request, elapsed=_clock(elapsed),
               eta=_clock(eta) if state in runs.ACTIVE_STATES else "–")]
    rates = [e["tokens_per_s"] for e in logs[-5:] if e.get("tokens_per_s")]
    if rates:
        parts.append(t("progress_tokens", request, rate=f"{sum(rates) / len(rates):,.0f}"))
    if last.get("device") == "cuda":
        parts.append(t("progress_gpu", request, peak=last["peak_reserved_gb"], pct=last["peak_pct"],
                       total=last["total_gb"], train=last["peak_training_gb"]))
    elif last.get("device") == "cpu":
        parts.append(t("progress_cpu", request, peak=last["process_peak_gb"]))
    bar = ""
    if total:
        filled = int(30 * step / total)
        bar = "\n\n`" + "█" * filled + "░" * (30 - filled) + "`"
    return " · ".join(parts) + bar


def summary_text(events: list[dict], status: dict, request=None) -> str:
    """The chapter's printed summary lines (kept in the notebook's words), then what to do next."""
    lines = []
    for e in events:
        if e.get("event") == "model":
            pct = 100 * e["trainable"] / max(1, e["total"])
            lines.append(f"Trainable parameters = {e['trainable']:,} of {e['total']:,} ({pct:.2f}% trained)")
        elif e.get("event") == "dropped" and e.get("count"):
            lines.append(f"Removed {e['count']} out of {e['total']} samples with no response left after truncation.")
        elif e.get("event") == "memory_start" and e.get("device") == "cuda":
            lines.append(f"GPU = {e['gpu_name']}. Max memory = {e['total_gb']} GB. "
                         f"{e['start_reserved_gb']} GB of memory reserved.")
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    if end:
        rt = end["train_runtime"]
        lines += [f"{rt} seconds used for training.", f"{rt / 60:.2f} minutes used for training.",
                  f"train_loss = {end['train_loss']:.4f}" if end.get("train_loss") is not None else ""]
        if end.get("device") == "cuda":
            lines += [f"Peak reserved memory = {end['peak_reserved_gb']} GB.",
                      f"Peak reserved memory for training = {end['peak_training_gb']} GB.",
                      f"Peak reserved memory % of max memory = {end['peak_pct']} %.",
                      f"Peak reserved memory for training % of max memory = {end['training_pct']} %."]
        else:
            lines.append(f"Process memory peak = {end.get('process_peak_gb')} GB (CPU).")
        lines.append(t("adapter_saved", request))
    return "\n".join(f"- {x}" for x in lines if x)


def error_text(status: dict, request) -> str:
    if status.get("state") != "failed":
        return ""
    hint = t(f"hint_{status.get('hint', 'crash')}", request)
    tb = status.get("traceback", "")
    resumable = " A checkpoint exists: press Resume." if status.get("resumable") else ""
    return f"### ❌ {status.get('error', 'failed')}\n{hint}{resumable}\n\n```\n{tb[-3000:]}\n```"


def wire(tab: TrainTab, form_keys: list[str], form: list, token: gr.Textbox) -> None:
    n = len(form)

    def _preview(*values):
        return preview(form_keys, list(values))

    for comp in form:
        comp.change(_preview, form, [tab.yaml_view, tab.command], api_visibility="private", queue=False)

    def _start(request: gr.Request, *args):  # Gradio injects the request by its annotation
        return start(form_keys, list(args[:n]), args[n], request)

    outputs_poll = [tab.state, tab.progress, tab.plot, tab.summary, tab.error, tab.timer]
    tab.start.click(_start, form + [token], [tab.state, tab.timer], api_name="start_training",
                    concurrency_limit=1).then(poll, tab.state, outputs_poll, api_visibility="private")
    tab.timer.tick(poll, tab.state, outputs_poll, api_name="training_status", show_progress="hidden")
    tab.stop.click(stop, tab.state, tab.state, api_name="stop_training").then(
        poll, tab.state, outputs_poll, api_visibility="private")
    def _fit(request: gr.Request, *values):
        return fit_to_gpu(form_keys, list(values), request)

    tab.fit.click(_fit, form, form + [tab.fit_info], api_name="fit_to_gpu")
    tab.resume.click(resume, [tab.state, token], [tab.state, tab.timer], api_name="resume_training").then(
        poll, tab.state, outputs_poll, api_visibility="private")


def fit_to_gpu(keys: list[str], values: list, request=None):
    """The fastest LoRA setting whose estimated peak fits this GPU's free memory (studio.fit)."""
    from studio import fit
    cfg = config_from_values(keys, values)
    try:
        preset = fit.pick_for_run(cfg)
    except ValueError as exc:  # no GPU, or no config.json to estimate from
        raise gr.Error(t("fit_no_gpu", request) if "GPU" in str(exc) else str(exc)) from None
    text = fit.describe(cfg)
    fit.apply(cfg, preset)
    return [*values_from_config(cfg, keys), text]


def apply_recipe(name: str, keys: list[str]):
    cfg = config_mod.RECIPES.get(name, RunConfig)()
    return values_from_config(cfg, keys)

