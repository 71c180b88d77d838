"""Tab 4 · Train: the SFTConfig form, the run's YAML, Start/Stop/Resume, and the live curve.

Start checks and queues the run (studio/jobs.py) and returns; the worker runs in its own process. A timer
polls the run's status and the new lines of metrics.jsonl; the plot is rebuilt only when the step moved.
A reload re-attaches this browser to its run and restores the form from that run's config.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import auth, distributed, jobs, runs, timing
from studio.config import OPTIMIZERS, REPORT_TO, SCHEDULERS, RunConfig
from studio.ui import estimate_view, run_view, sweep_panel
from studio.ui import form as form_module
from studio.ui.form import form_config
from studio.ui.i18n import refusal, say, t
from studio.ui.plots import training_figure

POLL_S = 1.0
FIELDS = ["run_name", "train.max_length", "train.per_device_train_batch_size", "train.gradient_accumulation_steps",
          "train.max_steps", "train.num_train_epochs", "train.learning_rate", "train.warmup_steps", "train.optim",
          "train.lr_scheduler_type", "data.train_on_responses_only", "train.packing", "train.logging_steps",
          "train.weight_decay", "train.seed", "train.save_steps", "train.save_total_limit", "train.eval_steps",
          "train.early_stopping_patience", "train.sample_prompts", "train.report_to"]
DIST_FIELDS = ["distributed.gpus", "distributed.strategy", "distributed.nodes", "distributed.node_rank",
               "distributed.rdzv_endpoint", "distributed.balance"]  # shown where more than one GPU is visible


@dataclass
class TrainTab:
    fields: dict         # config.yaml key -> the component that edits it (this tab's part of the form)
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
    samples: gr.Markdown
    error: gr.Markdown
    timer: gr.Timer
    dist_preview: gr.Markdown  # the command each node runs (several GPUs only)
    state: gr.State      # this browser's view: {"run": id, "tail": MetricsTail, "step": last plotted, "live": bool}
    finished: gr.State   # the id of a run that just ended here (other tabs refresh on its change)
    estimate: gr.Markdown = None          # the time it will take, before Start
    sweep: sweep_panel.SweepPanel = None  # a small grid of runs

    def config_fields(self) -> dict:
        return self.fields


def build(I, cfg: RunConfig) -> TrainTab:
    several = distributed.visible_gpus() > 1
    keys = FIELDS + (DIST_FIELDS if several else [])
    values = dict(zip(keys, cfg.to_flat(keys)))
    f: dict = {}

    def number(key, label, info=None, precision=0, **kw):
        f[key] = gr.Number(values[key], label=I(label), info=I(info) if info else None, precision=precision, **kw)

    with gr.Row():
        f["run_name"] = gr.Textbox(values["run_name"], label=I("run_name"), scale=2)
        number("train.max_length", "max_length", "max_length_info")
        number("train.per_device_train_batch_size", "batch")
        number("train.gradient_accumulation_steps", "accum", "accum_info")
    with gr.Row():
        number("train.max_steps", "max_steps")
        number("train.num_train_epochs", "epochs", precision=None)
        number("train.learning_rate", "lr", "lr_info", precision=None)
        number("train.warmup_steps", "warmup")
    with gr.Row():
        f["train.optim"] = gr.Dropdown(OPTIMIZERS, value=values["train.optim"], label=I("optim"), info=I("optim_info"))
        f["train.lr_scheduler_type"] = gr.Dropdown(SCHEDULERS, value=values["train.lr_scheduler_type"],
                                                   label=I("scheduler"))
        f["data.train_on_responses_only"] = gr.Checkbox(values["data.train_on_responses_only"],
                                                        label=I("responses_only"), info=I("responses_only_info"))
        f["train.packing"] = gr.Checkbox(values["train.packing"], label=I("packing"), info=I("packing_info"))
    with gr.Row():
        number("train.eval_steps", "eval_steps")
        number("train.early_stopping_patience", "patience", "patience_info")
        f["train.sample_prompts"] = gr.Dropdown(values["train.sample_prompts"], value=values["train.sample_prompts"],
                                                multiselect=True, allow_custom_value=True, label=I("sample_prompts"),
                                                info=I("sample_prompts_info"), scale=2)
    with gr.Accordion(I("advanced"), open=False), gr.Row():
        number("train.logging_steps", "logging_steps")
        number("train.weight_decay", "weight_decay", precision=None)
        number("train.seed", "seed")
        number("train.save_steps", "save_steps")
        number("train.save_total_limit", "save_limit")
        f["train.report_to"] = gr.Dropdown(REPORT_TO, value=values["train.report_to"], label=I("report_to"),
                                           info=I("report_to_info"))
    with gr.Accordion(I("dist_title"), open=True, visible=several):
        with gr.Row():
            if several:
                number("distributed.gpus", "dist_gpus")
                f["distributed.strategy"] = gr.Radio(list(distributed.STRATEGIES), value=values["distributed.strategy"],
                                                     label=I("dist_strategy"), info=I("dist_strategy_info"))
                number("distributed.nodes", "dist_nodes")
                number("distributed.node_rank", "dist_node_rank")
                f["distributed.rdzv_endpoint"] = gr.Textbox(values["distributed.rdzv_endpoint"],
                                                            label=I("dist_endpoint"))
                f["distributed.balance"] = gr.Checkbox(values["distributed.balance"], label=I("dist_balance"),
                                                       info=I("dist_balance_info"))
        dist_preview = gr.Markdown(elem_id="dist-preview")
    with gr.Row():
        fit = gr.Button(I("fit_gpu"), scale=1, elem_id="fit-btn")
        fit_info = gr.Markdown(I("fit_gpu_info"), elem_id="fit-info")
    with gr.Accordion(I("config_preview"), open=False):
        yaml_view = gr.Code(cfg.to_yaml(), language="yaml", label=I("config_preview"), interactive=False)
        command = gr.Textbox("python -m studio.train runs/<run>", label=I("command_preview"), interactive=False)
    estimate = estimate_view.build(I)
    with gr.Row():
        start = gr.Button(I("start"), variant="primary", elem_id="start-btn")
        stop = gr.Button(I("stop_or_cancel"), variant="stop", elem_id="stop-btn")
        resume = gr.Button(I("resume"), elem_id="resume-btn")
    sweep = sweep_panel.build(I)
    progress = gr.Markdown(elem_id="train-progress")
    error = gr.Markdown(elem_id="train-error")
    plot = gr.Plot(label=I("loss_plot"), elem_id="loss-plot")
    summary = gr.Markdown(elem_id="train-summary")
    samples = gr.Markdown(elem_id="train-samples")
    return TrainTab(f, yaml_view, command, start, stop, resume, fit, fit_info, progress, plot, summary, samples, error,
                    gr.Timer(POLL_S, active=False), dist_preview, gr.State(None), gr.State(None), estimate, sweep)


def attach(run_id: str | None):
    """A fresh view of a run for this browser: its whole curve so far, and the timer on while it lives."""
    state = {"run": run_id, "tail": runs.MetricsTail(runs.runs_root() / run_id / "metrics.jsonl") if run_id else None,
             "step": -1, "live": bool(run_id)}
    return state, gr.Timer(active=bool(run_id)), run_id


def start(keys, values, token, request: gr.Request | None = None):
    user = auth.user_from_request(request)
    try:
        status = jobs.start(form_config(keys, values, request), user, token or None)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    if status["state"] == "queued":
        gr.Info(t("queued_toast", request, run=status["run_id"], ahead=status.get("ahead", 0)))
    else:
        gr.Info(t("started", request, run=status["run_id"]))
    return attach(status["run_id"])


def _act(action, state, request, *args):
    run_id = (state or {}).get("run")
    if not run_id:
        raise gr.Error(t("progress_idle", request))
    try:
        action(run_id, auth.user_from_request(request), *args)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    return attach(run_id)


def stop(state, request: gr.Request | None = None):
    return _act(jobs.stop, state, request)


def resume(state, token, request: gr.Request | None = None):
    return _act(jobs.resume, state, request, token or None)


def on_load(browser_run, keys: list[str], request: gr.Request | None = None):
    """Page (re)load: this browser's run if it still may see it, else the person's newest run; the form
    shows that run's config, so Start would train what is on the screen."""
    user = auth.user_from_request(request)
    visible = jobs.visible_runs(user) if user else []
    ids = [r["id"] for r in visible]
    run_id = browser_run if browser_run in ids else (ids[0] if ids else None)
    return (*attach(run_id), *form_module.values_of_run(run_id, keys))


