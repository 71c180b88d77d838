"""Runs: every past run, its config and curve, and several runs' loss curves overlaid."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import runs
from studio.ui.plots import comparison_figure

COLUMNS = ["id", "name", "model", "dataset", "state", "step", "max_steps", "train_loss", "runtime_s"]


@dataclass
class RunsTab:
    table: gr.Dataframe
    refresh: gr.Button
    selected: gr.Dropdown
    open_run: gr.Button
    plot: gr.Plot
    config: gr.Code


def build(I) -> RunsTab:
    refresh = gr.Button(I("refresh"))
    table = gr.Dataframe(headers=COLUMNS, label=I("runs_table"), interactive=False, elem_id="runs-table")
    with gr.Row():
        selected = gr.Dropdown([], multiselect=True, label=I("compare"), elem_id="runs-compare", scale=4)
        open_run = gr.Button(I("open_run"), scale=1, elem_id="open-run")
    plot = gr.Plot(elem_id="runs-plot")
    config = gr.Code(language="yaml", label="config.yaml", interactive=False)
    return RunsTab(table, refresh, selected, open_run, plot, config)


def table_and_choices():
    rows = runs.list_runs()
    data = [[r.get(c) if not isinstance(r.get(c), float) else round(r[c], 4) for c in COLUMNS] for r in rows]
    ids = [r["id"] for r in rows]
    return data, gr.Dropdown(choices=ids)


def overlay(selected: list[str]):
    series, first_config = {}, ""
    for run_id in selected or []:
        try:
            run_dir = runs.resolve_run(run_id)
        except ValueError:
            continue
        tail = runs.MetricsTail(run_dir / "metrics.jsonl")
        tail.read_new()
        series[run_id] = tail.logs
        first_config = first_config or (run_dir / "config.yaml").read_text(encoding="utf-8")
    return comparison_figure(series), first_config


def wire(tab: RunsTab) -> None:
    tab.refresh.click(table_and_choices, None, [tab.table, tab.selected], api_name="list_runs")
    tab.selected.change(overlay, tab.selected, [tab.plot, tab.config], api_visibility="private")
