"""Export: take a trained run away as an adapter zip, a merged model, GGUF for llama.cpp/Ollama,
a Hugging Face Hub repo, or one Python script that trains it again."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio import auth, data, export, gguf_export, jobs
from studio.ui import downloads
from studio.ui.people import signed_in
from studio.ui.form import keeping_choice
from studio.ui.i18n import refusal, say_data, t


@dataclass
class ExportTab:
    run: gr.Dropdown
    refresh: gr.Button
    adapter_button: gr.Button
    adapter_file: gr.Markdown
    merged_button: gr.Button
    merged_files: gr.Markdown
    gguf_quant: gr.Radio
    gguf_what: gr.Radio
    gguf_button: gr.Button
    gguf_files: gr.Markdown
    repo_id: gr.Textbox
    token: gr.Textbox
    private: gr.Checkbox
    what: gr.Radio
    push_button: gr.Button
    push_result: gr.Markdown
    script_button: gr.Button
    script_code: gr.Code
    script_file: gr.Markdown


def run_choices(user=None, request=None) -> list[tuple[str, str]]:
    """This person's runs that have a saved adapter, newest first."""
    return [(f"{r['id']} · {t('state_' + r['state'], request)}" +
             (f" · loss {r['train_loss']:.3f}" if r.get("train_loss") else ""), r["id"])
            for r in (jobs.visible_runs(user) if user else []) if r["has_adapter"]]


def refresh_runs(current: str | None = None, request: gr.Request = None) -> gr.Dropdown:
    """The run list again (a run finished since the page loaded): the run shown stays, else the newest."""
    choices = run_choices(auth.user_from_request(request), request)
    return keeping_choice(choices, current)


def build(I) -> ExportTab:
    gr.Markdown(I("export_intro"))
    with gr.Row():
        run = gr.Dropdown([], label=I("export_run"), scale=4, elem_id="export-run",
                          allow_custom_value=True)  # filled per person; a typed id meets the owner check
        refresh = gr.Button(I("refresh"), scale=1)
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown(I("export_adapter_info"))
            adapter_button = gr.Button(I("export_adapter"), elem_id="export-adapter")
            adapter_file = gr.Markdown(elem_id="export-adapter-files")
        with gr.Column():
            gr.Markdown(I("export_merged_info"))
            merged_button = gr.Button(I("export_merged"), elem_id="export-merged")
            merged_files = gr.Markdown(elem_id="export-merged-files")
        with gr.Column():
            gr.Markdown(I("export_gguf_info"))
            gguf_what = gr.Radio([(I("export_gguf_merged"), "merged"), (I("export_gguf_adapter"), "adapter")],
                                 value="merged", label=I("export_gguf_what"))
            gguf_quant = gr.Radio(list(gguf_export.GGUF_QUANTS), value="q8_0", label=I("export_gguf_quant"))
            gguf_button = gr.Button(I("export_gguf"), elem_id="export-gguf")
            gguf_files = gr.Markdown(elem_id="export-gguf-files")
    with gr.Accordion(I("export_hub"), open=False):
        with gr.Row():
            repo_id = gr.Textbox(label=I("export_repo_id"), placeholder="your-name/my-lora", scale=3)
            token = gr.Textbox(label=I("export_token"), info=I("export_token_info"), type="password", scale=3)
        with gr.Row():
            what = gr.Radio([(I("export_what_adapter"), "adapter"), (I("export_what_merged"), "merged")],
                            value="adapter", label=I("export_what"))
            private = gr.Checkbox(value=True, label=I("export_private"))
            push_button = gr.Button(I("export_push"), variant="primary", elem_id="export-push")
        push_result = gr.Markdown()
    with gr.Accordion(I("export_script"), open=False):
        gr.Markdown(I("export_script_info"))
        script_button = gr.Button(I("export_script_make"), elem_id="export-script")
        script_code = gr.Code(language="python", interactive=False, label="train.py", max_lines=40)
        script_file = gr.Markdown(elem_id="export-script-file")
    return ExportTab(run, refresh, adapter_button, adapter_file, merged_button, merged_files, gguf_quant, gguf_what,
                     gguf_button, gguf_files, repo_id, token, private, what, push_button, push_result, script_button, script_code,
                     script_file)


def _run_dir(run_id: str, request, writes: bool = True) -> Path:
    """The person's own run (the owner check), and room on the disk for what the export writes."""
    if not run_id:
        raise gr.Error(t("err_export_no_run", request))
    user = signed_in(request)
    try:
        run_dir = jobs.open_run(run_id, user)  # only the person's own runs
        if writes:
            jobs.check_disk(user)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    return run_dir


