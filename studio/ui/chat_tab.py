"""Tab 5 · Chat: talk to a trained adapter (or the base model), streamed token by token."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import gradio as gr

from studio import auth, jobs
from studio.chat import BASE_PREFIX, EXAMPLES, ChatEngine, normalize_history
from studio.config import RunConfig
from studio.ui.i18n import refusal, t

ENGINE = ChatEngine()    # one model per process; never in gr.State (it would be deep-copied)
ENGINE_B = ChatEngine()  # the second model of a side-by-side comparison
_stops: dict[str, threading.Event] = {}  # per browser session: its Stop button's flag


@dataclass
class ChatTab:
    choice: gr.Dropdown
    refresh: gr.Button
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    chatbot: gr.Chatbot
    speed: gr.Markdown
    compare: gr.Dropdown
    seed: gr.Number
    chatbot_b: gr.Chatbot
    speed_b: gr.Markdown
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


def refresh_both(browser_run, base_model: str, compare_value, request: gr.Request = None):
    """Both lists; the comparison keeps its choice if it is still there (empty: no comparison)."""
    first = refresh(browser_run, base_model, request)
    opts = [("—", "")] + list(first.choices)
    ids = [v for _, v in opts]
    return first, gr.Dropdown(choices=opts, value=compare_value if compare_value in ids else "")


def build(I, cfg: RunConfig) -> ChatTab:
    with gr.Row():
        choice = gr.Dropdown([], label=I("chat_model"), scale=4, elem_id="chat-model")
        refresh_btn = gr.Button(I("refresh"), scale=1)
    with gr.Row():
        max_new_tokens = gr.Slider(8, 1024, value=128, step=8, label=I("max_new_tokens"))
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label=I("temperature"))
    with gr.Row():
        compare = gr.Dropdown([], label=I("chat_compare"), info=I("chat_compare_info"), scale=4,
                              elem_id="chat-compare")
        seed = gr.Number(0, label=I("chat_seed"), precision=0, scale=1)
    with gr.Row(equal_height=True):
        with gr.Column():
            chatbot = gr.Chatbot(show_label=False, height=420, elem_id="chatbot")  # its label takes no I18n
            speed = gr.Markdown(elem_id="chat-speed")
        with gr.Column(visible=False) as second:
            chatbot_b = gr.Chatbot(show_label=False, height=420, elem_id="chatbot-b")
            speed_b = gr.Markdown(elem_id="chat-speed-b")
    compare.change(lambda c: gr.Column(visible=bool(c)), compare, second, api_visibility="private")
    with gr.Row():
        message = gr.Textbox(placeholder=EXAMPLES[0], label=I("message"), scale=5, elem_id="chat-input")
        send = gr.Button(I("send"), variant="primary", scale=1, elem_id="chat-send")
        stop = gr.Button(I("stop"), variant="stop", scale=1)
        clear = gr.Button(I("clear"), scale=1)
    gr.Examples(EXAMPLES, inputs=message, label=I("chat_examples"))
    return ChatTab(choice, refresh_btn, max_new_tokens, temperature, chatbot, speed, compare, seed, chatbot_b, speed_b,
                   message, send, stop, clear)


def load_choice(choice: str, user, template: str, max_seq_length: int = 2048, load_in_4bit: bool = False,
                request=None, engine: ChatEngine = ENGINE) -> None:
    """Load what the person picked, if they may: their own run, or a base model."""
    if not choice:
        raise gr.Error(t("err_no_run", request))
    try:
        if not choice.startswith(BASE_PREFIX):
            run_dir = jobs.open_run(choice, user)
            engine.load(choice, run_dir.parent)
        else:
            engine.load(choice, None, template=template, max_seq_length=int(max_seq_length or 2048),
                        load_in_4bit=bool(load_in_4bit))
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    except Exception as exc:  # offline Hub, missing files, out of memory: say it, keep the page alive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise gr.Error(t("err_load_model", request, name=choice.removeprefix(BASE_PREFIX), detail=first[:300])) from None


def speed_line(engine: ChatEngine, request=None) -> str:
    stats = engine.last_stats or {}
    if not stats.get("tokens"):
        return ""
    return t("tokens_per_s", request, n=stats["tokens"], rate=f"{stats['tokens_per_s']:,.1f}",
             ttft=f"{stats['ttft_s']:.2f}")


def respond(message: str, history: list, choice: str, max_new_tokens: int, temperature: float,
            template: str = "qwen-3", max_seq_length: int = 2048, load_in_4bit: bool = False, compare: str = "",
            seed: int = 0, history_b: list | None = None, request: gr.Request = None):
    """Streams the growing reply into the history; with a second model chosen, its reply to the same messages
    (same sampling seed) beside it. The speed line under each when it is done."""
    if not (message or "").strip():
        raise gr.Error(t("err_empty_message", request))
    user = auth.user_from_request(request)
    if user is None:
        raise gr.Error(t("err_sign_in", request))
    load_choice(choice, user, template, max_seq_length, load_in_4bit, request)
    if compare:
        load_choice(compare, user, template, max_seq_length, load_in_4bit, request, engine=ENGINE_B)
    stop = _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event())
    stop.clear()
    panes = [(ENGINE, list(history or []))] + ([(ENGINE_B, list(history_b or []))] if compare else [])
    out = {"a": panes[0][1], "b": list(history_b or []), "speed_a": "", "speed_b": ""}
    for n, (engine, hist) in enumerate(panes):
        hist.append({"role": "user", "content": message})
        messages = normalize_history(hist)
        hist.append({"role": "assistant", "content": ""})
        side = "a" if n == 0 else "b"
        out[side] = hist
        for text in engine.stream(messages, max_new_tokens, temperature, stop, seed=int(seed or 0)):
            hist[-1] = {"role": "assistant", "content": text}
            yield out["a"], "", out["speed_a"], out["b"], out["speed_b"]
        out[f"speed_{side}"] = speed_line(engine, request)
        yield out["a"], "", out["speed_a"], out["b"], out["speed_b"]


def stop_generation(request: gr.Request = None):
    _stops.setdefault(getattr(request, "session_hash", "") or "api", threading.Event()).set()


def wire(tab: ChatTab, template: gr.Dropdown, model_name: gr.Textbox, max_seq_length: gr.Number,
         load_in_4bit: gr.Checkbox, browser_run: gr.BrowserState) -> None:
    inputs = [tab.message, tab.chatbot, tab.choice, tab.max_new_tokens, tab.temperature, template, max_seq_length,
              load_in_4bit, tab.compare, tab.seed, tab.chatbot_b]
    outputs = [tab.chatbot, tab.message, tab.speed, tab.chatbot_b, tab.speed_b]
    tab.send.click(respond, inputs, outputs, api_visibility="private")
    tab.message.submit(respond, inputs, outputs, api_visibility="private")
    tab.stop.click(stop_generation, None, None, api_visibility="private", queue=False)
    tab.clear.click(lambda: ([], "", [], ""), None, [tab.chatbot, tab.speed, tab.chatbot_b, tab.speed_b],
                    api_visibility="private")
    tab.refresh.click(refresh_both, [browser_run, model_name, tab.compare], [tab.choice, tab.compare],
                      api_visibility="private")
