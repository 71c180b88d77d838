"""Chat with a trained adapter or a base model: load once, stream tokens, stop on request.

The displayed history (Gradio's messages, content as blocks) and the model's messages
(role + plain string) are kept apart and joined by `normalize_history` alone.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from studio.config import RunConfig, resolve_path

log = logging.getLogger("studio.chat")

BASE_PREFIX = "base:"
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


@dataclass
class Loaded:
    key: str
    model: object
    tokenizer: object
    decoder: object = None  # studio.fastgen.FastDecoder, or None: model.generate streams
    fast_reason: str = ""  # why there is no decoder


def _loads_in_16bit(name: str) -> bool:
    """Whether chat can load this base in 16 bits without a download: a local folder that is not a
    pre-quantized checkpoint, or a Hub model whose 16-bit weights are already in the local cache."""
    path = resolve_path(name)
    if path.is_dir():
        try:
            return "quantization_config" not in json.loads((path / "config.json").read_text())
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


class ChatEngine:
    """One loaded model per process (a second choice replaces the first, freeing its memory)."""

    def __init__(self):
        self.loaded: Loaded | None = None
        self.lock = threading.Lock()  # one generation at a time: shared GPU, shared model
        self.last_stats: dict | None = None  # of the last answer: tokens, seconds, tokens_per_s, ttft_s, path

    def load(self, choice: str, runs_dir: Path | None = None, template: str = "qwen-3",
             max_seq_length: int = 2048, load_in_4bit: bool = False) -> Loaded:
        # Everything that changes the loaded model or its template is in the key (a run's own settings come
        # from its config.yaml; a base model's from the form).
        key = json.dumps([choice, template, int(max_seq_length), bool(load_in_4bit)]) \
            if choice.startswith(BASE_PREFIX) else json.dumps([choice, str(runs_dir)])
        if self.loaded and self.loaded.key == key:
            return self.loaded
        import unsloth  # noqa: F401
        import torch
        from studio import templates
        self.loaded = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        four_bit = load_in_4bit and torch.cuda.is_available()
        if choice.startswith(BASE_PREFIX):
            name = choice[len(BASE_PREFIX):]
            path = resolve_path(name)
            source, seq_len, adapter, cfg = str(path) if path.is_dir() else name, max_seq_length, None, None
            base = name
        else:
            run_dir = Path(runs_dir) / choice
            adapter = run_dir / "adapter"
            cfg = RunConfig.load(run_dir / "config.yaml")
            base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
            four_bit = cfg.model.load_in_4bit and torch.cuda.is_available()
            source, seq_len = None, cfg.model.max_seq_length
        base_name = base if (base and (Path(base).is_dir() or not base.startswith("/"))) or cfg is None else cfg.model.name
        weights = None
        if four_bit and _fast_chat() and _loads_in_16bit(base_name):
            # A 4-bit copy of a 16-bit base: chat on the 16-bit base (adapter merged in, one bf16 matrix per
            # projection), which studio.fastgen decodes several times faster. Out of memory or any other
            # failure: the 4-bit model, as trained.
            try:
                weights = self._load_weights(choice, source, adapter, base, cfg, seq_len, False)
                four_bit = False
            except Exception as exc:
                log.warning("chat: could not load the 16-bit model (%s: %s); loading it in 4 bits",
                            type(exc).__name__, str(exc)[:300])
            if weights is None:  # outside the except block: its traceback no longer holds the failed load
                import gc
                gc.collect()
                torch.cuda.empty_cache()
        if weights is not None:
            model, tokenizer = weights
        else:
            model, tokenizer = self._load_weights(choice, source, adapter, base, cfg, seq_len, four_bit)
        if choice.startswith(BASE_PREFIX):
            tokenizer = templates.apply_template(tokenizer, template)
        self.loaded = Loaded(key, model, tokenizer)
        self._make_decoder(self.loaded, seq_len)
        return self.loaded

    @staticmethod
    def _load_weights(choice, source, adapter, base, cfg, seq_len, four_bit):
        """(model ready for inference, tokenizer); an adapter is merged into 16-bit weights."""
        from unsloth import FastLanguageModel
        if choice.startswith(BASE_PREFIX):
            model, tokenizer = FastLanguageModel.from_pretrained(source, max_seq_length=seq_len,
                                                                 load_in_4bit=four_bit)
        elif base and (Path(base).is_dir() or not base.startswith("/")):
            # The chapter's way: from_pretrained on the adapter folder finds its base model.
            model, tokenizer = FastLanguageModel.from_pretrained(
                str(adapter), max_seq_length=seq_len, load_in_4bit=four_bit)
        else:
            # adapter_config.json holds an absolute path that no longer exists (the repo moved):
            # load the base named in the run's config and attach the adapter to it.
            from peft import PeftModel
            model, _ = FastLanguageModel.from_pretrained(
                str(resolve_path(cfg.model.name)) if resolve_path(cfg.model.name).is_dir() else cfg.model.name,
                max_seq_length=seq_len, load_in_4bit=four_bit)
            model = PeftModel.from_pretrained(model, str(adapter))
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(str(adapter))
        if hasattr(model, "merge_and_unload") and not four_bit:
            try:  # LoRA into the 16-bit weights: the same answers, no adapter matmuls per token
                model = model.merge_and_unload()
            except Exception as exc:
                log.warning("chat: could not merge the adapter (%s); it stays separate", exc)
        FastLanguageModel.for_inference(model)
        return model, tokenizer

    @staticmethod
    def _make_decoder(loaded: Loaded, max_seq_length: int) -> None:
        """The fast path, made (and on a GPU its CUDA graphs captured) now, so the first answer is fast.
        Any failure leaves decoder None, the reason logged, and chat on model.generate."""
        if not _fast_chat():
            loaded.fast_reason = "STUDIO_FAST_CHAT=0"
            return
        import torch
        from studio import fastgen
        try:
            decoder = fastgen.FastDecoder(loaded.model, max_cache_len=max(int(max_seq_length), CHAT_CACHE_TOKENS),
                                          require_cuda_graph=torch.cuda.is_available())
            _check_decoder(decoder, loaded.tokenizer)
            loaded.decoder = decoder
            log.info("chat: fast path on (%s, %d cache slots)", decoder.path, decoder.max_cache_len)
        except Exception as exc:
            loaded.decoder = None
            loaded.fast_reason = f"{type(exc).__name__}: {exc}"
            log.warning("chat: fast path off, model.generate streams instead (%s)", loaded.fast_reason)

    def stream(self, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.0,
               stop: threading.Event | None = None, seed: int | None = None):
        """Yield the reply as it grows. `stop` set -> generation ends after the current token. `seed` fixes the
        sampling (two models compared on one prompt draw with the same seed).
        Afterwards self.last_stats holds the answer's tokens, seconds, tokens/s and time to first token."""
        loaded = self.loaded
        if loaded is None:
            raise RuntimeError("no model loaded")
        tok = loaded.tokenizer
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)
        stop = stop or threading.Event()
        # Chat templates end a turn with their own token (<|im_end|> for Qwen), not always tokenizer.eos.
        eos_tokens = [t for t in (tok.eos_token, "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>") if t]
        vocab = tok.get_vocab()
        eos_ids = sorted({vocab[t] for t in eos_tokens if t in vocab})
        self.last_stats = None
        with self.lock:
            decoder = loaded.decoder
            n_prompt = int(inputs["input_ids"].shape[1])
            if decoder is not None and n_prompt + int(max_new_tokens) <= decoder.max_cache_len:
                try:
                    yield from self._stream_fast(decoder, tok, inputs["input_ids"], max_new_tokens, temperature,
                                                 stop, eos_ids, eos_tokens, seed)
                    return
                except Exception as exc:  # the plain path answers (from the start) and the fast one stays off
                    loaded.decoder = None
                    loaded.fast_reason = f"failed while answering: {type(exc).__name__}: {exc}"
                    log.warning("chat: fast path failed, model.generate answers instead (%s)", loaded.fast_reason)
            elif decoder is not None:
                log.info("chat: %d prompt + %d new tokens exceed the fast path's %d cache slots; model.generate "
                         "answers", n_prompt, int(max_new_tokens), decoder.max_cache_len)
            yield from self._stream_plain(loaded, inputs, max_new_tokens, temperature, stop, eos_ids, eos_tokens, seed)

    def _stream_fast(self, decoder, tok, input_ids, max_new_tokens, temperature, stop, eos_ids, eos_tokens,
                     seed=None):
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
        self.last_stats = decoder.last_stats.as_dict()

    def _stream_plain(self, loaded, inputs, max_new_tokens, temperature, stop, eos_ids, eos_tokens, seed=None):
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
        self.last_stats = {"prompt_tokens": int(inputs["input_ids"].shape[1]), "tokens": new, "seconds": seconds,
                           "tokens_per_s": new / seconds if seconds > 0 else 0.0,
                           "ttft_s": (t_first - t0) if t_first else seconds, "path": "generate",
                           "fast_reason": loaded.fast_reason}


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