def poll(state, request: gr.Request | None = None):
    """The progress line, the plot (only when it changed), summary, sample answers, error; `finished` at the end."""
    if not state or not state.get("run"):
        return state, t("progress_idle", request), gr.skip(), "", "", "", gr.Timer(active=False), gr.skip()
    try:
        status = jobs.status(state["run"], auth.user_from_request(request))
    except jobs.Refused as exc:
        return None, say(exc, request), None, "", "", "", gr.Timer(active=False), gr.skip()
    tail: runs.MetricsTail = state["tail"]
    tail.read_new()
    logs = tail.logs
    evals = [e for e in tail.events if e.get("event") == "eval"]
    plot = gr.skip()
    step = (logs[-1]["step"] if logs else 0, len(evals))
    if step != state["step"]:
        state["step"] = step
        plot = training_figure(logs, say=lambda key: t(key, request), evals=evals)
    live = status.get("state") in (*runs.ACTIVE_STATES, "queued")
    finished = state["run"] if state.get("live") and not live else gr.skip()
    state["live"] = live
    return (state, run_view.progress_line(status, logs, state["run"], request), plot,
            run_view.summary_text(tail.events, status, request, estimate=None if live else
                                  timing.read_plan(runs.runs_root() / state["run"])),
            run_view.samples_table(tail.events, request),
            run_view.error_text(status, request), gr.Timer(active=live), finished)


