"""Tab 2 · Dataset: pick the data, page through raw rows beside their role/content form."""
from __future__ import annotations

import hashlib
import html
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio import data
from studio.config import BUNDLED_DATA, REPO_ROOT, RunConfig
from studio.runs import runs_root, sanitize_name
from studio.ui.i18n import t

PAGE_SIZE = 5
MAX_UPLOAD_MB = 200
_cache: OrderedDict = OrderedDict()  # (source, path, split, max_rows) -> data.Dataset; a few at most


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

    def config_fields(self) -> dict:
        return {"data.source": self.source, "data.path": self.path, "data.split": self.split,
                "data.max_rows": self.max_rows}


def build(I, cfg: RunConfig) -> DatasetTab:
    gr.Markdown(I("data_hint"))
    with gr.Row():
        source = gr.Radio([(I("src_bundled"), "bundled"), (I("src_hub"), "hub"), (I("src_file"), "file")],
                          value=cfg.data.source, label=I("data_source"), scale=2)
        path = gr.Textbox(cfg.data.path, label=I("hub_id"), info=I("hub_id_info"), scale=3)
        split = gr.Textbox(cfg.data.split, label=I("split"), scale=1)
        max_rows = gr.Number(cfg.data.max_rows, label=I("max_rows"), precision=0, minimum=0, scale=1)
    upload = gr.File(label=I("upload"), file_types=list(data.ALLOWED_EXTENSIONS), type="filepath", height=90)
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
    return DatasetTab(source, path, split, upload, max_rows, load, info, page, prev, next_, raw, standardized)


def restricted() -> bool:
    """On a shared Space, the path field may only name uploads and the bundled assets."""
    return bool(os.environ.get("SPACE_ID") or os.environ.get("STUDIO_RESTRICT_PATHS"))


def uploads_dir() -> Path:
    d = runs_root() / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def check_file_path(path: str) -> Path:
    p = Path(path).expanduser()
    p = (p if p.is_absolute() else REPO_ROOT / p).resolve()
    if restricted() and not (p.is_relative_to(uploads_dir().resolve()) or p.is_relative_to((REPO_ROOT / "assets").resolve())):
        raise data.DataError("on this shared server, only uploaded files can be used", file=Path(path).name)
    return p


def store_upload(tmp_path: str | None) -> tuple[str, str]:
    """Keep an upload under runs/uploads/ (content-addressed) so config.yaml can name it for good."""
    if not tmp_path:
        return gr.update(), gr.update()
    src = Path(tmp_path)
    if src.suffix.lower() not in data.ALLOWED_EXTENSIONS:
        raise gr.Error(f"{src.name}: unsupported file type '{src.suffix or '(none)'}'; use one of "
                       f"{', '.join(data.ALLOWED_EXTENSIONS)}")
    if src.stat().st_size > MAX_UPLOAD_MB * 2**20:
        raise gr.Error(f"{src.name}: larger than {MAX_UPLOAD_MB} MB")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    dest = uploads_dir() / f"{digest}-{sanitize_name(src.stem)}{src.suffix.lower()}"
    if not dest.exists():
        shutil.copyfile(src, dest)
    return "file", str(dest.relative_to(REPO_ROOT) if dest.is_relative_to(REPO_ROOT) else dest)


def get_dataset(source: str, path: str, split: str, max_rows: int, token: str | None = None) -> data.Dataset:
    if source == "file":
        path = str(check_file_path(path))
    elif source == "bundled":
        path = BUNDLED_DATA
    key = (source, path, split, int(max_rows or 0))
    if key not in _cache:
        _cache[key] = data.load_dataset_source(source, path, split, int(max_rows or 0), token=token)
        while len(_cache) > 4:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    return _cache[key]


def preview(source: str, path: str, split: str, max_rows, page, token: str = "", request: gr.Request = None):
    """preview_dataset: (info markdown, page number, raw rows, standardized HTML) for one page."""
    try:
        ds = get_dataset(source, path, split, int(max_rows or 0), token or None)
        pages = max(1, -(-len(ds) // PAGE_SIZE))
        page = min(max(1, int(page or 1)), pages)
        raw, std = ds.page(page - 1, PAGE_SIZE)
    except data.DataError as exc:
        raise gr.Error(str(exc)) from None
    extra = ", ".join(f"`{c}`" for c in ds.extra_columns) or "—"
    info = t("data_info", request, name=ds.name, rows=len(ds), fmt=ds.format, extra=extra, page=page, pages=pages)
    first = (page - 1) * PAGE_SIZE
    return info, page, [{"row": first + i + 1, **_trim(r)} for i, r in enumerate(raw)], conversations_html(std, first)


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


def conversations_html(conversations: list[list[dict]], first_row: int) -> str:
    blocks = []
    for n, conv in enumerate(conversations):
        turns = "".join(
            f'<div class="turn"><span class="role" style="background:{ROLE_COLORS[m["role"]]}">{m["role"]}</span>'
            f'<div class="content">{html.escape(m["content"][:1200])}</div></div>' for m in conv)
        blocks.append(f'<div class="conv"><div class="rowno">row {first_row + n + 1}</div>{turns}</div>')
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
    tab.upload.upload(store_upload, tab.upload, [tab.source, tab.path], api_visibility="private").then(
        preview_first, inputs, outputs, api_visibility="private")
    tab.source.input(lambda s: BUNDLED_DATA if s == "bundled" else ("" if s == "hub" else gr.update()),
                     tab.source, tab.path, api_visibility="private")
