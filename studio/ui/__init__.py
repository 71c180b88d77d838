"""The Gradio app: one module per tab (build -> components, wire -> events), assembled here."""
from __future__ import annotations

import os

import gradio as gr

from studio import auth, runs
from studio.config import REPO_ROOT, RunConfig
from studio.ui import (api, chat_tab, data_checks, dataset_tab, downloads, estimate_view, export_tab, model_tab,
                       runs_tab, sweeps_view, template_tab, train_tab)
from studio.ui import preference_view
from studio.ui import form as form_module
from studio.ui.i18n import i18n, t

CSS_PATH = REPO_ROOT / "assets" / "studio.css"


def who(request: gr.Request = None) -> str:
    user = auth.user_from_request(request)
    if not auth.sign_in_required() or user is None:
        return ""
    return t("signed_in_as", request, user=user.name, admin=t("admin_badge", request) if user.admin else "")


def build_app() -> gr.Blocks:
    import unsloth  # noqa: F401  (once, up front: it patches transformers, and the first click stays fast)
    runs.SCHEDULER.start()  # queued runs start by themselves, also those queued before a restart
    runs.STANDBY.start()    # a worker with its imports done, waiting for the next Start
    I = i18n()
    cfg = RunConfig()
    # Gradio's own cache holds uploads (ours are copied into the person's uploads folder): an hour, then gone
    with gr.Blocks(title="LoRA Studio", delete_cache=(3600, 3600)) as demo:
        with gr.Row(elem_classes="studio-top"):
            gr.HTML('<div class="studio-header"><img src="/gradio_api/file=assets/logo.svg" alt="">'
                    '<div><h1>LoRA Studio</h1></div></div>')
            identity = gr.Markdown(elem_id="who")
            if auth.oauth_enabled():
                gr.LoginButton()
        gr.Markdown(I("subtitle"))
        browser_run = gr.BrowserState(None, storage_key="lora-studio-run")  # this browser's latest run
        with gr.Tabs() as tabs:
            with gr.Tab(I("tab_model"), id="model"):
                model = model_tab.build(I, cfg)
            with gr.Tab(I("tab_dataset"), id="dataset"):
                dataset = dataset_tab.build(I, cfg)
                checks_panel = data_checks.build(I, cfg)
            with gr.Tab(I("tab_template"), id="template") as template_page:
                template = template_tab.build(I, cfg)
                checks_view = data_checks.build_template_view(I)
            with gr.Tab(I("tab_train"), id="train"):
                stage = preference_view.build(I, cfg)  # SFT, or preference tuning (DPO, ORPO)
                train = train_tab.build(I, cfg)
            with gr.Tab(I("tab_chat"), id="chat") as chat_page:
                chat = chat_tab.build(I, cfg)
            with gr.Tab(I("tab_runs"), id="runs") as runs_page:
                history = runs_tab.build(I)
            with gr.Tab(I("tab_export"), id="export") as export_page:
                exports = export_tab.build(I)

        # The form: each config.yaml field and the one component that edits it.
        fields = {**model.config_fields(), **dataset.config_fields(), **checks_panel.config_fields(),
                  **template.config_fields(), **stage.config_fields(), **train.config_fields()}
        keys, form = list(fields), list(fields.values())

        model_tab.wire(model, keys, form)
        dataset_tab.wire(dataset, model.token)
        template_tab.wire(template, model.name, dataset, train.fields["train.max_length"],
                          train.fields["data.train_on_responses_only"], model.token, stage.stage)
        train_tab.wire(train, keys, form, model.token, browser_run)
        preference_view.wire(stage, keys, form, dataset.source, dataset.path, train.finished)
        data_checks.wire(checks_panel, checks_view, keys, form, model.token)
        chat_tab.wire(chat, template.template, model.name, model.max_seq_length, model.load_in_4bit, browser_run)
        runs_tab.wire(history, runs_page)
        export_tab.wire(exports, sampling=(chat.max_new_tokens, chat.temperature, chat.seed))
        export_page.select(export_tab.refresh_runs, exports.run, exports.run, api_visibility="private")
        sweeps_view.wire_best(history.sweeps, tabs, chat.choice, model.name, exports.run, browser_run)  # the best
        api.register()
        template_page.select(template_tab.render_in_place, template.inputs, template.outputs, api_visibility="private")

        # Views that stay true: the chat list when its tab opens and when a run ends; the runs table too.
        refresh_chat = dict(fn=chat_tab.refresh_both, inputs=[browser_run, model.name, chat.compare],
                            outputs=[chat.choice, chat.compare], api_visibility="private")
        chat_page.select(**refresh_chat)
        train.finished.change(**refresh_chat).then(runs_tab.table_and_choices, None,
                                                   [history.table, history.selected, history.timer],
                                                   api_visibility="private")
        # A Start (or a sweep's) gives this browser a new run: the Runs tab lists it and follows it from then on,
        # also when the tab was opened while the Start was still being checked (its timer had found nothing live).
        browser_run.change(runs_tab.table_and_choices, None, [history.table, history.selected, history.timer],
                           api_visibility="private", show_progress="hidden")

        # "Open run": the Train tab shows that run (its curve, summary, error) and Stop/Resume act on it.
        polled = [train.state, train.progress, train.plot, train.summary, train.samples, train.error, train.timer,
                  train.finished]
        history.open_run.click(lambda ids: train_tab.attach(ids[0] if ids else None), history.selected,
                               [train.state, train.timer, browser_run], api_visibility="private").then(
            train_tab.poll, train.state, polled, api_visibility="private").then(
            lambda: gr.Tabs(selected="train"), None, tabs, api_visibility="private")

        def _on_load(browser_value, request: gr.Request = None):
            return train_tab.on_load(browser_value, keys, request)

        demo.load(_on_load, browser_run, [train.state, train.timer, browser_run, *form],
                  api_visibility="private").then(train_tab.poll, train.state, polled, api_visibility="private").then(
            form_module.preview_handler(keys), form, [train.yaml_view, train.command, train.dist_preview],
            api_visibility="private")  # in the page's language, from the start (the form may not change)
        demo.load(who, None, identity, api_visibility="private")
        demo.unload(chat_tab.forget_session)  # a closed tab's chat models let go
        demo.load(estimate_view.handler(keys), form + [model.token], train.estimate, api_visibility="private")
        demo.load(**refresh_chat)
        demo.load(preference_view.start_choices, None, stage.adapter_from, api_visibility="private")
        demo.load(runs_tab.table_and_choices, None, [history.table, history.selected, history.timer],
                  api_visibility="private")
        demo.load(dataset_tab.preview_first,
                  [dataset.source, dataset.path, dataset.split, dataset.max_rows, dataset.page, model.token],
                  [dataset.info, dataset.page, dataset.raw, dataset.standardized], api_visibility="private")
    return demo


