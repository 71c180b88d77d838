"""Tab 5 · Chat: talk to a trained adapter (or the base model), streamed token by token."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs
from studio.chat import BASE_PREFIX, EXAMPLES, ChatEngine, normalize_history
from studio.config import RunConfig
from studio.ui.i18n import refusal, t

ENGINE = ChatEngine()  # one model per process; never in gr.State (it would be deep-copied)
_stops: dict[str, threading.Event] = {}  # per browser session: its Stop button's flag


@dataclass
class ChatTab:
    choice: gr.Dropdown
    refresh: gr.Button
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    chatbot: gr.Chatbot
    speed: gr.Markdown
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    clear: gr.Button


def choices(user, base_model: str, request=None) -> list[tuple[str, str]]:
    """This person's runs with an adapter (newest first), then the base model of the current form."""
    out = []
    for r in jobs.visible_runs(user) if user else []:
        if r["has_adapter"]:
            label = f"{r['id']} · {t('state_' + r['state'], request)}"
            out.append((label + (f" · loss {r['train_loss']:.3f}" if r.get("train_loss") else ""), r["id"]))
    return out + [(t("chat_base", request, name=base_model), BASE_PREFIX + base_model)]


def refresh(browser_run, base_model: str, request: gr.Request = None):
    """The list as it is now; preselected: this browser's run, else the newest completed one, else the base."""
    user = auth.user_from_request(request)
    opts = choices(user, base_model, request)
    ids = [v for _, v in opts]
    completed = [r["id"] for r in (jobs.visible_runs(user) if user else []) if r["state"] == "completed"
                 and r["has_adapter"]]
    value = browser_run if browser_run in ids else (completed[0] if completed else ids[0])
    return gr.Dropdown(choices=opts, value=value)


def build(I, cfg: RunConfig) -> ChatTab:
    with gr.Row():
        choice = gr.Dropdown([], label=I("chat_model"), scale=4, elem_id="chat-model")
        refresh_btn = gr.Button(I("refresh"), scale=1)
    with gr.Row():
        max_new_tokens = gr.Slider(8, 1024, value=128, step=8, label=I("max_new_tokens"))
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label=I("temperature"))
    chatbot = gr.Chatbot(show_label=False, height=420, elem_id="chatbot")  # its label takes no I18n
    speed = gr.Markdown(elem_id="chat-speed")
    with gr.Row():
        message = gr.Textbox(placeholder=EXAMPLES[0], label=I("message"), scale=5, elem_id="chat-input")
        send = gr.Button(I("send"), variant="primary", scale=1, elem_id="chat-send")
        stop = gr.Button(I("stop"), variant="stop", scale=1)
        clear = gr.Button(I("clear"), scale=1)
    gr.Examples(EXAMPLES, inputs=message)
    return ChatTab(choice, refresh_btn, max_new_tokens, temperature, chatbot, speed, message, send, stop, clear)


def load_choice(choice: str, user, template: str, max_seq_length: int = 2048, load_in_4bit: bool = False,
                request=None) -> None:
    """Load what the person picked, if they may: their own run, or a base model."""
    if not choice:
        raise gr.Error(t("err_no_run", request))
    try:
        if not choice.startswith(BASE_PREFIX):
            run_dir = jobs.open_run(choice, user)
            ENGINE.load(choice, run_dir.parent)
        else:
            ENGINE.load(choice, None, template=template, max_seq_length=int(max_seq_length or 2048),
                        load_in_4bit=bool(load_in_4bit))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    except Exception as exc:  # offline Hub, missing files, out of memory: say it, keep the page alive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise gr.Error(t("err_load_model", request, name=choice.removeprefix(BASE_PREFIX), detail=first[:300])) from None


def respond(message: str, history: list, choice: str, max_new_tokens: int, temperature: float,
            template: str = "qwen-3", max_seq_length: int = 2048, load_in_4bit: bool = False,
            request: gr.Request = None):
    """Streams the growing reply into the history; the speed line under it when it is done."""
    if not (message or "").strip():
        raise gr.Error(t("err_empty_message", request))
    user = auth.user_from_request(request)
    if user is None:
        raise gr.Error(t("err_sign_in", request))
    load_choice(choice, user, template, max_seq_length, load_in_4bit, request)
    stop = _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event())
    stop.clear()
    history = list(history or []) + [{"role": "user", "content": message}]
    messages = normalize_history(history)
    history.append({"role": "assistant", "content": ""})
    yield history, "", ""
    t0, first, pieces = time.perf_counter(), None, 0
    for text in ENGINE.stream(messages, max_new_tokens, temperature, stop):
        first = first or time.perf_counter() - t0
        pieces += 1
        history[-1] = {"role": "assistant", "content": text}
        yield history, "", ""
    stats = getattr(ENGINE, "last_stats", None) or {}
    n = stats.get("tokens", pieces)
    seconds = stats.get("seconds", time.perf_counter() - t0)
    speed = t("tokens_per_s", request, n=n, rate=f"{n / max(seconds, 1e-6):,.1f}",
              ttft=f"{stats.get('ttft_s', first or 0):.2f}")
    yield history, "", speed


def stop_generation(request: gr.Request = None):
    _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event()).set()


def wire(tab: ChatTab, template: gr.Dropdown, model_name: gr.Textbox, max_seq_length: gr.Number,
         load_in_4bit: gr.Checkbox, browser_run: gr.BrowserState) -> None:
    inputs = [tab.message, tab.chatbot, tab.choice, tab.max_new_tokens, tab.temperature, template, max_seq_length,
              load_in_4bit]
    outputs = [tab.chatbot, tab.message, tab.speed]
    tab.send.click(respond, inputs, outputs, api_visibility="private")
    tab.message.submit(respond, inputs, outputs, api_visibility="private")
    tab.stop.click(stop_generation, None, None, api_visibility="private", queue=False)
    tab.clear.click(lambda: ([], ""), None, [tab.chatbot, tab.speed], api_visibility="private")
    tab.refresh.click(refresh, [browser_run, model_name], tab.choice, api_visibility="private")
