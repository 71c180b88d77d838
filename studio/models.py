"""Models: presets, where a model comes from, what the machine has, and what LoRA will train.

`inspect_model` answers the Model tab's questions in a second without loading weights: it reads
config.json (local folder, or the Hub), builds the architecture on PyTorch's meta device,
wraps it with PEFT exactly as `get_peft_model` will, and counts. No GPU memory is taken from
the training worker.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from studio import access
from studio.config import BUNDLED_MODEL, LoraConfig

# (label, model id). The first Hub entry is the chapter's model.
PRESETS = [
    ("Bundled tiny Qwen3 (offline, CPU)", BUNDLED_MODEL),
    ("Qwen3-4B 4-bit (the chapter)", "unsloth/Qwen3-4B-unsloth-bnb-4bit"),
    ("Qwen3-0.6B 4-bit", "unsloth/Qwen3-0.6B-unsloth-bnb-4bit"),
    ("Qwen3-1.7B 4-bit", "unsloth/Qwen3-1.7B-unsloth-bnb-4bit"),
    ("Qwen3-8B 4-bit", "unsloth/Qwen3-8B-unsloth-bnb-4bit"),
    ("Llama-3.2-3B-Instruct 4-bit", "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"),
    ("Llama-3.1-8B-Instruct 4-bit", "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit"),
    ("Gemma-3-4B-it 4-bit", "unsloth/gemma-3-4b-it-unsloth-bnb-4bit"),
    ("Phi-4-mini 4-bit", "unsloth/Phi-4-mini-instruct-unsloth-bnb-4bit"),
]
HUB_TIMEOUT_S = 5      # one request
HUB_DEADLINE_S = 8     # the whole question, retries included: then a clear message


class ModelError(ValueError):
    pass


@dataclass
class DeviceInfo:
    kind: str  # "cuda" or "cpu"
    name: str
    total_gb: float
    free_gb: float
    bf16: bool


def device_info() -> DeviceInfo:
    """What this machine trains on. A GPU is asked through nvidia-smi: the web process never makes a CUDA context
    of its own (a training run may be using the card)."""
    from studio import gpu
    row = gpu.nvidia_smi("name,memory.total,memory.free,compute_cap")
    try:
        if row:
            name, total, free, cap = row
            return DeviceInfo("cuda", name, float(total) / 1024, float(free) / 1024, float(cap) >= 8.0)
    except ValueError:
        pass
    import psutil

    from studio.timing import cpu_cores  # the cores this process may use, as the estimate counts them
    vm = psutil.virtual_memory()
    return DeviceInfo("cpu", f"CPU ({cpu_cores()} cores)", vm.total / 2**30, vm.available / 2**30, True)


def is_local(name: str) -> bool:
    """A folder on this machine that a person may use here (studio/access.py)."""
    return access.model_folder(name) is not None


def source(name: str) -> str:
    """What from_pretrained takes for `name`: the allowed local folder, else the name as a Hub id."""
    folder = access.model_folder(name)
    return str(folder) if folder is not None else (name or "").strip()


def load_model_config(name: str, token: str | None = None) -> dict:
    """config.json as a dict. A Hub id with no network fails within HUB_DEADLINE_S, never hangs."""
    name = (name or "").strip()
    if not name:
        raise ModelError("err_model")
    folder = access.model_folder(name)
    if folder is not None:
        path = folder / "config.json"
        if not path.is_file():
            raise ModelError(f"{name}: no config.json in this folder")
        return json.loads(path.read_text())
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        if access.shared():  # the same words whether such a folder exists or not
            raise ModelError(f"'{name}' is not a preset, a Hub id (owner/name) or a model folder this server "
                             "offers")
        raise ModelError(f"'{name}' is neither a local model folder nor a Hub id (owner/name)")
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    try:
        path = with_deadline(lambda: _download_config(name, token), HUB_DEADLINE_S)
    except TimeoutError:
        raise ModelError(f"'{name}': the Hugging Face Hub did not answer within {HUB_DEADLINE_S} s "
                         "(network down or very slow?). Use the bundled model or a local folder.") from None
    except RepositoryNotFoundError:
        raise ModelError(f"'{name}' was not found on the Hugging Face Hub (or it is private: add a token)") from None
    except LocalEntryNotFoundError:
        raise ModelError(f"'{name}' is not on this machine and the Hugging Face Hub cannot be reached "
                         "(offline?). Use the bundled model or a local folder.") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(f"'{name}': could not reach the Hugging Face Hub ({str(exc).splitlines()[0][:200]})") from None
    return json.loads(Path(path).read_text())


def _download_config(name: str, token: str | None) -> str:
    from huggingface_hub import constants, hf_hub_download
    # huggingface_hub reads its timeout variables once, at import: set the values it really uses.
    constants.HF_HUB_ETAG_TIMEOUT = min(constants.HF_HUB_ETAG_TIMEOUT, HUB_TIMEOUT_S)
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(constants.HF_HUB_DOWNLOAD_TIMEOUT, HUB_TIMEOUT_S)
    return hf_hub_download(name, "config.json", token=token or None, etag_timeout=HUB_TIMEOUT_S)


def with_deadline(fn, seconds: float):
    """fn() in a helper thread, or TimeoutError after `seconds` (a socket that never answers cannot hang us;
    the thread is left to finish on its own)."""
    import threading
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


@dataclass
class ModelSummary:
    model_type: str
    total_params: int
    trainable_params: int
    context_length: int | None
    quantized_4bit: bool

    @property
    def trainable_text(self) -> str:
        pct = 100 * self.trainable_params / max(1, self.total_params)
        return f"{self.trainable_params:,} of {self.total_params:,} ({pct:.2f}% trained)"


def inspect_model(name: str, lora: LoraConfig, token: str | None = None) -> ModelSummary:
    """Count what `get_peft_model` will train, on the meta device (no weights, no memory)."""
    cfg_dict = load_model_config(name, token)
    import torch
    import transformers
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    quant = cfg_dict.get("quantization_config") or {}
    cfg_dict = {k: v for k, v in cfg_dict.items() if k != "quantization_config"}
    try:
        config = transformers.AutoConfig.for_model(**cfg_dict)
    except Exception as exc:
        raise ModelError(f"{name}: unsupported config ({str(exc)[:200]})") from None
    config = getattr(config, "text_config", None) or config  # multimodal models: count the LLM
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    modules = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in lora.target_modules if t in modules]
    if not targets:
        raise ModelError(f"none of the target modules {lora.target_modules} exist in this model")
    peft_model = get_peft_model(model, PeftLoraConfig(r=lora.r, lora_alpha=lora.lora_alpha, target_modules=targets,
                                                      lora_dropout=lora.lora_dropout, bias=lora.bias))
    trainable, total = peft_model.get_nb_trainable_parameters()
    context = getattr(config, "max_position_embeddings", None)
    return ModelSummary(config.model_type, total, trainable, context, bool(quant.get("load_in_4bit")))
