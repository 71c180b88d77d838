"""Tab 2 · Dataset: pick the data, page through raw rows beside their role/content form."""
from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from studio import data
from studio.config import BUNDLED_DATA, REPO_ROOT, RunConfig
from studio.ui.i18n import say_data, t
from studio.ui.people import signed_in

PAGE_SIZE = 5


@dataclass
class DatasetTab:
    source: gr.Radio
    path: gr.Textbox
    split: gr.Textbox
    upload: gr.File
    max_rows: gr.Number
    load: gr.Button
    info: gr.Markdown
    page: gr.Number
    prev: gr.Button
    next: gr.Button
    raw: gr.JSON
    standardized: gr.HTML
    eval_size: gr.Number
    eval_path: gr.Textbox
    uploaded: gr.State  # the stored upload, until its preview succeeds and it becomes the dataset

    def config_fields(self) -> dict:
        return {"data.source": self.source, "data.path": self.path, "data.split": self.split,
                "data.max_rows": self.max_rows, "data.eval_size": self.eval_size, "data.eval_path": self.eval_path}


def build(I, cfg: RunConfig) -> DatasetTab:
    gr.Markdown(I("data_hint"))
    with gr.Row():
        source = gr.Radio([(I("src_bundled"), "bundled"), (I("src_hub"), "hub"), (I("src_file"), "file")],
                          value=cfg.data.source, label=I("data_source"), scale=2)
        path = gr.Textbox(cfg.data.path, label=I("hub_id"), info=I("hub_id_info"), scale=3)
        split = gr.Textbox(cfg.data.split, label=I("split"), scale=1)
        max_rows = gr.Number(cfg.data.max_rows, label=I("max_rows"), precision=0, minimum=0, scale=1)
    # No file_types: Gradio's own refusal of another type is an English toast; store_upload says it in the
    # person's language (the label names the types).
    upload = gr.File(label=I("upload"), type="filepath", height=90)
    with gr.Row():
        load = gr.Button(I("load_preview"), variant="primary", scale=2)
        prev = gr.Button(I("prev"), scale=1)
        page = gr.Number(1, label=I("page"), precision=0, minimum=1, scale=1)
        next_ = gr.Button(I("next"), scale=1)
    info = gr.Markdown(elem_id="dataset-info")
    with gr.Row(equal_height=False):
        with gr.Column():
            raw = gr.JSON(label=I("raw_rows"), elem_id="raw-rows", height=560, open=True)
        with gr.Column():
            gr.Markdown(I("std_rows"))
            standardized = gr.HTML(elem_id="std-rows")
    with gr.Row():
        eval_size = gr.Number(cfg.data.eval_size, label=I("eval_size"), info=I("eval_size_info"), minimum=0,
                              elem_id="eval-size")
        eval_path = gr.Textbox(cfg.data.eval_path, label=I("eval_path"))
    return DatasetTab(source, path, split, upload, max_rows, load, info, page, prev, next_, raw, standardized,
                      eval_size, eval_path, gr.State(None))


def store_upload(tmp_path: str | None, request: gr.Request = None) -> str | None:
    """Keep an upload under this person's uploads (content-addressed) so config.yaml can name it for good."""
    if not tmp_path:
        return None
    user = signed_in(request)
    try:
        dest = data.store_upload(tmp_path, user.name)
    except data.DataError as exc:  # a wrong type or too large: refused in the person's language, nothing changes
        raise gr.Error(say_data(exc, request)) from None
    return str(dest.relative_to(REPO_ROOT) if dest.is_relative_to(REPO_ROOT) else dest)


def preview_upload(stored: str | None, split: str, max_rows, token: str = "", request: gr.Request = None):
    """The stored upload's first page; only a file that reads becomes the dataset (source and path). A broken one
    is refused with the reason, and the dataset chosen before stays chosen and shown."""
    if not stored:
        return (gr.update(),) * 6
    return ("file", stored, *preview("file", stored, split, max_rows, 1, token, request))


def get_dataset(source: str, path: str, split: str, max_rows: int, token: str | None = None,
                request: gr.Request = None) -> data.Dataset:
    user = signed_in(request)  # an anonymous caller reads nothing (not even the bundled sample)
    return data.DATASETS.get(source, path, split, int(max_rows or 0), token, data.allowed_roots(user.name))


