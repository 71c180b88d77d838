"""Chat with a trained adapter or a base model: a core service with a handle per session.

A target is typed: `RunTarget` (a run folder, reached only through the owner check, studio/jobs.py open_run)
or `BaseTarget` (a model by the naming rule, studio/access.py, checked when the target is made). `ChatService`
keeps the loaded models (shared by sessions that chose the same target, each model with its own lock) and, per
session (a browser tab, or an API caller), which model each pane holds. Loading and answering are one step:
an answer comes from the model the session's pane holds, under that model's lock, so another person's choice
can never swap it. Load and Unload are explicit too; an idle model lets go of the GPU when a run needs it.

Where a GPU is, a model takes a lease first (studio/gpu.py): one that does not fit beside a training run waits
(`gpu.GpuBusy`, said in words), or runs on the CPU when the person asks. A 4-bit run chats in 4 bits unless the
person asks for the 16-bit merge, which is faster and costs what `target_gb` says.

The displayed history (Gradio's messages, content as blocks) and the model's messages (role + plain string) are
kept apart and joined by `normalize_history` alone.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from studio import gpu, models
from studio.config import RunConfig

log = logging.getLogger("studio.chat")

# KV-cache slots of the fast chat path (studio.fastgen): prompt + answer; capped by the model's context.
# 4096 slots of a Qwen3-4B cost 0.6 GB; an answer that would not fit takes the plain path.
CHAT_CACHE_TOKENS = 4096
TOP_P = 0.95  # nucleus sampling whenever temperature > 0 (the Modelfile export says the same to Ollama)
EXAMPLES = [  # the chapter's two prompts
    "Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,",
    "What is France's tallest tower called?",
]


def normalize_content(content) -> str:
    """Gradio 6 hands content as a list of blocks ([{"type": "text", "text": ...}]) or a string."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return "".join(normalize_content(c) for c in content)
    return "" if content is None else str(content)


def normalize_history(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": normalize_content(m.get("content"))}
            for m in history or [] if m.get("role") in ("system", "user", "assistant")]


# ---------------------------------------------------------------- what a person may chat with

