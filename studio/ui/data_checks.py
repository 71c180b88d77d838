"""Data checks on the Dataset tab (every check: a line, 'Show rows', 'Drop for this run'; the length plot) and
their token part on the Template tab. The checks themselves are studio/checks.py; here, the form's config in,
words and rows out.

'Drop for this run' edits config.yaml's data.drop: the form's field is a hidden checkbox group, kept in step with
the per-check checkboxes both ways (a run's config restored on page load ticks them too).
"""
from __future__ import annotations

import html
import json
import statistics
from dataclasses import dataclass

import gradio as gr

from studio import checks, data, distributed, prepare
from studio.config import RunConfig
from studio.ui import dataset_tab, template_tab
from studio.ui.form import form_config
from studio.ui.i18n import say_data, t
from studio.ui.plots import length_figure

ALWAYS_DROPPED = prepare.NO_TRAINED_TOKENS  # the trainer leaves these out whatever data.drop says
EDITABLE = [code for code in checks.CHECKS if code != ALWAYS_DROPPED]


@dataclass
class ChecksPanel:
    run: gr.Button
    status: gr.Markdown
    lines: dict          # check -> gr.Markdown: its name, what it found
    show: dict           # check -> gr.Button
    drop: dict           # check -> gr.Checkbox (ALWAYS_DROPPED: shown ticked, not editable)
    drop_field: gr.CheckboxGroup  # config.yaml data.drop
    examples: gr.HTML
    plot: gr.Plot
    found: gr.State      # the last check's example rows and where they are, for 'Show rows'

    def config_fields(self) -> dict:
        return {"data.drop": self.drop_field}


@dataclass
class TemplateView:
    run: gr.Button
    summary: gr.Markdown
    plot: gr.Plot


def build(I, cfg: RunConfig) -> ChecksPanel:
    """Inside the Dataset tab, below the rows."""
    lines, show, drop = {}, {}, {}
    with gr.Accordion(I("check_title"), open=True, elem_id="data-checks"):
        gr.Markdown(I("check_hint"))
        run = gr.Button(I("check_run"), variant="primary", elem_id="check-data")
        status = gr.Markdown(elem_id="check-status")
        for code in checks.CHECKS:
            with gr.Row(equal_height=True, elem_classes="check-row", elem_id=f"check-{code}"):
                lines[code] = gr.Markdown(I(f"check_{code}"), elem_classes="check-line")
                show[code] = gr.Button(I("check_show"), size="sm", scale=0, min_width=110, interactive=False,
                                       elem_id=f"check-show-{code}")
                if code == ALWAYS_DROPPED:
                    drop[code] = gr.Checkbox(True, label=I("check_always_out"), interactive=False, scale=0,
                                             min_width=190, elem_id=f"check-drop-{code}")
                else:
                    drop[code] = gr.Checkbox(code in cfg.data.drop, label=I("check_drop"), scale=0, min_width=190,
                                             elem_id=f"check-drop-{code}")
        drop_field = gr.CheckboxGroup([(I(f"check_{c}"), c) for c in checks.CHECKS], value=list(cfg.data.drop),
                                      label=I("check_drop_group"), visible=False, elem_id="data-drop")
        examples = gr.HTML(elem_id="check-examples")
        plot = gr.Plot(label=I("check_lengths_plot"), elem_id="check-lengths")
    return ChecksPanel(run, status, lines, show, drop, drop_field, examples, plot, gr.State(None))


def build_template_view(I) -> TemplateView:
    """Inside the Template tab, below the rendered row."""
    with gr.Accordion(I("check_title"), open=True):
        gr.Markdown(I("check_template_hint"))
        run = gr.Button(I("check_run"), elem_id="template-check-data")
        summary = gr.Markdown(elem_id="template-checks")
        plot = gr.Plot(label=I("check_lengths_plot"), elem_id="template-lengths")
    return TemplateView(run, summary, plot)


# ---------------------------------------------------------------- words

def finding_line(report: checks.Report, finding: checks.Finding, request=None) -> str:
    code = finding.code
    if not finding.applies:
        said = t("check_no_eval" if code == "eval_overlap" else "check_all_trained", request)
    elif not finding.count:
        said = t("check_none", request)
    elif finding.sampled:
        said = "⚠️ " + t("check_count_sampled", request, n=finding.count, sample=report.token_rows,
                         estimate=report.estimate(finding), rows=report.readable)
    else:
        said = "⚠️ " + t("check_count_one" if finding.count == 1 else "check_count", request, n=finding.count)
    if code == prepare.TRUNCATED and finding.count:
        said += " · " + t("check_lost", request, pct=100 * report.lost_share)
    return f"**{t('check_' + code, request)}** · {said}  \n<small>{t('checkinfo_' + code, request)}</small>"


def status_text(report: checks.Report, request=None) -> str:
    tokens = t("check_tokens_sampled", request, sample=report.token_rows, rows=report.readable) if report.sampled \
        else t("check_tokens_all", request)
    evaluated = t("check_status_eval", request, n=report.eval_rows) if report.eval_rows else ""
    text = t("check_status", request, rows=report.rows, eval=evaluated, s=report.seconds, tokens=tokens)
    if report.lengths:
        ordered = sorted(report.lengths)
        text += "\n\n" + t("check_lengths", request, median=int(statistics.median(ordered)),
                           p95=ordered[int(0.95 * (len(ordered) - 1))], longest=ordered[-1],
                           max_length=report.max_length)
    return text


