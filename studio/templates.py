"""Chat templates: Unsloth's `get_chat_template`, rendering rows exactly as training sees them,
and the span that `train_on_responses_only` trains on.

The highlight is not re-implemented: it runs Unsloth's own masking function on the rendered
row's token ids, so what the Template tab shows is what the trainer's labels are.
"""
from __future__ import annotations

from dataclasses import dataclass

# The names offered in the UI (all known to unsloth.chat_templates.CHAT_TEMPLATES; a test checks).
TEMPLATES = ["qwen-3", "qwen-2.5", "chatml", "llama-3.1", "gemma-3", "mistral", "phi-4", "phi-3",
             "zephyr", "vicuna", "alpaca", "gpt-oss"]

# instruction_part / response_part for train_on_responses_only, as the Unsloth docs give them.
# Templates not listed fall back to Unsloth's auto-detection (get_chat_template_parts).
MARKERS = {
    "qwen-3": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "qwen-2.5": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "chatml": ("<|im_start|>user\n", "<|im_start|>assistant\n"),
    "llama-3.1": ("<|start_header_id|>user<|end_header_id|>\n\n",
                  "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "gemma-3": ("<start_of_turn>user\n", "<start_of_turn>model\n"),
    "phi-4": ("<|im_start|>user<|im_sep|>", "<|im_start|>assistant<|im_sep|>"),
    "mistral": ("[INST]", "[/INST]"),
}

# Model family (config.json model_type, or a word in the name) -> default template.
FAMILY_TEMPLATES = [
    ("qwen3", "qwen-3"), ("qwen2", "qwen-2.5"), ("llama", "llama-3.1"), ("gemma", "gemma-3"),
    ("mistral", "mistral"), ("phi3", "phi-4"), ("phi-4", "phi-4"), ("phi", "phi-4"), ("gpt_oss", "gpt-oss"),
]


def default_template(model_name: str, model_type: str | None = None) -> str:
    for probe in (model_type or "", model_name.lower().replace("-", "")):
        for family, template in FAMILY_TEMPLATES:
            if family.replace("-", "") in probe:
                return template
    return "chatml"


def apply_template(tokenizer, name: str):
    """Put Unsloth's verified template on the tokenizer (what the chapter does with 'qwen-3')."""
    import unsloth  # noqa: F401  (patches transformers before it is used)
    from unsloth.chat_templates import get_chat_template
    return get_chat_template(tokenizer, chat_template=name)


def markers(tokenizer, name: str) -> tuple[str, str]:
    if name in MARKERS:
        return MARKERS[name]
    from unsloth_zoo.dataset_utils import get_chat_template_parts
    return get_chat_template_parts(tokenizer)


def render(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def training_text(tokenizer, messages: list[dict]) -> str:
    """render() plus the EOS token that TRL's SFTTrainer appends to each row ("Adding EOS to train dataset")."""
    text = render(tokenizer, messages)
    eos = tokenizer.eos_token
    return text if not eos or text.endswith(eos) else text + eos


@dataclass
class Segment:
    text: str
    trained: bool


def trained_segments(tokenizer, text: str, instruction_part: str, response_part: str,
                     max_length: int | None = None) -> tuple[list[Segment], int, int]:
    """Split `text` into runs of trained / not-trained tokens, using Unsloth's own masking.

    Returns (segments, trained_token_count, total_token_count). Tokens past `max_length` are
    cut, as the trainer cuts them.
    """
    from unsloth_zoo.dataset_utils import train_on_responses_only
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_length:
        ids = ids[:max_length]
    mask_fn = train_on_responses_only(None, instruction_part=instruction_part, response_part=response_part,
                                      tokenizer=tokenizer, return_function=True)
    labels = mask_fn({"input_ids": [ids]})["labels"][0]
    trained = [x != -100 for x in labels]
    return segments(tokenizer, ids, trained), sum(trained), len(ids)


def segments(tokenizer, ids: list[int], trained: list[bool]) -> list[Segment]:
    """Token ids as runs of text that are all trained or all not, decoded as they are (special tokens kept)."""
    out: list[Segment] = []
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or trained[i] != trained[start]:
            out.append(Segment(tokenizer.decode(ids[start:i], skip_special_tokens=False), trained[start]))
            start = i
    return out


class TokenizerCache:
    """Tokenizers with a chat template applied, keyed by model, template and the token that fetched them
    (a private model's tokenizer is never served to someone without that token)."""

    def __init__(self, size: int = 3):
        from studio.cache import LRU
        self.cache = LRU(size)

    def get(self, model_name: str, template: str, token: str | None = None):
        from studio.cache import secret_digest
        return self.cache.get_or_make((model_name, template, secret_digest(token)),
                                      lambda: self._load(model_name, template, token))

    @staticmethod
    def _load(model_name: str, template: str, token: str | None):
        import unsloth  # noqa: F401  (before transformers)
        from transformers import AutoTokenizer
        from studio import models
        models.load_model_config(model_name, token)  # the naming rule; fails fast and clearly when offline
        tok = AutoTokenizer.from_pretrained(models.source(model_name), token=token or None)
        return apply_template(tok, template)


TOKENIZERS = TokenizerCache()