@dataclass(frozen=True)
class RunTarget:
    """A run's adapter. Make it from a folder that passed the owner check (jobs.open_run), nothing else."""
    run_dir: Path
    fast16: bool = False  # a 4-bit run: chat on its 16-bit base with the adapter merged (faster, more memory)
    device: str = "auto"  # "cpu": on the CPU although a GPU is here (it is training)

    def key(self) -> str:
        adapter = self.run_dir / "adapter" / "adapter_model.safetensors"
        stamp = adapter.stat().st_mtime_ns if adapter.exists() else 0  # a resumed run's new adapter: reload
        return json.dumps(["run", str(self.run_dir), stamp, self.fast16, self.device])

    @property
    def label(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class BaseTarget:
    """A base model named by the naming rule; make it with `base_target`."""
    name: str
    template: str = "qwen-3"
    max_seq_length: int = 2048
    load_in_4bit: bool = False
    fast16: bool = False
    device: str = "auto"

    def key(self) -> str:
        return json.dumps(["base", models.source(self.name), self.template, self.max_seq_length, self.load_in_4bit,
                           self.fast16, self.device])

    @property
    def label(self) -> str:
        return self.name


def base_target(name: str, template: str = "qwen-3", max_seq_length: int = 2048, load_in_4bit: bool = False,
                fast16: bool = False, device: str = "auto", token: str | None = None) -> BaseTarget:
    """A base model target, if the naming rule allows the name (models.ModelError otherwise, the same words for a
    folder that exists and one that does not)."""
    models.load_model_config(name, token)
    return BaseTarget(name.strip(), template, int(max_seq_length or 2048), bool(load_in_4bit), bool(fast16), device)


def target_gb(target) -> tuple[float, float]:
    """(GiB as it would load, GiB of the 16-bit alternative) of a target's model: what the UI says it costs."""
    name, four_bit = _base_of(target)
    return gpu.model_gb(name, four_bit), gpu.model_gb(name, False)


def _base_of(target) -> tuple[str, bool]:
    if isinstance(target, RunTarget):
        cfg = RunConfig.load(target.run_dir / "config.yaml")
        return cfg.model.name, cfg.model.load_in_4bit
    return target.name, target.load_in_4bit


# ---------------------------------------------------------------- one loaded model

@dataclass
class ChatModel:
    key: str
    label: str
    model: object
    tokenizer: object
    device: str = "cpu"
    bits: int = 16
    gb: float = 0.0
    decoder: object = None  # studio.fastgen.FastDecoder, or None: model.generate streams
    fast_reason: str = ""   # why there is no decoder
    lease: object = None    # studio.gpu.Lease while it sits on a GPU
    lock: threading.Lock = field(default_factory=threading.Lock)  # one answer at a time from this model
    last_used: float = field(default_factory=time.time)

    def free(self) -> None:
        if self.lease is not None:
            self.lease.release()
        self.model = self.decoder = None


def _loads_in_16bit(name: str) -> bool:
    """Whether chat can load this base in 16 bits without a download: a local folder that is not a
    pre-quantized checkpoint, or a Hub model whose 16-bit weights are already in the local cache."""
    folder = models.source(name)
    if Path(folder).is_dir():
        try:
            return "quantization_config" not in json.loads((Path(folder) / "config.json").read_text())
        except (OSError, ValueError):
            return False
    if not name or re.search(r"(bnb|4bit|gptq|awq)", name, re.IGNORECASE):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
        return any(isinstance(try_to_load_from_cache(name, f), str)
                   for f in ("model.safetensors.index.json", "model.safetensors"))
    except Exception:
        return False


def load_model(target) -> ChatModel:
    """The target's model, ready to answer (an adapter merged into 16-bit weights where it can be), with its GPU
    lease where a GPU is. Raises gpu.GpuBusy when it does not fit beside what holds the card."""
    import unsloth  # noqa: F401
    import torch
    from studio import templates
    on_gpu = torch.cuda.is_available() and target.device != "cpu"
    base, four_bit = _base_of(target)
    four_bit = four_bit and on_gpu
    if four_bit and target.fast16 and _loads_in_16bit(base):
        four_bit = False  # asked for: the 16-bit merge, which studio.fastgen decodes several times faster
    gb = gpu.model_gb(base, four_bit)
    lease = gpu.take("chat", gb, target.label) if on_gpu else None
    try:
        if on_gpu:
            model, tokenizer = _load_with_unsloth(target, four_bit)
        else:
            model, tokenizer = _load_on_cpu(target)
        if isinstance(target, BaseTarget):
            tokenizer = templates.apply_template(tokenizer, target.template)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    seq_len = RunConfig.load(target.run_dir / "config.yaml").model.max_seq_length \
        if isinstance(target, RunTarget) else target.max_seq_length
    chat = ChatModel(target.key(), target.label, model, tokenizer, "cuda" if on_gpu else "cpu",
                     4 if four_bit else 16, gb, lease=lease)
    _make_decoder(chat, seq_len)
    return chat


def _load_with_unsloth(target, four_bit: bool):
    """(model ready for inference, tokenizer) through Unsloth, as the chapter loads it."""
    from unsloth import FastLanguageModel
    if isinstance(target, BaseTarget):
        model, tokenizer = FastLanguageModel.from_pretrained(models.source(target.name),
                                                             max_seq_length=target.max_seq_length,
                                                             load_in_4bit=four_bit)
    else:
        cfg = RunConfig.load(target.run_dir / "config.yaml")
        from peft import PeftModel
        from transformers import AutoTokenizer
        # the run's own base by the naming rule (adapter_config.json may name a folder that moved), then the adapter
        model, _ = FastLanguageModel.from_pretrained(models.source(cfg.model.name),
                                                     max_seq_length=cfg.model.max_seq_length, load_in_4bit=four_bit)
        model = PeftModel.from_pretrained(model, str(target.run_dir / "adapter"))
        tokenizer = AutoTokenizer.from_pretrained(str(target.run_dir / "adapter"))
    if hasattr(model, "merge_and_unload") and not four_bit:
        try:  # LoRA into the 16-bit weights: the same answers, no adapter matmuls per token
            model = model.merge_and_unload()
        except Exception as exc:
            log.warning("chat: could not merge the adapter (%s); it stays separate", exc)
    FastLanguageModel.for_inference(model)
    return model, tokenizer


def _load_on_cpu(target):
    """(model, tokenizer) on the CPU: Unsloth's CPU path where there is no GPU; with a GPU busy training, plain
    transformers + PEFT on the CPU (a pre-quantized 4-bit base cannot load there)."""
    import torch
    if not torch.cuda.is_available():
        return _load_with_unsloth(target, False)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    name = target.name if isinstance(target, BaseTarget) else RunConfig.load(target.run_dir / "config.yaml").model.name
    if not _loads_in_16bit(name):
        raise RuntimeError(f"{name} is a 4-bit checkpoint: it cannot run on the CPU")
    model = AutoModelForCausalLM.from_pretrained(models.source(name), dtype=torch.float32, device_map="cpu")
    if isinstance(target, RunTarget):
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(target.run_dir / "adapter")).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(str(target.run_dir / "adapter"))
    else:
        tokenizer = AutoTokenizer.from_pretrained(models.source(name))
    return model.eval(), tokenizer