def note_text(note: dict, request=None) -> str:
    parts = []
    if "same_as" in note:
        parts.append(t("note_same_as", request, row=note["same_as"] + 1))
    if "eval_row" in note:
        parts.append(t("note_eval_row", request, row=note["eval_row"] + 1))
    if "tokens" in note:
        parts.append(t("note_cut", request, tokens=note["tokens"], lost=note["lost"]))
    if "error" in note and isinstance(note["error"], str):
        parts.append(t("note_template", request, error=note["error"]))
    elif "error" in note:  # a DataError, kept as its dict
        parts.append(say_data(data.DataError.from_dict(note["error"]), request))
    return " · ".join(parts)


# ---------------------------------------------------------------- handlers

def check_data(keys: list[str], values: list, token: str = "", request=None):
    """The checks on the form's run: (status, each check's line, each 'Show rows' button, the rows found, the
    examples view, the plot, the Template tab's summary and plot)."""
    cfg = form_config(keys, values, request)
    d = cfg.data
    tokenizer = template_tab.tokenizer_for(cfg.model.name, d.template, token or None, request)
    where = (d.source, d.path, d.split, d.max_rows)
    try:
        ds = dataset_tab.get_dataset(*where, token or None, request)
        eval_source = data.eval_source(d)
        eval_file = dataset_tab.get_dataset(*eval_source, 0, token or None, request) if eval_source else None
        report = checks.run_checks(cfg, ds, eval_file, tokenizer, world=distributed.world_plan(cfg.distributed)
                                   .world_size)
    except data.DataError as exc:  # the file as a whole (a single bad row is a finding)
        raise gr.Error(say_data(exc, request)) from None
    found = {"where": where, "counts": {}, "examples": {}}
    for code, finding in report.findings.items():
        found["counts"][code] = finding.count
        found["examples"][code] = [
            [i, {k: (v.as_dict() if isinstance(v, data.DataError) else v) for k, v in finding.notes.get(i, {}).items()}]
            for i in finding.rows[:checks.EXAMPLES]]
    lines = [finding_line(report, report.findings[code], request) for code in checks.CHECKS]
    buttons = [gr.Button(interactive=bool(report.findings[code].count)) for code in checks.CHECKS]
    plot = length_figure(report.lengths, report.max_length, lambda key: t(key, request)) if report.lengths else None
    token_lines = "\n\n".join(finding_line(report, report.findings[code], request) for code in prepare.TOKEN_CHECKS)
    summary = f"{status_text(report, request)}\n\n{token_lines}"
    return (status_text(report, request), *lines, *buttons, found, "", plot, summary, plot)


def show_rows(code: str, found: dict | None, token: str = "", request=None) -> str:
    """A check's example rows in the standardized view, each with what the check says of it."""
    if not found:
        raise gr.Error(t("check_first", request))
    examples = found["examples"].get(code) or []
    if not examples:
        return t("check_examples_none", request)
    try:
        ds = dataset_tab.get_dataset(*found["where"], token or None, request)
    except data.DataError as exc:
        raise gr.Error(say_data(exc, request)) from None
    blocks = []
    for row, note in examples:
        try:
            conversation = ds.standardized(row) if "error" not in note or isinstance(note["error"], str) else None
        except data.DataError:  # the file changed since the check
            conversation = None
        blocks.append(dataset_tab.conversation_html(conversation, row, request, note_text(note, request)))
    head = t("check_examples", request, name=f"<b>{html.escape(t(f'check_{code}', request))}</b>", shown=len(examples),
             n=found["counts"][code])
    return f'<div class="check-examples-head">{head}</div>' + dataset_tab.std_view(blocks)


def shown(code: str):
    def handler(found, token, request: gr.Request):
        return show_rows(code, found, token, request)
    return handler


def wire(panel: ChecksPanel, view: TemplateView, keys: list[str], form: list, token: gr.Textbox) -> None:
    n = len(form)

    def _check(request: gr.Request, *args):
        return check_data(keys, list(args[:n]), args[n], request)

    outputs = [panel.status, *panel.lines.values(), *panel.show.values(), panel.found, panel.examples, panel.plot,
               view.summary, view.plot]
    for button in (panel.run, view.run):
        button.click(_check, form + [token], outputs, api_visibility="private", concurrency_limit=1)
    for code, button in panel.show.items():
        button.click(shown(code), [panel.found, token], panel.examples, api_visibility="private")
    boxes = [panel.drop[code] for code in EDITABLE]
    # data.drop <-> the per-check boxes, in the browser: a server round trip let the answer to one click untick a
    # box clicked meanwhile (seen in CI). tests/test_browser.py ticks five in a row.
    codes = json.dumps(EDITABLE)
    for box in boxes:  # every box's value as it is on the screen now: clicks in quick succession all count
        box.input(None, boxes, panel.drop_field, api_visibility="private",
                  js=f"(...on) => [{codes}.filter((code, i) => on[i])]")  # one output: in a list
    panel.drop_field.change(None, [panel.drop_field, *boxes], boxes, api_visibility="private",  # a run restored
                            js=f"(drop) => {codes}.map(code => (drop || []).includes(code))")
