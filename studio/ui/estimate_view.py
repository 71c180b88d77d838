"""The Train tab's time estimate before Start ('about 40 s on this CPU'), from studio/timing.py: redrawn when a
field that changes it changes, on page load and when a run ends (the studio learned a speed)."""
from __future__ import annotations

import gradio as gr

from studio import auth, data, timing
from studio.config import ConfigError, RunConfig
from studio.ui.i18n import lang, say_data, t

# The fields that change the estimate (the others, learning rate or r, do not)
TRIGGERS = ("model.name", "model.load_in_4bit", "lora.use_gradient_checkpointing", "data.source", "data.path",
            "data.split", "data.max_rows", "data.template", "data.eval_size", "data.eval_path", "train.max_length",
            "train.per_device_train_batch_size", "train.gradient_accumulation_steps", "train.max_steps",
            "train.num_train_epochs", "train.packing", "train.eval_steps", "train.seed", "distributed.gpus")


def build(I) -> gr.Markdown:
    return gr.Markdown(I("est_idle"), elem_id="train-estimate")


def words(plan: timing.Plan, request=None) -> str:
    language = lang(request)
    where = t("est_where_gpu" if timing.is_gpu(plan.device) else "est_where_cpu", request)
    evals = t("est_evals", request, n=plan.evaluations + 1, time=timing.duration(plan.eval_s, language)) \
        if plan.eval_s else ""
    return t("est_history" if plan.source == "history" else "est_guess", request,
             time=timing.duration(plan.seconds, language), where=where, device=plan.device, runs=plan.runs,
             tokens=plan.tokens, rate=plan.tokens_per_s, startup=timing.duration(plan.startup_s, language), evals=evals)


def estimate_text(keys: list[str], values: list, token: str = "", request=None) -> str:
    try:
        cfg = RunConfig.from_flat(keys, values)
    except ConfigError:
        return gr.skip()  # the form says what is wrong (the YAML preview)
    user = auth.user_from_request(request)
    d = cfg.data
    try:
        ds = data.DATASETS.get(d.source, d.path, d.split, d.max_rows, token or None,
                               data.allowed_roots(user.name if user else None))
    except data.DataError as exc:
        return t("est_none", request, why=say_data(exc, request))
    return words(timing.plan_for_run(cfg, ds, token or None), request)


def handler(keys: list[str]):
    """The estimate for the form's values and the token (the form's components, then the token's, as inputs)."""
    def _estimate(request: gr.Request, *args):
        return estimate_text(keys, list(args[:-1]), args[-1], request)
    return _estimate


def wire(box: gr.Markdown, keys: list[str], form: list, token: gr.Textbox, run_finished) -> None:
    """Redraw on a change of the fields in TRIGGERS, and when `run_finished` (the Train tab's) changes; the page's
    load draws it first (studio/ui/__init__.py)."""
    _estimate = handler(keys)
    # One queue for all of them: run side by side, an answer for older values could land after the newest one's
    # (seen in CI); in one line the last change is answered last. An estimate takes milliseconds once cached.
    quiet = dict(api_visibility="private", show_progress="hidden", trigger_mode="always_last",
                 concurrency_limit=1, concurrency_id="train-estimate")
    for key, component in zip(keys, form):
        if key in TRIGGERS:
            component.change(_estimate, form + [token], box, **quiet)
    run_finished.change(_estimate, form + [token], box, **quiet)