def _make_decoder(loaded: ChatModel, max_seq_length: int) -> None:
    """The fast path, made (and on a GPU its CUDA graphs captured) now, so the first answer is fast.
    Any failure leaves decoder None, the reason logged, and chat on model.generate."""
    if not _fast_chat():
        loaded.fast_reason = "STUDIO_FAST_CHAT=0"
        return
    from studio import fastgen
    try:
        decoder = fastgen.FastDecoder(loaded.model, max_cache_len=max(int(max_seq_length), CHAT_CACHE_TOKENS),
                                      require_cuda_graph=loaded.device == "cuda")
        _check_decoder(decoder, loaded.tokenizer)
        loaded.decoder = decoder
        log.info("chat: fast path on (%s, %d cache slots)", decoder.path, decoder.max_cache_len)
    except Exception as exc:
        loaded.decoder = None
        loaded.fast_reason = f"{type(exc).__name__}: {exc}"
        log.warning("chat: fast path off, model.generate streams instead (%s)", loaded.fast_reason)


# ---------------------------------------------------------------- answering

def answer(loaded: ChatModel, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.0,
           stop: threading.Event | None = None, seed: int | None = None, stats: dict | None = None):
    """Yield the reply as it grows. `stop` set -> generation ends after the current token. `seed` fixes the
    sampling (two models compared on one prompt draw with the same seed). `stats` gets the answer's tokens,
    seconds, tokens/s and time to first token. The caller holds loaded.lock."""
    tok = loaded.tokenizer
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    stop = stop or threading.Event()
    stats = stats if stats is not None else {}
    # Chat templates end a turn with their own token (<|im_end|> for Qwen), not always tokenizer.eos.
    eos_tokens = [t for t in (tok.eos_token, "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>") if t]
    vocab = tok.get_vocab()
    eos_ids = sorted({vocab[t] for t in eos_tokens if t in vocab})
    loaded.last_used = time.time()
    decoder = loaded.decoder
    n_prompt = int(inputs["input_ids"].shape[1])
    if decoder is not None and n_prompt + int(max_new_tokens) <= decoder.max_cache_len:
        try:
            yield from _stream_fast(decoder, tok, inputs["input_ids"], max_new_tokens, temperature, stop, eos_ids,
                                    eos_tokens, seed, stats)
            return
        except Exception as exc:  # the plain path answers (from the start) and the fast one stays off
            loaded.decoder = None
            loaded.fast_reason = f"failed while answering: {type(exc).__name__}: {exc}"
            log.warning("chat: fast path failed, model.generate answers instead (%s)", loaded.fast_reason)
    elif decoder is not None:
        log.info("chat: %d prompt + %d new tokens exceed the fast path's %d cache slots; model.generate answers",
                 n_prompt, int(max_new_tokens), decoder.max_cache_len)
    yield from _stream_plain(loaded, inputs, max_new_tokens, temperature, stop, eos_ids, eos_tokens, seed, stats)