def _do(request, action, *args):
    """Run one export; its problems become a gr.Error the person can read."""
    try:
        return action(*args)
    except export.ExportError as exc:
        if exc.key:
            raise gr.Error(t(exc.key, request, **exc.params)) from None
        if isinstance(exc.cause, data.DataError):
            raise gr.Error(t("err_export_data", request, detail=say_data(exc.cause, request))) from None
        raise gr.Error(str(exc)) from None
    except Exception as exc:  # out of memory, disk full, a library's complaint: said, not a dead page
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise gr.Error(t("err_export_failed", request, error=f"{type(exc).__name__}: {first[:300]}")) from None


def _answer(run_dir: Path, files: list[Path]) -> dict:
    """What an export endpoint gives: download links into the run's folder (nothing is copied), and the same
    list as Markdown for the tab."""
    items = downloads.listing(run_dir, files)
    return {"files": items, "markdown": downloads.markdown(items)}


def export_adapter(run_id: str, request: gr.Request = None) -> dict:
    """The adapter folder and config.yaml as one zip."""
    run_dir = _run_dir(run_id, request)
    return _answer(run_dir, [_do(request, export.zip_adapter, run_dir)])


def export_merged(run_id: str, request: gr.Request = None) -> dict:
    """The merged 16-bit model's files (config, safetensors, tokenizer with the chat template)."""
    run_dir = _run_dir(run_id, request)
    folder = _do(request, export.merge_16bit, run_dir)
    return _answer(run_dir, [p for p in sorted(folder.iterdir()) if p.is_file()])


def export_gguf(run_id: str, quant: str = "q8_0", what: str = "merged", max_new_tokens: int = 128,
                temperature: float = 0.0, seed: int = 0, request: gr.Request = None) -> dict:
    """GGUF for llama.cpp / Ollama with its Modelfile (the Chat tab's sampling in it): the merged model, or the
    adapter alone as a LoRA GGUF with the base model's GGUF."""
    run_dir = _run_dir(run_id, request)
    sampling = export.Sampling(int(max_new_tokens or 128), float(temperature or 0.0), int(seed or 0))
    if what == "adapter":
        return _answer(run_dir, list(_do(request, export.to_gguf_lora, run_dir, quant, sampling)))
    path = _do(request, export.to_gguf, run_dir, quant, sampling)
    return _answer(run_dir, [path, path.parent / "Modelfile"])


def push_to_hub(run_id: str, repo_id: str, token: str, private: bool = True, what: str = "adapter",
                request: gr.Request = None) -> str:
    """Upload to the Hub; the token is used for this upload only and never saved."""
    url = _do(request, export.push_to_hub, _run_dir(run_id, request), repo_id, token, what, bool(private))
    return t("export_pushed", request, url=url)


def export_script(run_id: str, request: gr.Request = None) -> tuple[str, dict]:
    """The run as one Python file: its text, and its download link."""
    run_dir = _run_dir(run_id, request)
    text = _do(request, export.python_script, run_dir)
    return text, _answer(run_dir, [run_dir / "export" / export.script_name(run_dir)])


def _shown(handler):
    """The tab shows an endpoint's answer as its Markdown (the API, studio/ui/api.py, gives the whole answer)."""
    def show(request: gr.Request, *args):  # Gradio injects the request by its annotation
        out = handler(*args, request=request)
        if isinstance(out, tuple):
            return (*out[:-1], out[-1]["markdown"])
        return out["markdown"]
    return show


def wire(tab: ExportTab, sampling: tuple = ()) -> None:
    """`sampling`: the Chat tab's max_new_tokens, temperature and seed components, for the Modelfile.
    Each export also has a named endpoint (studio/ui/api.py) that gives the whole answer: the files with links."""
    tab.refresh.click(refresh_runs, tab.run, tab.run, api_visibility="private")
    exports = ((tab.adapter_button, export_adapter, [tab.run], tab.adapter_file),
               (tab.merged_button, export_merged, [tab.run], tab.merged_files),
               (tab.gguf_button, export_gguf, [tab.run, tab.gguf_quant, tab.gguf_what, *sampling], tab.gguf_files),
               (tab.script_button, export_script, [tab.run], [tab.script_code, tab.script_file]))
    for button, handler, inputs, outputs in exports:
        button.click(_shown(handler), inputs, outputs, api_visibility="private")
    tab.push_button.click(push_to_hub, [tab.run, tab.repo_id, tab.token, tab.private, tab.what], tab.push_result,
                          api_name="push_to_hub")
