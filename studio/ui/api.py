"""The API a notebook uses (gradio_client), with named parameters; the same checks as the UI (studio/jobs.py).

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860")
    run = c.predict(config_yaml=c.predict(recipe="bundled", api_name="/default_config"), api_name="/start_training")
    c.predict(run_id=run["run_id"], api_name="/training_status")

(No `from __future__ import annotations` here: gr.api reads the parameter types from the signature.)
"""
import gradio as gr

from studio import auth, jobs
from studio.config import RECIPES, RunConfig
from studio.ui.i18n import refusal, t


def _user(request: gr.Request):
    user = auth.user_from_request(request)
    if user is None:
        raise refusal(jobs.Refused("err_sign_in"), request)
    return user


def default_config(recipe: str = "bundled") -> str:
    """A run config as YAML: "bundled" (tiny model, CPU, offline) or "chapter" (Qwen3-4B + FineTome-100k)."""
    return RECIPES.get(recipe, RunConfig)().to_yaml()


def start_training(config_yaml: str, hf_token: str = "", request: gr.Request = None) -> dict:
    """Check and queue a run from its config.yaml text; it starts at once when the GPU is free. Returns its status."""
    try:
        return jobs.start(config_yaml, _user(request), hf_token or None)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None


def training_status(run_id: str, request: gr.Request = None) -> dict:
    """State, phase and progress, step, last loss, queue position, error of one of your runs."""
    try:
        return jobs.status(run_id, _user(request))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None


def stop_training(run_id: str, request: gr.Request = None) -> dict:
    """Stop a live run (a checkpoint and the adapter are saved) or cancel a queued one."""
    try:
        return jobs.stop(run_id, _user(request))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None


def resume_training(run_id: str, hf_token: str = "", request: gr.Request = None) -> dict:
    """Continue a stopped or failed run from its last checkpoint (queued if the GPU is busy)."""
    try:
        return jobs.resume(run_id, _user(request), hf_token or None)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None


def list_runs(request: gr.Request = None) -> list:
    """Your runs, newest first (an admin: everyone's)."""
    return jobs.visible_runs(_user(request))


def chat(run_id: str = "", message: str = "", history: list = None, max_new_tokens: int = 128,
         temperature: float = 0.0, base_model: str = "", template: str = "qwen-3", fast16: bool = False,
         request: gr.Request = None) -> str:
    """One reply from one of your runs (run_id) or from a base model (base_model: a preset, a Hub id, or a model
    folder the server offers); history is a list of {role, content} messages. The model stays loaded for your
    session (this client), as the Chat tab's Load does."""
    from studio.chat import SERVICE, normalize_history
    from studio.ui import chat_tab
    user = _user(request)
    if bool(run_id) == bool(base_model):
        raise gr.Error(t("err_chat_target", request))
    target = chat_tab.target_for(run_id or chat_tab.BASE, user, base_model, template, fast16=fast16,
                                 request=request)
    messages = normalize_history(list(history or [])) + [{"role": "user", "content": message}]
    reply = ""
    try:
        for reply in SERVICE.stream(chat_tab.session_of(user, request), "a", target, messages, max_new_tokens,
                                    temperature):
            pass
    except Exception as exc:
        raise chat_tab.load_failed(exc, target, request) from None
    return reply


def delete_run(run_id: str, request: gr.Request = None) -> list:
    """Delete one of your runs (stopped, failed or finished) with its checkpoints and exports; returns your runs."""
    user = _user(request)
    try:
        jobs.delete(run_id, user)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    return jobs.visible_runs(user)


def export_adapter(run_id: str, request: gr.Request = None) -> dict:
    """Your run's adapter and config.yaml as one zip: {files: [{name, bytes, url}]}, links into the run's folder."""
    from studio.ui import export_tab
    return export_tab.export_adapter(run_id, request=request)


def export_merged(run_id: str, request: gr.Request = None) -> dict:
    """Your run merged into one 16-bit model: {files: [{name, bytes, url}]}."""
    from studio.ui import export_tab
    return export_tab.export_merged(run_id, request=request)


def export_gguf(run_id: str, quant: str = "q8_0", what: str = "merged", max_new_tokens: int = 128,
                temperature: float = 0.0, seed: int = 0, request: gr.Request = None) -> dict:
    """GGUF (f16, q8_0) of the merged model, or of the adapter alone with its base; an Ollama Modelfile."""
    from studio.ui import export_tab
    return export_tab.export_gguf(run_id, quant, what, max_new_tokens, temperature, seed, request=request)


def export_script(run_id: str, request: gr.Request = None) -> dict:
    """The run as one Python script: {code: its text, files: [{name, bytes, url}]}."""
    from studio.ui import export_tab
    code, answer = export_tab.export_script(run_id, request=request)
    return {"code": code, **answer}


def register() -> None:
    """Inside the Blocks: one named endpoint per function above."""
    for fn in (default_config, start_training, training_status, stop_training, resume_training, list_runs, chat,
               delete_run, export_adapter, export_merged, export_gguf, export_script):
        gr.api(fn, api_name=fn.__name__)
