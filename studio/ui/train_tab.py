"""Tab 4 · Train: the SFTConfig form, the run's YAML, Start/Stop/Resume, and the live curve.

Start checks and queues the run (studio/jobs.py) and returns; the worker runs in its own process. A timer
polls the run's status and the new lines of metrics.jsonl; the plot is rebuilt only when the step moved.
A reload re-attaches this browser to its run and restores the form from that run's config.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs, runs
from studio.config import OPTIMIZERS, SCHEDULERS, ConfigError, RunConfig
from studio.ui import run_view
from studio.ui.i18n import refusal, say, t
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
    state: gr.State      # this browser's view: {"run": id, "tail": MetricsTail, "step": last plotted, "live": bool}
    finished: gr.State   # the id of a run that just ended here (other tabs refresh on its change)

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
        stop = gr.Button(I("stop_or_cancel"), variant="stop", elem_id="stop-btn")
        resume = gr.Button(I("resume"), elem_id="resume-btn")
    progress = gr.Markdown(elem_id="train-progress")
    error = gr.Markdown(elem_id="train-error")
    plot = gr.Plot(label=I("loss_plot"), elem_id="loss-plot")
    summary = gr.Markdown(elem_id="train-summary")
    timer = gr.Timer(POLL_S, active=False)
    return TrainTab(run_name, max_length, packing, batch, accum, warmup, max_steps, epochs, lr, logging_steps, optim,
                    weight_decay, scheduler, seed, save_steps, save_limit, responses_only, yaml_view, command, start,
                    stop, resume, fit, fit_info, progress, plot, summary, error, timer, gr.State(None), gr.State(None))


def form_config(keys: list[str], values: list, request=None) -> RunConfig:
    try:
        return RunConfig.from_flat(keys, values)
    except ConfigError as exc:
        raise refusal(jobs.Refused("err_config", problems=exc.problems), request) from None


def preview(keys: list[str], values: list, request=None) -> tuple[str, str]:
    try:
        cfg = RunConfig.from_flat(keys, values)
    except ConfigError as exc:
        return f"# {say(jobs.Refused('err_config', problems=exc.problems), request)}", ""
    return cfg.to_yaml(), f"python -m studio.train runs/<time>-{runs.sanitize_name(cfg.run_name)}"


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
    runs.reap()
    user = auth.user_from_request(request)
    visible = jobs.visible_runs(user) if user else []
    ids = [r["id"] for r in visible]
    run_id = browser_run if browser_run in ids else (ids[0] if ids else None)
    values = [gr.skip()] * len(keys)
    if run_id:
        try:
            values = RunConfig.load(runs.runs_root() / run_id / "config.yaml").to_flat(keys)
        except (OSError, ConfigError):
            pass
    return (*attach(run_id), *values)


def poll(state, request: gr.Request | None = None):
    """The progress line, the plot (only when the step moved), summary, error; `finished` on the run's end."""
    runs.reap()
    if not state or not state.get("run"):
        return state, t("progress_idle", request), gr.skip(), "", "", gr.Timer(active=False), gr.skip()
    try:
        status = jobs.status(state["run"], auth.user_from_request(request))
    except jobs.Refused as exc:
        return None, say(exc, request), None, "", "", gr.Timer(active=False), gr.skip()
    tail: runs.MetricsTail = state["tail"]
    tail.read_new()
    logs = tail.logs
    plot = gr.skip()
    step = logs[-1]["step"] if logs else 0
    if step != state["step"]:
        state["step"] = step
        plot = training_figure(logs, say=lambda key: t(key, request))
    live = status.get("state") in (*runs.ACTIVE_STATES, "queued")
    finished = state["run"] if state.get("live") and not live else gr.skip()
    state["live"] = live
    return (state, run_view.progress_line(status, logs, state["run"], request), plot,
            run_view.summary_text(tail.events, status, request), run_view.error_text(status, request),
            gr.Timer(active=live), finished)


def fit_to_gpu(keys: list[str], values: list, token: str = "", request=None):
    """The fastest LoRA setting whose estimated peak fits this GPU, planned on the dataset's own lengths."""
    from studio import fit
    cfg = form_config(keys, values, request)
    try:
        lengths = fit.dataset_lengths(cfg, token or None, auth.user_from_request(request))
        preset = fit.pick_for_run(cfg, lengths=lengths)
    except ValueError as exc:  # no GPU, or no config.json to estimate from
        raise gr.Error(t("fit_no_gpu", request) if "GPU" in str(exc) else str(exc)) from None
    text = fit.describe(cfg, lengths=lengths)
    fit.apply(cfg, preset)
    return [*cfg.to_flat(keys), text]


def wire(tab: TrainTab, form_keys: list[str], form: list, token: gr.Textbox, browser_run: gr.BrowserState) -> None:
    n = len(form)

    def _preview(*values, request: gr.Request = None):
        return preview(form_keys, list(values), request)

    for comp in form:
        comp.change(_preview, form, [tab.yaml_view, tab.command], api_visibility="private", queue=False)

    def _start(*args, request: gr.Request = None):
        return start(form_keys, list(args[:n]), args[n], request)

    def _fit(*args, request: gr.Request = None):
        return fit_to_gpu(form_keys, list(args[:n]), args[n], request)

    attached = [tab.state, tab.timer, browser_run]
    polled = [tab.state, tab.progress, tab.plot, tab.summary, tab.error, tab.timer, tab.finished]
    tab.start.click(_start, form + [token], attached, api_visibility="private",
                    concurrency_limit=1).then(poll, tab.state, polled, api_visibility="private")
    tab.timer.tick(poll, tab.state, polled, api_visibility="private", show_progress="hidden")
    tab.stop.click(stop, tab.state, attached, api_visibility="private").then(
        poll, tab.state, polled, api_visibility="private")
    tab.resume.click(resume, [tab.state, token], attached, api_visibility="private").then(
        poll, tab.state, polled, api_visibility="private")
    tab.fit.click(_fit, form + [token], form + [tab.fit_info], api_visibility="private")
