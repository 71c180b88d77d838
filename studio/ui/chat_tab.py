"""Tab 5 · Chat: talk to a trained adapter (or the base model), streamed token by token."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import gradio as gr

from studio import runs
from studio.chat import BASE_PREFIX, EXAMPLES, ChatEngine, normalize_history
from studio.config import RunConfig
from studio.ui.i18n import t

ENGINE = ChatEngine()  # one model per process; never in gr.State (it would be deep-copied)
_stops: dict[str, threading.Event] = {}  # per browser session: its Stop button's flag
_stats: dict[str, dict] = {}  # per browser session: the speed of its last answer


@dataclass
class ChatTab:
    choice: gr.Dropdown
    refresh: gr.Button
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    chatbot: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    clear: gr.Button
    stats: gr.Markdown  # tokens/s of the last answer


def choices(base_model: str) -> list[tuple[str, str]]:
    """Trained runs with an adapter (newest first), then the base model of the current form."""
    out = [(f"{r['id']} · {r['state']} · loss {r['train_loss']:.3f}" if r.get("train_loss") else r["id"], r["id"])
           for r in runs.list_runs() if r["has_adapter"]]
    return out + [(f"base model: {base_model}", BASE_PREFIX + base_model)]


def build(I, cfg: RunConfig) -> ChatTab:
    with gr.Row():
        opts = choices(cfg.model.name)
        choice = gr.Dropdown(opts, value=opts[0][1], label=I("chat_model"), scale=4, elem_id="chat-model",
                             allow_custom_value=True)  # runs made after the page loaded
        refresh = gr.Button(I("refresh"), scale=1)
    with gr.Row():
        max_new_tokens = gr.Slider(8, 1024, value=128, step=8, label=I("max_new_tokens"))
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label=I("temperature"))
    chatbot = gr.Chatbot(show_label=False, height=420, elem_id="chatbot")  # its label takes no I18n
    stats = gr.Markdown("", elem_id="chat-stats")
    with gr.Row():
        message = gr.Textbox(placeholder=EXAMPLES[0], label=I("message"), scale=5, elem_id="chat-input")
        send = gr.Button(I("send"), variant="primary", scale=1, elem_id="chat-send")
        stop = gr.Button(I("stop"), variant="stop", scale=1)
        clear = gr.Button(I("clear"), scale=1)
    gr.Examples(EXAMPLES, inputs=message)
    return ChatTab(choice, refresh, max_new_tokens, temperature, chatbot, message, send, stop, clear, stats)


def respond(message: str, history: list, choice: str, max_new_tokens: int, temperature: float,
            template: str, request: gr.Request = None):
    """chat: streams the growing reply into the history."""
    if not (message or "").strip():
        raise gr.Error(t("err_empty_message", request))
    if not choice:
        raise gr.Error(t("err_no_run", request))
    try:
        if not choice.startswith(BASE_PREFIX):
            runs.resolve_run(choice)  # refuses anything outside runs/
        ENGINE.load(choice, runs.runs_root(), template=template)
    except ValueError as exc:  # not a run of ours
        raise gr.Error(str(exc)) from None
    except Exception as exc:  # offline Hub, missing files, out of memory: say it, keep the page alive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise gr.Error(f"could not load '{choice.removeprefix(BASE_PREFIX)}': {first[:300]}") from None
    stop = _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event())
    stop.clear()
    history = list(history or []) + [{"role": "user", "content": message}]
    messages = normalize_history(history)
    history.append({"role": "assistant", "content": ""})
    yield history, ""
    session = getattr(request, "session_hash", "") or "api"
    _stats.pop(session, None)
    for text in ENGINE.stream(messages, max_new_tokens, temperature, stop):
        history[-1] = {"role": "assistant", "content": text}
        yield history, ""
    if ENGINE.last_stats:
        _stats[session] = ENGINE.last_stats


def show_stats(request: gr.Request = None) -> str:
    """'128 tokens · 152.3 tokens/s · first token after 0.04 s' under the chat, after each answer."""
    s = _stats.get(getattr(request, "session_hash", "") or "api")
    if not s or not s.get("tokens"):
        return ""
    return t("chat_stats", request, tokens=s["tokens"], tps=s["tokens_per_s"], ttft=s["ttft_s"])


def stop_generation(request: gr.Request = None):
    _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event()).set()


def wire(tab: ChatTab, template: gr.Dropdown, model_name: gr.Textbox) -> None:
    inputs = [tab.message, tab.chatbot, tab.choice, tab.max_new_tokens, tab.temperature, template]
    tab.send.click(respond, inputs, [tab.chatbot, tab.message], api_name="chat").then(
        show_stats, None, tab.stats, api_visibility="private")
    tab.message.submit(respond, inputs, [tab.chatbot, tab.message], api_visibility="private").then(
        show_stats, None, tab.stats, api_visibility="private")
    tab.stop.click(stop_generation, None, None, api_visibility="private", queue=False)
    tab.clear.click(lambda: [], None, tab.chatbot, api_visibility="private")
    tab.refresh.click(lambda name: gr.Dropdown(choices=choices(name), value=choices(name)[0][1]), model_name,
                      tab.choice, api_visibility="private")
