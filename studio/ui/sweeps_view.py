"""The Runs tab's Sweeps section: a sweep's runs ranked (studio/sweep.py), their curves overlaid, and the best one
a click away from the Chat and Export tabs."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs, sweep
from studio.ui import chat_tab, export_tab
from studio.ui.i18n import refusal, t
from studio.ui.form import keeping_choice
from studio.ui.plots import comparison_figure


@dataclass
class SweepsView:
    choice: gr.Dropdown
    ranking: gr.Markdown
    plot: gr.Plot
    chat_best: gr.Button
    export_best: gr.Button
    best: gr.State  # the best run's id, or None


def build(I) -> SweepsView:
    with gr.Accordion(I("sweeps_title"), open=True, elem_id="sweeps"):
        choice = gr.Dropdown([], label=I("sweep_pick"), elem_id="sweep-choice")
        ranking = gr.Markdown(elem_id="sweep-ranking")
        plot = gr.Plot(show_label=False, elem_id="sweep-plot")
        with gr.Row():
            chat_best = gr.Button(I("sweep_chat_best"), elem_id="sweep-chat-best")
            export_best = gr.Button(I("sweep_export_best"), elem_id="sweep-export-best")
    return SweepsView(choice, ranking, plot, chat_best, export_best, gr.State(None))


def choices(current: str | None = None, request: gr.Request = None) -> gr.Dropdown:
    """The person's sweeps, newest first: the one shown stays chosen, else the newest."""
    user = auth.user_from_request(request)
    records = sweep.list_sweeps(user) if user else []
    options = [(t("sweep_choice", request, id=r["id"], n=len(r["runs"])), r["id"]) for r in records]
    return keeping_choice(options, current)


def show(sweep_id: str | None, request: gr.Request = None):
    """(the ranking table, the overlaid curves, the best run's id)."""
    if not sweep_id:
        return t("sweep_none", request), None, None
    user = auth.user_from_request(request)
    try:
        record = sweep.open_sweep(sweep_id, user)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    ranked = sweep.ranking(record, user)
    by_eval = ranked["metric"] == "eval"
    fields = [f for f, _ in record["axes"]]
    head = f"| {t('sweep_col_rank', request)} | {t('col_run', request)} | " + " | ".join(f"`{f}`" for f in fields) + \
        f" | {t('col_state', request)} | {t('sweep_col_best_eval' if by_eval else 'sweep_col_train', request)} |"
    lines = [t("sweep_rank_eval" if by_eval else "sweep_rank_train", request), "", head,
             "|---" * (len(fields) + 4) + "|"]
    for n, r in enumerate(ranked["rows"], 1):
        figure = r["best_eval_loss"] if by_eval else r["final_train_loss"]
        mark = f" **({t('sweep_best_mark', request)})**" if r["id"] == ranked["best"] else ""
        lines.append(f"| {n if n <= ranked['ranked'] else '–'} | `{r['id']}`{mark} | " +
                     " | ".join(str(r["values"][f]) for f in fields) +
                     f" | {t('state_' + str(r['state']), request)} | {'–' if figure is None else f'{figure:.4f}'} |")
    if ranked["ranked"] < len(ranked["rows"]):
        lines += ["", t("sweep_waiting", request, n=ranked["ranked"], total=len(ranked["rows"]))]
    series = {r["id"]: (r["evals"] if by_eval else r["logs"]) for r in ranked["rows"]}
    figure = comparison_figure(series, say=lambda key: t(key, request), value="eval_loss" if by_eval else "loss")
    return "\n".join(lines), figure, ranked["best"]


def _best(best: str | None, request) -> str:
    if not best:
        raise gr.Error(t("sweep_no_best", request))
    return best


def chat_with(best, base_model: str, request: gr.Request = None):
    """The best run chosen on the Chat tab, and as this browser's run (the Chat tab picks that one when it opens)."""
    run_id = _best(best, request)
    return run_id, gr.Dropdown(choices=chat_tab.choices(auth.user_from_request(request), base_model, request),
                               value=run_id)


def export(best, request: gr.Request = None):
    """The best run chosen on the Export tab (which keeps the run shown when it opens)."""
    run_id = _best(best, request)
    return gr.Dropdown(choices=export_tab.run_choices(auth.user_from_request(request), request), value=run_id)


def wire(view: SweepsView, page: gr.Tab, timer: gr.Timer) -> None:
    """Within the Runs tab: the list when the tab opens and while a run is live (the Runs tab's timer: a sweep
    started a moment ago joins it), the ranking when a sweep is picked and on each tick."""
    quiet = dict(api_visibility="private", show_progress="hidden")
    page.select(choices, view.choice, view.choice, **quiet)
    view.choice.change(show, view.choice, [view.ranking, view.plot, view.best], **quiet)
    timer.tick(choices, view.choice, view.choice, **quiet).then(show, view.choice, [view.ranking, view.plot, view.best],
                                                                **quiet)


def wire_best(view: SweepsView, tabs: gr.Tabs, chat_choice: gr.Dropdown, base_model: gr.Textbox,
              export_run: gr.Dropdown, browser_run: gr.BrowserState) -> None:
    """The buttons that take the best run to the Chat and Export tabs: the run is chosen first, then the tab opens
    (its own refresh on opening keeps that choice)."""
    private = dict(api_visibility="private")
    view.chat_best.click(chat_with, [view.best, base_model], [browser_run, chat_choice], **private).success(
        lambda: gr.Tabs(selected="chat"), None, tabs, **private)
    view.export_best.click(export, view.best, export_run, **private).success(
        lambda: gr.Tabs(selected="export"), None, tabs, **private)