def preview(source: str, path: str, split: str, max_rows, page, token: str = "", request: gr.Request = None):
    """preview_dataset: (info markdown, page number, raw rows, standardized HTML) for one page."""
    try:
        ds = get_dataset(source, path, split, int(max_rows or 0), token or None, request)
        pages = max(1, -(-len(ds) // PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        raw, std = ds.page(page - 1, PAGE_SIZE)
        first = (page - 1) * PAGE_SIZE
        if ds.is_pairs:  # preference pairs: the prompt, then chosen and rejected side by side
            from studio.ui import preference_view
            view = preference_view.pairs_html([ds.pair(first + n) for n in range(len(raw))], first, request)
        else:
            view = conversations_html(std, first, request)
    except data.DataError as exc:
        raise gr.Error(say_data(exc, request)) from None
    extra = ", ".join(f"`{c}`" for c in ds.extra_columns) or "—"
    info = t("data_info", request, name=ds.name, rows=len(ds), fmt=t(f"fmt_{ds.format}", request), extra=extra,
             page=page, pages=pages)
    return info, page, [{"row": first + i + 1, **_trim(r)} for i, r in enumerate(raw)], view


def _trim(row: dict, limit: int = 400):
    """Long values are shortened for display only."""
    def cut(v):
        if isinstance(v, str) and len(v) > limit:
            return v[:limit] + f"… (+{len(v) - limit} chars)"
        if isinstance(v, list):
            return [cut(x) for x in v]
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        return v
    return cut(row)


ROLE_COLORS = {"system": "#6b7280", "user": "#2563eb", "assistant": "#059669"}


def conversations_html(conversations: list[list[dict]], first_row: int, request=None) -> str:
    return std_view([conversation_html(conv, first_row + n, request) for n, conv in enumerate(conversations)])


def conversation_html(conversation: list[dict] | None, row: int, request=None, note: str = "") -> str:
    """One row (0-based index) in the standardized view; a note beside its number, or in place of the messages
    when it has none (a row that can't be read)."""
    turns = "".join(
        f'<div class="turn"><span class="role" data-role="{m["role"]}" style="background:{ROLE_COLORS[m["role"]]}">'
        f'{t("role_" + m["role"], request)}</span>'
        f'<div class="content">{html.escape(m["content"][:1200])}</div></div>' for m in conversation or [])
    note = f' · <span class="note">{html.escape(note)}</span>' if note else ""
    return f'<div class="conv"><div class="rowno">{t("row_label", request, n=row + 1)}{note}</div>{turns}</div>'


def std_view(blocks: list[str]) -> str:
    return '<div class="std-view">' + "".join(blocks) + "</div>"


def preview_first(source, path, split, max_rows, _page, token="", request: gr.Request = None):
    return preview(source, path, split, max_rows, 1, token, request)


def wire(tab: DatasetTab, token: gr.Textbox) -> None:
    inputs = [tab.source, tab.path, tab.split, tab.max_rows, tab.page, token]
    outputs = [tab.info, tab.page, tab.raw, tab.standardized]
    tab.load.click(preview_first, inputs, outputs, api_name="preview_dataset")
    def turn(step):
        def handler(source, path, split, max_rows, page, token, request: gr.Request):
            return preview(source, path, split, max_rows, int(page or 1) + step, token, request)
        return handler

    tab.prev.click(turn(-1), inputs, outputs, api_visibility="private")
    tab.next.click(turn(+1), inputs, outputs, api_visibility="private")
    tab.page.submit(preview, inputs, outputs, api_visibility="private")
    # A refused upload (its type, its size, its rows) is a toast in the person's language and changes nothing but
    # the file box, emptied again. No progress is shown: Gradio would leave an error badge over each output.
    stored = tab.upload.upload(store_upload, tab.upload, tab.uploaded, api_visibility="private",
                               show_progress="hidden")
    shown = stored.success(preview_upload, [tab.uploaded, tab.split, tab.max_rows, token],
                           [tab.source, tab.path, *outputs], api_visibility="private", show_progress="hidden")
    for step in (stored, shown):
        step.failure(lambda: None, None, tab.upload, api_visibility="private")
    tab.source.input(lambda s: BUNDLED_DATA if s == "bundled" else ("" if s == "hub" else gr.update()),
                     tab.source, tab.path, api_visibility="private")
