"""Tab 3 · Template: one real row rendered exactly as the trainer sees it, trained span highlighted."""
from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from studio import data, models, templates
from studio.config import RunConfig
from studio.ui import dataset_tab
from studio.ui.i18n import say_data, t
from studio.ui.people import signed_in


@dataclass
class TemplateTab:
    template: gr.Dropdown
    row: gr.Number
    render: gr.Button
    instruction_part: gr.Textbox
    response_part: gr.Textbox
    stats: gr.Markdown
    rendered: gr.HTML
    inputs: list | None = None  # set by wire(): the tab's own select event renders with them
    outputs: list | None = None

    def config_fields(self) -> dict:
        return {"data.template": self.template}


def build(I, cfg: RunConfig) -> TemplateTab:
    gr.Markdown(I("template_hint"))
    with gr.Row():
        template = gr.Dropdown(templates.TEMPLATES, value=cfg.data.template, label=I("template"),
                               info=I("template_info"), allow_custom_value=True, scale=2)
        row = gr.Number(1, label=I("row_index"), precision=0, minimum=1, scale=1)
        render = gr.Button(I("render"), variant="primary", scale=1)
    with gr.Row():
        instruction_part = gr.Textbox(label=I("instruction_part"), interactive=False)
        response_part = gr.Textbox(label=I("response_part"), interactive=False)
    stats = gr.Markdown(elem_id="template-stats")
    rendered = gr.HTML(elem_id="template-render")
    return TemplateTab(template, row, render, instruction_part, response_part, stats, rendered)


def tokenizer_for(model_name: str, template: str, token: str | None = None, request=None):
    signed_in(request)
    try:
        return templates.TOKENIZERS.get(model_name, template, token)
    except models.ModelError as exc:
        raise gr.Error(t(str(exc), request)) from None
    except Exception as exc:
        raise gr.Error(t("err_template", request, template=template, model=model_name,
                         detail=str(exc).splitlines()[0][:300])) from None


def render_row(model_name, template, source, path, split, max_rows, row, max_length, responses_only, token="",
               stage="sft", request: gr.Request = None):
    """render_template: the row as training text, with what train_on_responses_only keeps highlighted. For DPO and
    ORPO on pairs: prompt + chosen and prompt + rejected, with the tokens their trainer trains on."""
    tok = tokenizer_for(model_name, template, token or None, request)
    try:
        ds = dataset_tab.get_dataset(source, path, split, int(max_rows or 0), token or None, request)
        index = min(max(1, int(row or 1)), len(ds)) - 1
        conversation = ds.standardized(index)
        if stage in ("dpo", "orpo") and ds.is_pairs:
            from studio.ui import preference_view
            stats, shown = preference_view.template_pair(tok, ds.pair(index), stage, index + 1, len(ds),
                                                         int(max_length or 0) or None, request)
            return *templates.markers(tok, template), stats, shown
    except data.DataError as exc:
        raise gr.Error(say_data(exc, request)) from None
    text = templates.training_text(tok, conversation)
    instruction_part, response_part = templates.markers(tok, template)
    segments, trained, total = templates.trained_segments(tok, text, instruction_part, response_part,
                                                          int(max_length or 0) or None)
    if not responses_only:  # every token is trained when the option is off
        segments = [templates.Segment(s.text, True) for s in segments]
        trained = total
    parts = []
    for seg in segments:
        body = _mark(html.escape(seg.text), instruction_part, response_part)
        parts.append(f'<span class="{"trained" if seg.trained else "masked"}">{body}</span>')
    cut = t("template_cut", request, n=int(max_length)) if max_length and total >= int(max_length) else ""
    stats = t("template_stats", request, row=index + 1, rows=len(ds), trained=trained, total=total, cut=cut)
    return instruction_part, response_part, stats, '<pre class="rendered">' + "".join(parts) + "</pre>"


def render_in_place(request: gr.Request, *args):
    """render_row for what the person did not ask for by a click (a new template proposed while they type a model
    name, the tab opening): a problem is said in the tab itself, not as a pop-up over whatever tab they are on."""
    try:
        return render_row(*args, request=request)
    except gr.Error as exc:
        return "", "", f"⚠️ {exc.message}", ""


def _mark(escaped: str, *markers: str) -> str:
    """Frame the instruction/response markers so they stand out inside the text."""
    for m in markers:
        em = html.escape(m)
        if em and em in escaped:
            escaped = escaped.replace(em, f'<b class="marker">{em}</b>')
    return escaped


def wire(tab: TemplateTab, model_name: gr.Textbox, dataset: dataset_tab.DatasetTab, max_length: gr.Number,
         responses_only: gr.Checkbox, token: gr.Textbox, stage: gr.Radio) -> None:
    inputs = [model_name, tab.template, dataset.source, dataset.path, dataset.split, dataset.max_rows, tab.row,
              max_length, responses_only, token, stage]
    outputs = [tab.instruction_part, tab.response_part, tab.stats, tab.rendered]
    tab.inputs, tab.outputs = inputs, outputs
    tab.render.click(render_row, inputs, outputs, api_name="render_template")
    tab.row.submit(render_row, inputs, outputs, api_visibility="private")
    tab.template.change(render_in_place, inputs, outputs, api_visibility="private")
    # A new model proposes its family's template.
    model_name.change(lambda name: templates.default_template(name, _model_type(name)), model_name, tab.template,
                      api_visibility="private")


def _model_type(name: str) -> str | None:
    """Local folders say it in config.json; Hub ids are judged by name (no network on every keystroke)."""
    try:
        return models.load_model_config(name).get("model_type") if models.is_local(name) else None
    except Exception:
        return None