def _stream_fast(decoder, tok, input_ids, max_new_tokens, temperature, stop, eos_ids, eos_tokens, seed,
             stats):
    """The decoder runs in its own thread and never waits for the page: each yield carries every token
    made since the last one (at a few hundred tokens/s the page takes several per update)."""
    import queue
    tokens: queue.Queue = queue.Queue()
    abandoned = threading.Event()  # the caller closed this generator (page gone): end the decoder too
    sampling = bool(temperature and temperature > 0)
    done = object()

    def produce():
        try:
            for token in decoder.stream(input_ids, int(max_new_tokens), temperature=float(temperature or 0.0),
                                        top_p=TOP_P if sampling else 1.0, stop_event=_AnyEvent(stop, abandoned),
                                        eos_token_ids=eos_ids, **({"seed": seed} if seed is not None else {})):
                tokens.put(token)
            tokens.put(done)
        except BaseException as exc:  # handed to the consumer, which falls back to the plain path
            tokens.put(exc)

    thread = threading.Thread(target=produce, daemon=True, name="fast-chat")
    thread.start()
    text = ""
    pending: list[int] = []  # tokens since the last word boundary, decoded together (as TextStreamer does)
    try:
        finished = False
        while not finished:
            batch = [tokens.get()]
            while not tokens.empty():
                batch.append(tokens.get_nowait())
            for item in batch:
                if item is done:
                    finished = True
                elif isinstance(item, BaseException):
                    raise item
                else:
                    pending.append(item)
            piece = tok.decode(pending, skip_special_tokens=False)
            if piece.endswith("\ufffd") and not finished:  # a character whose bytes are not all out yet
                continue
            if piece.endswith((" ", "\n")) or len(pending) > 32 or finished:
                text, pending, piece = text + piece, [], ""
            yield clean_reply(text + piece, eos_tokens)
    finally:
        abandoned.set()
        thread.join()
    stats.update(decoder.last_stats.as_dict())