QUEUE = dict(default_concurrency_limit=4)  # handlers that may run at once (each event may set its own)


def serve(demo: gr.Blocks, **overrides):
    """Start the studio as `make run` and a Space do (app.py), and as the tests do: the same queue, the same
    standby worker and scheduler; `overrides` only for launch()'s port and blocking. The app's exit (Ctrl-C,
    SIGTERM, the end of the process) stops the standby; runs that train go on."""
    runs.install_exit_handlers()
    return demo.queue(**QUEUE).launch(**{**launch_kwargs(), **overrides})


def launch_kwargs() -> dict:
    """Options for demo.launch(): theme, css, i18n, sign-in and limits go here in Gradio 6.

    Sign-in: a users table or STUDIO_USER/STUDIO_PASSWORD (Gradio's login page), else on a Space with OAuth,
    "Sign in with Hugging Face" through Gradio's public auth_dependency (studio/auth.py oauth_user): either
    way Gradio names the person on every request, and refuses every endpoint to anyone else."""
    password = auth.gradio_auth()
    oauth = password is None and auth.oauth_enabled()
    app = {"routes": downloads.routes()}  # exports, served from the run folder (studio/ui/downloads.py)
    if oauth:
        app["exception_handlers"] = {401: downloads.sign_in_first}
    return dict(
        i18n=i18n(), css_paths=[CSS_PATH], theme=gr.themes.Soft(primary_hue="indigo"),
        allowed_paths=[str(REPO_ROOT / "assets")], max_file_size="200mb",
        auth=password, auth_dependency=auth.oauth_user if oauth else None, app_kwargs=app,
        ssr_mode=False,  # one server, Python's: no Node front end in between
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
