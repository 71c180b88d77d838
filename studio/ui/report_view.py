"""The Runs tab's Report section: one finished run's report (studio/report.py) in the reader's language, and the
same page as a Markdown file (written in the run folder, served from there)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs, report, runs
from studio.ui.i18n import lang, refusal, t
from studio.ui.form import keeping_choice


@dataclass
class ReportView:
    run: gr.Dropdown
    page: gr.Markdown
    file: gr.File


def build(I) -> ReportView:
    with gr.Accordion(I("report_title"), open=True, elem_id="report"):
        run = gr.Dropdown([], label=I("report_run"), elem_id="report-run")
        page = gr.Markdown(I("report_pick"), elem_id="report-page")
        file = gr.File(label=I("report_download"), interactive=False, height=90, elem_id="report-file")
    return ReportView(run, page, file)


def choices(current: str | None, request: gr.Request = None) -> gr.Dropdown:
    """The person's finished runs, newest first; the one shown stays chosen, else the newest."""
    user = auth.user_from_request(request)
    ids = [r["id"] for r in (jobs.visible_runs(user) if user else []) if r["state"] in runs.FINAL_STATES
           and r["state"] != "cancelled"]
    return keeping_choice(ids, current)


def show(run_id: str | None, request: gr.Request = None):
    if not run_id:
        return t("report_pick", request), None
    try:
        run_dir = jobs.open_run(run_id, auth.user_from_request(request))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    language = lang(request)
    text = report.build(run_dir, say=lambda key, **kw: t(key, request, **kw), lang=language)
    return text, str(report.write(run_dir, text, language))


def wire(view: ReportView, page: gr.Tab, timer: gr.Timer) -> None:
    """The list when the tab opens and while a run is live (the Runs tab's timer): a run that ends joins it."""
    quiet = dict(api_visibility="private", show_progress="hidden")
    page.select(choices, view.run, view.run, **quiet)
    timer.tick(choices, view.run, view.run, **quiet)
    view.run.change(show, view.run, [view.page, view.file], **quiet)
