"""Tab 5 · Chat: talk to a trained adapter (or the base model), streamed token by token; another model beside it.

The models live in the chat service (studio/chat.py SERVICE), not here: each browser tab is a session that holds
its own models (Load, Unload; Send loads what is chosen if it is not held yet, in the same step as the answer).
What a person may chat with is typed here, once, for every handler: one of their runs (after the owner check)
or the base model the Model tab names (by the naming rule).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import gradio as gr

from studio import auth, gpu, jobs, models
from studio.chat import (
    EXAMPLES,
    SERVICE,
    RunTarget,
    base_target,
    normalize_history,
    target_gb,
)
from studio.config import RunConfig
from studio.ui.i18n import refusal, t
from studio.ui.people import signed_in

BASE = "@base"  # the dropdown's value for "the base model named on the Model tab"
PANES = ("a", "b")
_stops: dict[str, threading.Event] = {}  # per session: its Stop button's flag
GPU_WAIT_S = 3.0  # how often a chat waiting for the GPU asks again


@dataclass
class ChatTab:
    choice: gr.Dropdown
    refresh: gr.Button
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    fast16: gr.Checkbox
    on_cpu: gr.Checkbox
    load: gr.Button
    unload: gr.Button
    loaded: gr.Markdown
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
            stage = f" · {r['stage'].upper()}" if r.get("stage", "sft") != "sft" else ""  # a preference run
            label = f"{r['id']}{stage} · {t('state_' + r['state'], request)}"
            out.append((label + (f" · loss {r['train_loss']:.3f}" if r.get("train_loss") else ""), r["id"]))
    return out + [(t("chat_base", request, name=base_model), BASE)]


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
        fast16 = gr.Checkbox(False, label=I("chat_fast16"), info=I("chat_fast16_info"), elem_id="chat-fast16")
        on_cpu = gr.Checkbox(False, label=I("chat_on_cpu"), info=I("chat_on_cpu_info"),
                             visible=gpu.capacity_gb() is not None, elem_id="chat-cpu")
        load = gr.Button(I("chat_load"), scale=0, elem_id="chat-load")
        unload = gr.Button(I("chat_unload"), scale=0, elem_id="chat-unload")
    loaded = gr.Markdown(elem_id="chat-loaded")
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
    return ChatTab(choice, refresh_btn, max_new_tokens, temperature, fast16, on_cpu, load, unload, loaded, chatbot,
                   speed, compare, seed, chatbot_b, speed_b, message, send, stop, clear)


def session_of(user, request) -> str:
    """The chat session: this person in this browser tab (or this API client)."""
    return f"{user.name}:{getattr(request, 'session_hash', None) or 'api'}"


def target_for(choice: str, user, base_name: str = "", template: str = "qwen-3", max_seq_length: int = 2048,
               load_in_4bit: bool = False, fast16: bool = False, on_cpu: bool = False, request=None, token=None):
    """What the person picked, typed: their own run (the owner check), or the Model tab's base model (the naming
    rule). Nothing else can be named."""
    if not choice:
        raise gr.Error(t("err_no_run", request))
    device = "cpu" if on_cpu else "auto"
    try:
        if choice == BASE:
            return base_target(base_name, template, int(max_seq_length or 2048), bool(load_in_4bit), bool(fast16),
                               device, token)
        return RunTarget(jobs.open_run(choice, user), bool(fast16), device)
    except jobs.Refused as exc:
        raise refusal(exc, request) from None
    except models.ModelError as exc:
        raise gr.Error(t("err_load_model", request, name=base_name, detail=t(str(exc), request))) from None


def load_failed(exc: Exception, target, request) -> gr.Error:
    """A load that failed, in words: the GPU busy (with what to do), or what went wrong."""
    if isinstance(exc, gpu.GpuBusy):
        return gr.Error(t("chat_gpu_busy", request, need=f"{exc.need_gb:.1f}", free=f"{max(0.0, exc.free_gb):.1f}",
                          run=exc.training or "—"))
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return gr.Error(t("err_load_model", request, name=target.label, detail=first[:300]))


def loaded_line(user, request) -> str:
    """What this session holds: each pane's model, its precision, where it sits and what it costs."""
    session = session_of(user, request)
    lines = []
    for pane in PANES:
        chat = SERVICE.held(session, pane)
        if chat is not None:
            where = t("chat_on_gpu", request, gb=f"{chat.gb:.1f}") if chat.device == "cuda" else t("chat_on_cpu_here",
                                                                                                  request)
            lines.append(t("chat_loaded", request, name=chat.label, bits=chat.bits, where=where))
    return "\n\n".join(lines) or t("chat_nothing_loaded", request)


def load(choice, compare, base_name, template, max_seq_length, load_in_4bit, fast16, on_cpu,
         request: gr.Request = None) -> str:
    """Load the chosen model (and the comparison's) for this session now; say what it costs."""
    user = signed_in(request)
    session = session_of(user, request)
    for pane, value in zip(PANES, (choice, compare)):
        if not value:
            SERVICE.unload(session, pane)
            continue
        target = target_for(value, user, base_name, template, max_seq_length, load_in_4bit, fast16, on_cpu, request)
        try:
            SERVICE.load(session, pane, target)
        except Exception as exc:  # the GPU busy, an offline Hub, missing files: said, the page lives on
            raise load_failed(exc, target, request) from None
    return loaded_line(user, request)


def loaded_now(request: gr.Request = None) -> str:
    return loaded_line(signed_in(request), request)