def _stream_plain(loaded, inputs, max_new_tokens, temperature, stop, eos_ids, eos_tokens, seed, stats):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
    tok = loaded.tokenizer
    device = next(loaded.model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=False, timeout=300)

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw):
            return stop.is_set()

    kwargs = dict(**inputs, streamer=streamer, max_new_tokens=int(max_new_tokens),
                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                  stopping_criteria=StoppingCriteriaList([_Stop()]), eos_token_id=eos_ids)
    if temperature and temperature > 0:
        kwargs.update(do_sample=True, temperature=float(temperature), top_p=TOP_P)
    else:
        kwargs.update(do_sample=False)

    errors: list[BaseException] = []
    outputs: list = []

    def _generate():
        try:
            if seed is not None:
                torch.manual_seed(int(seed))
            with torch.inference_mode():
                outputs.append(loaded.model.generate(**kwargs))
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
            streamer.end()

    t0 = time.perf_counter()
    t_first = None
    thread = threading.Thread(target=_generate, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        if t_first is None:
            t_first = time.perf_counter()
        text += piece
        yield clean_reply(text, eos_tokens)
    thread.join()
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - t0
    new = int(outputs[0].shape[1] - inputs["input_ids"].shape[1]) if outputs else 0
    stats.update({"prompt_tokens": int(inputs["input_ids"].shape[1]), "tokens": new, "seconds": seconds,
                  "tokens_per_s": new / seconds if seconds > 0 else 0.0,
                  "ttft_s": (t_first - t0) if t_first else seconds, "path": "generate",
                  "fast_reason": loaded.fast_reason})


# ---------------------------------------------------------------- the service

class ChatService:
    """The models loaded for chat, and which one each session's pane holds (module docstring).

    At most `keep` models stay loaded (STUDIO_CHAT_MODELS, default 2): loading one more lets go of the least
    recently used that no session holds, else of the least recently used idle one (its session reloads it on
    its next message)."""

    def __init__(self, keep: int | None = None):
        self.keep = keep or int(os.environ.get("STUDIO_CHAT_MODELS", "2") or 2)
        self.models: OrderedDict[str, ChatModel] = OrderedDict()
        self.sessions: dict[str, dict[str, str]] = {}  # session -> pane -> model key
        self.stats: dict[tuple[str, str], dict] = {}   # (session, pane) -> the last answer's figures
        self.lock = threading.Lock()                    # the two maps above
        self.loading: dict[str, threading.Lock] = {}     # one load per key at a time
        gpu.on_pressure(self.release_idle)

    def load(self, session: str, pane: str, target) -> ChatModel:
        """The model for `target`, now this session's pane's (loaded, or shared with a session that has it)."""
        key = target.key()
        with self.lock:
            loading = self.loading.setdefault(key, threading.Lock())
        with loading:
            with self.lock:
                chat = self.models.get(key)
                if chat is None:
                    self._make_room(self.keep - 1)
            if chat is None:
                chat = load_model(target)  # outside the map's lock: other sessions go on answering meanwhile
            with self.lock:
                self.models[key] = chat
                self.models.move_to_end(key)
                self.sessions.setdefault(session, {})[pane] = key
        return chat

    def held(self, session: str, pane: str = "a") -> ChatModel | None:
        with self.lock:
            return self.models.get(self.sessions.get(session, {}).get(pane, ""))

    def unload(self, session: str, pane: str | None = None) -> None:
        """The session lets go (one pane, or all); a model no session holds is freed at once."""
        with self.lock:
            panes = self.sessions.get(session, {})
            for p in ([pane] if pane else list(panes)):
                panes.pop(p, None)
                self.stats.pop((session, p), None)
            if not panes:
                self.sessions.pop(session, None)
            self._free_unheld()

    def stream(self, session: str, pane: str, target, messages: list[dict], max_new_tokens: int = 128,
               temperature: float = 0.0, stop: threading.Event | None = None, seed: int | None = None):
        """Load (if this pane does not hold the target yet) and answer, as one step: the reply comes from this
        session's model, whatever anyone else loads meanwhile."""
        stats: dict = {}
        while True:
            chat = self.load(session, pane, target)
            with chat.lock:
                if chat.model is None:  # let go between load and lock (a run needed the GPU): load it again
                    continue
                yield from answer(chat, messages, max_new_tokens, temperature, stop, seed, stats)
                break
        with self.lock:
            self.stats[(session, pane)] = stats

    def last_stats(self, session: str, pane: str = "a") -> dict:
        with self.lock:
            return dict(self.stats.get((session, pane)) or {})

    def release_idle(self) -> None:
        """A training run waits for GPU memory: every model that is not answering right now lets go."""
        with self.lock:
            for key in list(self.models):
                chat = self.models[key]
                if chat.device == "cuda" and chat.lock.acquire(blocking=False):
                    try:
                        self._drop(key)
                    finally:
                        chat.lock.release()

    def _make_room(self, keep: int) -> None:  # under self.lock
        held = {k for panes in self.sessions.values() for k in panes.values()}
        for key in [k for k in self.models if k not in held] + [k for k in self.models if k in held]:
            if len(self.models) <= max(0, keep):
                return
            chat = self.models[key]
            if chat.lock.acquire(blocking=False):  # never one that is answering
                try:
                    self._drop(key)
                finally:
                    chat.lock.release()

    def _free_unheld(self) -> None:  # under self.lock
        held = {k for panes in self.sessions.values() for k in panes.values()}
        for key in [k for k in self.models if k not in held]:
            self._drop(key)

    def _drop(self, key: str) -> None:  # under self.lock
        chat = self.models.pop(key)
        chat.free()
        for panes in self.sessions.values():
            for pane in [p for p, k in panes.items() if k == key]:
                panes.pop(pane)
        gc.collect()
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


SERVICE = ChatService()


def _check_decoder(decoder, tokenizer) -> None:
    """One decode step against the model's own forward on a chat prompt: a decoder that computes something
    else (a layer it does not know, a rotation it gets wrong) is refused. A check that cannot run is logged."""
    import math
    from studio.fastgen import FastPathUnavailable
    try:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": EXAMPLES[1]}], add_generation_prompt=True,
                                            tokenize=True, return_dict=True)["input_ids"]
        check = decoder.compare_with_model(list(ids))
    except Exception as exc:
        log.warning("chat: could not compare the fast path with the model (%s: %s)", type(exc).__name__, exc)
        return
    log.info("chat: fast path vs the model's forward: %s", check)
    if not math.isfinite(check["rel_diff"]) or check["rel_diff"] > 0.1:  # bf16 rounding: ~0.005
        raise FastPathUnavailable(f"its logits differ from the model's (relative difference {check['rel_diff']:.3g})")


class _AnyEvent:
    """is_set() when any of the events is."""

    def __init__(self, *events):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _fast_chat() -> bool:
    """STUDIO_FAST_CHAT=0 keeps chat on model.generate (no 16-bit reload, no merge, no decoder)."""
    import os
    return os.environ.get("STUDIO_FAST_CHAT", "1") != "0"


def clean_reply(text: str, eos_tokens: list[str]) -> str:
    """Cut at the end-of-turn token and drop Qwen3's empty <think></think> block; a real one stays."""
    for eos in eos_tokens:
        if eos in text:
            text = text.split(eos)[0]
    text = re.sub(r"^\s*(<think>)?\s*</think>\s*", "", text)  # an empty think block (or its end: the prompt opened it)
    return text.strip("\n")
