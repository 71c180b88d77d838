"""Runs: this person's runs (an admin: everyone's), kept fresh while one is live; curves overlaid, and what
differs between two runs' configs; sweeps ranked (sweeps_view) and a run's report (report_view)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import yaml

from studio import auth, jobs, runs
from studio.report import config_diff
from studio.ui import report_view, sweeps_view
from studio.ui.i18n import refusal, t
from studio.ui.plots import comparison_figure

COLUMNS = [("col_run", "id"), ("col_model", "model"), ("col_data", "dataset"), ("col_state", "state"),
           ("col_step", "step"), ("col_loss", "train_loss"), ("col_time", "runtime_s")]


@dataclass
class RunsTab:
    table: gr.Dataframe
    refresh: gr.Button
    selected: gr.Dropdown
    open_run: gr.Button
    plot: gr.Plot
    diff: gr.Markdown
    config: gr.Code
    timer: gr.Timer
    delete: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    confirm: gr.Button
    cancel: gr.Button
    sweeps: sweeps_view.SweepsView
    report: report_view.ReportView


def build(I) -> RunsTab:
    with gr.Row():
        refresh = gr.Button(I("refresh"), scale=1)
        gr.Markdown(I("runs_live"))
    table = gr.Dataframe(label=I("runs_table"), interactive=False, elem_id="runs-table", wrap=True,
                         max_height=420)
    with gr.Row():
        selected = gr.Dropdown([], multiselect=True, label=I("compare"), elem_id="runs-compare", scale=4)
        open_run = gr.Button(I("open_run"), scale=1, elem_id="open-run")
        delete = gr.Button(I("delete_runs"), scale=1, variant="stop", elem_id="delete-runs")
    with gr.Row(visible=False) as confirm_row:  # a second click, after reading what goes
        confirm_text = gr.Markdown()
        confirm = gr.Button(I("delete_confirm"), variant="stop", scale=0, elem_id="delete-confirm")
        cancel = gr.Button(I("delete_cancel"), scale=0)
    plot = gr.Plot(elem_id="runs-plot")
    diff = gr.Markdown(elem_id="runs-diff")
    config = gr.Code(language="yaml", label="config.yaml", interactive=False)
    sweeps = sweeps_view.build(I)
    report = report_view.build(I)
    return RunsTab(table, refresh, selected, open_run, plot, diff, config, gr.Timer(2.0, active=False), delete,
                   confirm_row, confirm_text, confirm, cancel, sweeps, report)


def _short(value, n: int = 28) -> str:
    text = str(value)
    return text if len(text) <= n else "…" + text[-(n - 1):]


def table_and_choices(request: gr.Request = None):
    """The table (in the page's language), the compare list, and the timer: on while a run of theirs is live."""
    user = auth.user_from_request(request)
    rows = jobs.visible_runs(user) if user else []
    columns = list(COLUMNS) + ([("col_owner", "owner")] if user and user.admin and auth.sign_in_required() else [])
    data = []
    for r in rows:
        line = []
        for _, key in columns:
            v = r.get(key)
            if key == "state":
                v = t(f"state_{v}", request)
            elif isinstance(v, float):
                v = round(v, 4 if key == "train_loss" else 1)
            elif key in ("model", "dataset"):
                v = _short(v)
            line.append(v)
        data.append(line)
    live = any(r["state"] in (*runs.ACTIVE_STATES, "queued") for r in rows)
    frame = gr.Dataframe(value=data, headers=[t(key, request) for key, _ in columns])
    return frame, gr.Dropdown(choices=[r["id"] for r in rows]), gr.Timer(active=live)


def overlay(selected: list[str], request: gr.Request = None):
    user = auth.user_from_request(request)
    series, configs = {}, {}
    for run_id in selected or []:
        try:
            run_dir = jobs.open_run(run_id, user)
        except jobs.Refused:
            continue
        series[run_id] = runs.read_metrics(run_dir).logs
        configs[run_id] = (run_dir / "config.yaml").read_text(encoding="utf-8")
    diff = ""
    if len(configs) >= 2:
        (first, a), (second, b) = list(configs.items())[:2]
        rows = config_diff(yaml.safe_load(a) or {}, yaml.safe_load(b) or {})
        diff = f"**{t('compare_diff', request)}**\n\n" + (
            "\n".join([f"| | `{first}` | `{second}` |", "| --- | --- | --- |"] +
                      [f"| `{k}` | {x} | {y} |" for k, x, y in rows]) if rows else t("compare_same", request))
    first_config = next(iter(configs.values()), "")
    return comparison_figure(series, say=lambda key: t(key, request)), diff, first_config


def ask_delete(selected: list[str], request: gr.Request = None):
    """The first click: say what would go, and wait for the second."""
    if not selected:
        raise gr.Error(t("delete_none", request))
    return gr.Row(visible=True), t("delete_ask", request, runs=", ".join(f"`{r}`" for r in selected))


def delete(selected: list[str], request: gr.Request = None):
    """The second click: each selected run of this person's goes (a live one is refused: stop it first)."""
    user = auth.user_from_request(request)
    for run_id in selected or []:
        try:
            jobs.delete(run_id, user)
        except jobs.Refused as exc:
            raise refusal(exc, request) from None
    return (gr.Row(visible=False), *table_and_choices(request))


def wire(tab: RunsTab, page: gr.Tab) -> None:
    outputs = [tab.table, tab.selected, tab.timer]
    tab.refresh.click(table_and_choices, None, outputs, api_visibility="private")
    page.select(table_and_choices, None, outputs, api_visibility="private")
    tab.timer.tick(table_and_choices, None, outputs, api_visibility="private", show_progress="hidden")
    tab.selected.change(overlay, tab.selected, [tab.plot, tab.diff, tab.config], api_visibility="private")
    tab.delete.click(ask_delete, tab.selected, [tab.confirm_row, tab.confirm_text], api_visibility="private")
    tab.cancel.click(lambda: gr.Row(visible=False), None, tab.confirm_row, api_visibility="private")
    tab.confirm.click(delete, tab.selected, [tab.confirm_row, *outputs], api_visibility="private")
    sweeps_view.wire(tab.sweeps, page, tab.timer)
    report_view.wire(tab.report, page, tab.timer)