def wire(tab: TrainTab, form_keys: list[str], form: list, token: gr.Textbox, browser_run: gr.BrowserState) -> None:
    n = len(form)

    form_module.wire_preview(form_keys, form, [tab.yaml_view, tab.command, tab.dist_preview])

    def _start(request: gr.Request, *args):  # Gradio injects the request by its annotation
        return start(form_keys, list(args[:n]), args[n], request)

    def _fit(request: gr.Request, *args):
        return form_module.fit_to_gpu(form_keys, list(args[:n]), args[n], request)

    attached = [tab.state, tab.timer, browser_run]
    polled = [tab.state, tab.progress, tab.plot, tab.summary, tab.samples, tab.error, tab.timer, tab.finished]
    tab.start.click(_start, form + [token], attached, api_visibility="private",
                    concurrency_limit=1).then(poll, tab.state, polled, api_visibility="private")
    tab.timer.tick(poll, tab.state, polled, api_visibility="private", show_progress="hidden")
    tab.stop.click(stop, tab.state, attached, api_visibility="private").then(
        poll, tab.state, polled, api_visibility="private")
    tab.resume.click(resume, [tab.state, token], attached, api_visibility="private").then(
        poll, tab.state, polled, api_visibility="private")
    tab.fit.click(_fit, form + [token], form + [tab.fit_info], api_visibility="private")
    estimate_view.wire(tab.estimate, form_keys, form, token, tab.finished)
    sweep_panel.wire(tab.sweep, form_keys, form, token, tab.fields["run_name"], attach, poll, attached, polled, tab.state)
