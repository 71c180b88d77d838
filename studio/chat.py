"""Chat with a trained adapter or a base model: load once, stream tokens, stop on request.

The displayed history (Gradio's messages, content as blocks) and the model's messages
(role + plain string) are kept apart and joined by `normalize_history` alone.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from studio.config import RunConfig, resolve_path

BASE_PREFIX = "base:"
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


class ChatEngine:
    """One loaded model per process (a second choice replaces the first, freeing its memory)."""

    def __init__(self):
        self.loaded: Loaded | None = None
        self.lock = threading.Lock()  # one generation at a time: shared GPU, shared model

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
        from unsloth import FastLanguageModel
        from studio import templates
        self.loaded = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        four_bit = load_in_4bit and torch.cuda.is_available()
        if choice.startswith(BASE_PREFIX):
            name = choice[len(BASE_PREFIX):]
            path = resolve_path(name)
            model, tokenizer = FastLanguageModel.from_pretrained(
                str(path) if path.is_dir() else name, max_seq_length=max_seq_length, load_in_4bit=four_bit)
            tokenizer = templates.apply_template(tokenizer, template)
        else:
            run_dir = Path(runs_dir) / choice
            adapter = run_dir / "adapter"
            cfg = RunConfig.load(run_dir / "config.yaml")
            base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
            four_bit = cfg.model.load_in_4bit and torch.cuda.is_available()
            if base and (Path(base).is_dir() or not base.startswith("/")):
                # The chapter's way: from_pretrained on the adapter folder finds its base model.
                model, tokenizer = FastLanguageModel.from_pretrained(
                    str(adapter), max_seq_length=cfg.model.max_seq_length, load_in_4bit=four_bit)
            else:
                # adapter_config.json holds an absolute path that no longer exists (the repo moved):
                # load the base named in the run's config and attach the adapter to it.
                from peft import PeftModel
                model, _ = FastLanguageModel.from_pretrained(
                    str(resolve_path(cfg.model.name)) if resolve_path(cfg.model.name).is_dir() else cfg.model.name,
                    max_seq_length=cfg.model.max_seq_length, load_in_4bit=four_bit)
                model = PeftModel.from_pretrained(model, str(adapter))
                from transformers import AutoTokenizer
                tokenizer = AutoTokenizer.from_pretrained(str(adapter))
        FastLanguageModel.for_inference(model)
        self.loaded = Loaded(key, model, tokenizer)
        return self.loaded

    def stream(self, messages: list[dict], max_new_tokens: int = 128, temperature: float = 0.0,
               stop: threading.Event | None = None):
        """Yield the reply as it grows. `stop` set -> generation ends after the current token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
        loaded = self.loaded
        if loaded is None:
            raise RuntimeError("no model loaded")
        tok = loaded.tokenizer
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)
        device = next(loaded.model.parameters()).device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=False, timeout=300)
        stop = stop or threading.Event()

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return stop.is_set()

        kwargs = dict(**inputs, streamer=streamer, max_new_tokens=int(max_new_tokens),
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                      stopping_criteria=StoppingCriteriaList([_Stop()]))
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=0.95)
        else:
            kwargs.update(do_sample=False)
        # Chat templates end a turn with their own token (<|im_end|> for Qwen), not always tokenizer.eos.
        eos_tokens = [t for t in (tok.eos_token, "<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>") if t]
        vocab = tok.get_vocab()
        kwargs["eos_token_id"] = sorted({vocab[t] for t in eos_tokens if t in vocab})

        errors: list[BaseException] = []

        def _generate():
            try:
                with torch.inference_mode():
                    loaded.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        with self.lock:
            thread = threading.Thread(target=_generate, daemon=True)
            thread.start()
            text = ""
            for piece in streamer:
                text += piece
                yield clean_reply(text, eos_tokens)
            thread.join()
        if errors:
            raise errors[0]


def clean_reply(text: str, eos_tokens: list[str]) -> str:
    """Cut at the end-of-turn token and drop Qwen3's empty <think></think> block; a real one stays."""
    for eos in eos_tokens:
        if eos in text:
            text = text.split(eos)[0]
    text = re.sub(r"^\s*(<think>)?\s*</think>\s*", "", text)  # an empty think block (or its end: the prompt opened it)
    return text.strip("\n")
