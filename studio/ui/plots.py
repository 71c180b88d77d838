"""Plotly figures for the live training curve and the run comparison."""
from __future__ import annotations

import plotly.graph_objects as go


def training_figure(logs: list[dict], title: str = "", say=lambda key: key.removeprefix("plot_"),
                    evals: list[dict] | None = None) -> go.Figure:
    """Loss and grad norm on the left axis, learning rate on the right, all against the step; eval loss as
    points where the run evaluated. `say` translates the legend and axis labels (i18n keys plot_*)."""
    fig = go.Figure()
    steps = [e["step"] for e in logs]
    fig.add_trace(go.Scatter(x=steps, y=[e.get("loss") for e in logs], name=say("plot_loss"), mode="lines+markers",
                             line=dict(color="#2563eb", width=2), marker=dict(size=4)))
    if evals:
        fig.add_trace(go.Scatter(x=[e["step"] for e in evals], y=[e["eval_loss"] for e in evals],
                                 name=say("plot_eval_loss"), mode="lines+markers",
                                 line=dict(color="#dc2626", width=2), marker=dict(size=7, symbol="diamond")))
    if any(e.get("grad_norm") is not None for e in logs):
        fig.add_trace(go.Scatter(x=steps, y=[e.get("grad_norm") for e in logs], name=say("plot_grad_norm"), mode="lines",
                                 line=dict(color="#f59e0b", width=1, dash="dot")))
    if any(e.get("learning_rate") is not None for e in logs):
        fig.add_trace(go.Scatter(x=steps, y=[e.get("learning_rate") for e in logs], name=say("plot_lr"),
                                 mode="lines", yaxis="y2", line=dict(color="#10b981", width=1)))
    fig.update_layout(
        title=title or None, height=360, margin=dict(l=50, r=60, t=30 if title else 10, b=40),
        xaxis=dict(title=say("plot_step")), yaxis=dict(title=say("plot_loss_axis")),
        yaxis2=dict(title=say("plot_lr"), overlaying="y", side="right", showgrid=False, exponentformat="e"),
        legend=dict(orientation="h", y=1.12, x=0), template="plotly_white")
    return fig


def comparison_figure(series: dict[str, list[dict]], say=lambda key: key.removeprefix("plot_"),
                      value: str = "loss") -> go.Figure:
    """One curve per run: its `value` ("loss", or "eval_loss" from eval events) against the step."""
    fig = go.Figure()
    for name, logs in series.items():
        fig.add_trace(go.Scatter(x=[e["step"] for e in logs], y=[e.get(value) for e in logs], name=name,
                                 mode="lines+markers" if value == "eval_loss" else "lines"))
    fig.update_layout(height=380, margin=dict(l=50, r=20, t=10, b=40), xaxis=dict(title=say("plot_step")),
                      yaxis=dict(title=say(f"plot_{value}")), legend=dict(orientation="h", y=1.1, x=0),
                      template="plotly_white")
    return fig


def length_figure(lengths: list[int], max_length: int, say=lambda key: key.removeprefix("plot_")) -> go.Figure:
    """Tokens per row (template + EOS) as a histogram, max_length marked: the rows right of it are cut."""
    fig = go.Figure(go.Histogram(x=lengths, nbinsx=60, marker=dict(color="#6366f1"), name=say("plot_rows")))
    fig.add_vline(x=max_length, line=dict(color="#dc2626", dash="dash", width=2),
                  annotation_text=f"{say('plot_max_length')} {max_length:,}", annotation_position="top right")
    fig.update_layout(height=280, margin=dict(l=60, r=20, t=40, b=40), xaxis=dict(title=say("plot_row_tokens")),
                      yaxis=dict(title=say("plot_rows")), showlegend=False, bargap=0.05, template="plotly_white")
    return fig
