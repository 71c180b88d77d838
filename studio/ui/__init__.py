"""The Gradio app: one module per tab (build -> components, wire -> events), assembled here."""
from __future__ import annotations

import os

import gradio as gr

from studio.config import REPO_ROOT, RunConfig
from studio.ui import chat_tab, dataset_tab, model_tab, runs_tab, template_tab, train_tab
from studio.ui.i18n import i18n

CSS_PATH = REPO_ROOT / "assets" / "studio.css"


def build_app() -> gr.Blocks:
    import unsloth  # noqa: F401  (once, up front: it patches transformers, and the first click stays fast)
    from studio import runs
    runs.mark_interrupted_runs()  # runs whose worker vanished while the app was down
    I = i18n()
    cfg = RunConfig()
    with gr.Blocks(title="LoRA Studio") as demo:
        gr.HTML('<div class="studio-header"><img src="/gradio_api/file=assets/logo.svg" alt="">'
                '<div><h1>LoRA Studio</h1></div></div>')
        gr.Markdown(I("subtitle"))
        with gr.Tabs() as tabs:
            with gr.Tab(I("tab_model"), id="model"):
                model = model_tab.build(I, cfg)
            with gr.Tab(I("tab_dataset"), id="dataset"):
                dataset = dataset_tab.build(I, cfg)
            with gr.Tab(I("tab_template"), id="template") as template_page:
                template = template_tab.build(I, cfg)
            with gr.Tab(I("tab_train"), id="train"):
                train = train_tab.build(I, cfg)
            with gr.Tab(I("tab_chat"), id="chat"):
                chat = chat_tab.build(I, cfg)
            with gr.Tab(I("tab_runs"), id="runs"):
                history = runs_tab.build(I)

        # The form: each config.yaml field and the one component that edits it.
        fields = {**model.config_fields(), **dataset.config_fields(), **template.config_fields(),
                  **train.config_fields()}
        keys, form = list(fields), list(fields.values())

        model_tab.wire(model, keys, form)
        dataset_tab.wire(dataset, model.token)
        template_tab.wire(template, model.name, dataset, train.max_length, train.responses_only, model.token)
        train_tab.wire(train, keys, form, model.token)
        chat_tab.wire(chat, template.template, model.name)
        template_page.select(template_tab.render_row, template.inputs, template.outputs, api_visibility="private")
        runs_tab.wire(history)
        # "Open run": the Train tab shows that run (its curve, summary, error) and Stop/Resume act on it.
        poll_outputs = [train.state, train.progress, train.plot, train.summary, train.error, train.timer]
        history.open_run.click(lambda ids: train_tab.attach(ids[0] if ids else None), history.selected,
                               [train.state, train.timer], api_visibility="private").then(
            train_tab.poll, train.state, poll_outputs, api_visibility="private").then(
            lambda: gr.Tabs(selected="train"), None, tabs, api_visibility="private")
        demo.load(train_tab.on_load, None, [train.state, train.timer], api_visibility="private").then(
            train_tab.poll, train.state, poll_outputs, api_visibility="private")
        demo.load(runs_tab.table_and_choices, None, [history.table, history.selected], api_visibility="private")
        demo.load(dataset_tab.preview_first,
                  [dataset.source, dataset.path, dataset.split, dataset.max_rows, dataset.page, model.token],
                  [dataset.info, dataset.page, dataset.raw, dataset.standardized], api_visibility="private")
    return demo


def launch_kwargs() -> dict:
    """Options for demo.launch(): theme, css, i18n and limits go here in Gradio 6."""
    user, password = os.environ.get("STUDIO_USER"), os.environ.get("STUDIO_PASSWORD")
    return dict(
        i18n=i18n(), css_paths=[CSS_PATH], theme=gr.themes.Soft(primary_hue="indigo"),
        allowed_paths=[str(REPO_ROOT / "assets")], max_file_size="200mb",
        auth=(user, password) if user and password else None,
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
