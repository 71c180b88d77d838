"""The Train tab's Sweep section: one or two fields and their values; Start sweep queues one run per combination
(studio/sweep.py, through jobs.start_many) and the Train tab follows the first."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs, sweep
from studio.config import RunConfig
from studio.ui.form import form_config
from studio.ui.i18n import refusal, say, t

NONE = ""  # the second field left empty


@dataclass
class SweepPanel:
    field_a: gr.Dropdown
    values_a: gr.Textbox
    field_b: gr.Dropdown
    values_b: gr.Textbox
    plan: gr.Markdown
    start: gr.Button


def build(I) -> SweepPanel:
    fields = list(sweep.FIELDS)
    with gr.Accordion(I("sweep_title"), open=False, elem_id="sweep"):
        gr.Markdown(I("sweep_hint"))
        with gr.Row():
            field_a = gr.Dropdown(fields, value="train.learning_rate", label=I("sweep_field_a"), elem_id="sweep-field-a")
            values_a = gr.Textbox(label=I("sweep_values"), placeholder="2e-3, 5e-3, 1e-2", elem_id="sweep-values-a")
            field_b = gr.Dropdown([("—", NONE)] + [(f, f) for f in fields], value=NONE, label=I("sweep_field_b"),
                                  elem_id="sweep-field-b")
            values_b = gr.Textbox(label=I("sweep_values"), placeholder="8, 16", elem_id="sweep-values-b")
        plan = gr.Markdown(elem_id="sweep-plan")
        start = gr.Button(I("sweep_start"), variant="primary", elem_id="sweep-start")
    return SweepPanel(field_a, values_a, field_b, values_b, plan, start)


def axes(field_a: str, values_a: str, field_b: str, values_b: str) -> list[tuple[str, list]]:
    out = [(field_a, sweep.parse_values(field_a, values_a))]
    if field_b:
        out.append((field_b, sweep.parse_values(field_b, values_b)))
    return out


def plan_text(run_name: str, field_a: str, values_a: str, field_b: str, values_b: str, request=None) -> str:
    """'**6 runs**: base-lr0.002-r8, …' and whether they share one data preparation; or what is wrong."""
    if not str(values_a or "").strip():
        return ""
    try:
        grid = axes(field_a, values_a, field_b, values_b)
        names = [c.run_name for c in sweep.grid(RunConfig(run_name=run_name or "run"), grid)]
    except jobs.Refused as exc:
        return "⚠️ " + say(exc, request)
    changing = [f for f, _ in grid if f in sweep.CHANGES_PREPARATION]
    shared = t("sweep_shared", request) if not changing else t("sweep_not_shared", request, field=changing[0])
    return t("sweep_plan", request, n=len(names), names=", ".join(f"`{n}`" for n in names)) + "\n\n" + shared


def start(keys: list[str], values: list, token: str, field_a, values_a, field_b, values_b, request=None) -> str:
    """Queue the sweep; returns its first run's id (the Train tab follows it)."""
    cfg = form_config(keys, values, request)
    try:
        record = sweep.start(cfg, axes(field_a, values_a, field_b, values_b), auth.user_from_request(request),
                             token or None)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    gr.Info(t("sweep_queued", request, n=len(record["runs"])))
    return record["runs"][0]


def wire(panel: SweepPanel, keys: list[str], form: list, token: gr.Textbox, run_name: gr.Textbox, attach, poll,
         attached: list, polled: list, state: gr.State) -> None:
    """attach(run_id) -> the Train tab's `attached` outputs; poll(state) -> its `polled` outputs."""
    n = len(form)
    inputs = [panel.field_a, panel.values_a, panel.field_b, panel.values_b]
    for component in inputs + [run_name]:
        component.change(plan_text, [run_name, *inputs], panel.plan, api_visibility="private", show_progress="hidden")

    def _start(request: gr.Request, *args):
        return attach(start(keys, list(args[:n]), args[n], *args[n + 1:], request=request))

    panel.start.click(_start, form + [token, *inputs], attached, api_visibility="private", concurrency_limit=1).then(
        poll, state, polled, api_visibility="private")