def unload(request: gr.Request = None) -> str:
    """Let go of this session's models (freed at once unless another session holds the same one)."""
    user = signed_in(request)
    SERVICE.unload(session_of(user, request))
    return loaded_line(user, request)


def cost_hint(choice, base_name, load_in_4bit, request: gr.Request = None):
    """The 16-bit option, with what each choice costs, for a 4-bit model only."""
    user = auth.user_from_request(request)
    try:
        target = target_for(choice, user, base_name, load_in_4bit=load_in_4bit) if user and choice else None
        four, sixteen = target_gb(target) if target is not None else (0.0, 0.0)
    except (gr.Error, OSError, ValueError):
        target, four, sixteen = None, 0.0, 0.0
    four_bit = target is not None and abs(four - sixteen) > 0.01
    info = t("chat_fast16_cost", request, four=f"{four:.1f}", sixteen=f"{sixteen:.1f}") if four_bit else ""
    return gr.Checkbox(visible=four_bit, info=info)


def speed_line(stats: dict, request=None) -> str:
    if not stats.get("tokens"):
        return ""
    return t("tokens_per_s", request, n=stats["tokens"], rate=f"{stats['tokens_per_s']:,.1f}",
             ttft=f"{stats['ttft_s']:.2f}")


def respond(message: str, history: list, choice: str, max_new_tokens: int, temperature: float,
            template: str = "qwen-3", max_seq_length: int = 2048, load_in_4bit: bool = False, compare: str = "",
            seed: int = 0, history_b: list | None = None, base_name: str = "", fast16: bool = False,
            on_cpu: bool = False, request: gr.Request = None):
    """Streams the growing reply into the history; with a second model chosen, its reply to the same messages
    (same sampling seed) beside it. The speed line under each when it is done."""
    if not (message or "").strip():
        raise gr.Error(t("err_empty_message", request))
    user = signed_in(request)
    session = session_of(user, request)
    targets = [target_for(v, user, base_name, template, max_seq_length, load_in_4bit, fast16, on_cpu, request)
               for v in ([choice, compare] if compare else [choice])]
    stop = _stops.setdefault(session, threading.Event())
    stop.clear()
    out = {"a": list(history or []), "b": list(history_b or []), "speed_a": "", "speed_b": ""}
    for pane, target in zip(PANES, targets):
        hist = out[pane]
        hist.append({"role": "user", "content": message})
        messages = normalize_history(hist)
        hist.append({"role": "assistant", "content": ""})
        while True:
            try:
                for text in SERVICE.stream(session, pane, target, messages, max_new_tokens, temperature, stop,
                                           seed=int(seed or 0)):
                    hist[-1] = {"role": "assistant", "content": text}
                    yield out["a"], "", out["speed_a"], out["b"], out["speed_b"]
                break
            except gpu.GpuBusy as exc:  # waits in view until the run lets go (or Stop, or "On the CPU now")
                hist[-1] = {"role": "assistant", "content": "⏳ " + load_failed(exc, target, request).message}
                yield out["a"], "", out["speed_a"], out["b"], out["speed_b"]
                if stop.wait(GPU_WAIT_S):
                    return
            except gr.Error:
                raise
            except Exception as exc:
                raise load_failed(exc, target, request) from None
        out[f"speed_{pane}"] = speed_line(SERVICE.last_stats(session, pane), request)
        yield out["a"], "", out["speed_a"], out["b"], out["speed_b"]


def stop_generation(request: gr.Request = None):
    user = auth.user_from_request(request)
    if user is not None:
        _stops.setdefault(session_of(user, request), threading.Event()).set()


def forget_session(request: gr.Request = None):
    """The browser tab closed: its models let go."""
    user = auth.user_from_request(request)
    if user is not None:
        SERVICE.unload(session_of(user, request))
        _stops.pop(session_of(user, request), None)


def wire(tab: ChatTab, template: gr.Dropdown, model_name: gr.Textbox, max_seq_length: gr.Number,
         load_in_4bit: gr.Checkbox, browser_run: gr.BrowserState) -> None:
    form = [template, max_seq_length, load_in_4bit]
    inputs = [tab.message, tab.chatbot, tab.choice, tab.max_new_tokens, tab.temperature, *form, tab.compare,
              tab.seed, tab.chatbot_b, model_name, tab.fast16, tab.on_cpu]
    outputs = [tab.chatbot, tab.message, tab.speed, tab.chatbot_b, tab.speed_b]
    for event in (tab.send.click, tab.message.submit):
        event(respond, inputs, outputs, api_visibility="private").then(loaded_now, None, tab.loaded,
                                                                       api_visibility="private")
    tab.load.click(load, [tab.choice, tab.compare, model_name, *form, tab.fast16, tab.on_cpu], tab.loaded,
                   api_visibility="private")
    tab.unload.click(unload, None, tab.loaded, api_visibility="private")
    tab.choice.change(cost_hint, [tab.choice, model_name, load_in_4bit], tab.fast16, api_visibility="private")
    tab.stop.click(stop_generation, None, None, api_visibility="private", queue=False)
    tab.clear.click(lambda: ([], "", [], ""), None, [tab.chatbot, tab.speed, tab.chatbot_b, tab.speed_b],
                    api_visibility="private")
    tab.refresh.click(refresh_both, [browser_run, model_name, tab.compare], [tab.choice, tab.compare],
                      api_visibility="private")
