"""Plotly figures for the live training curve and the run comparison."""
from __future__ import annotations

import plotly.graph_objects as go


def training_figure(logs: list[dict], title: str = "", say=lambda key: key.removeprefix("plot_"),
                    evals: list[dict] | None = None) -> go.Figure:
    """Loss and grad norm on the left axis, learning rate on the right, all against the step; eval loss as
    points where the run evaluated. `say` translates the legend and axis labels (i18n keys plot_*). A preference
    run's logs (DPO, ORPO: rewards/*) get preference_figure."""
    if any("rewards/margins" in e for e in logs):
        return preference_figure(logs, title, say, evals)
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


def preference_figure(logs: list[dict], title: str = "", say=lambda key: key.removeprefix("plot_"),
                      evals: list[dict] | None = None) -> go.Figure:
    """DPO/ORPO: the loss (eval loss as points) above; below, the rewards of the chosen and the rejected answers and
    their margin, with the reward accuracy (the share of pairs where chosen beats rejected) on the right axis."""
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.45, 0.55],
                        specs=[[{}], [{"secondary_y": True}]])
    steps = [e["step"] for e in logs]

    def line(key, name, color, row=2, secondary=False, dash=None, width=2, points=None):
        """One metric against the step: from every log, or (points) from the evaluations only."""
        have = [e for e in (logs if points is None else points) if e.get(key) is not None]
        if have:
            fig.add_trace(go.Scatter(x=[e["step"] for e in have], y=[e[key] for e in have], name=say(name),
                                     mode="lines" if points is None else "lines+markers",
                                     line=dict(color=color, width=width, dash=dash),
                                     marker=dict(size=7, symbol="diamond")), row=row, col=1, secondary_y=secondary)

    fig.add_trace(go.Scatter(x=steps, y=[e.get("loss") for e in logs], name=say("plot_loss"), mode="lines",
                             line=dict(color="#2563eb", width=2)), row=1, col=1)
    if evals:
        line("eval_loss", "plot_eval_loss", "#dc2626", row=1, points=evals)
        line("eval_rewards/accuracies", "plot_eval_accuracy", "#7c3aed", secondary=True, points=evals)
    line("rewards/chosen", "plot_chosen", "#059669")
    line("rewards/rejected", "plot_rejected", "#dc2626")
    line("rewards/margins", "plot_margin", "#111827", width=3)
    line("rewards/accuracies", "plot_accuracy", "#a855f7", secondary=True, dash="dot", width=1.5)
    fig.update_layout(title=title or None, height=480, margin=dict(l=55, r=60, t=30 if title else 10, b=40),
                      legend=dict(orientation="h", y=1.1, x=0), template="plotly_white")
    fig.update_yaxes(title_text=say("plot_loss"), row=1, col=1)
    fig.update_yaxes(title_text=say("plot_rewards_axis"), row=2, col=1, secondary_y=False)
    fig.update_yaxes(title_text=say("plot_accuracy_axis"), range=[-0.05, 1.05], showgrid=False, row=2, col=1,
                     secondary_y=True)
    fig.update_xaxes(title_text=say("plot_step"), row=2, col=1)
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
