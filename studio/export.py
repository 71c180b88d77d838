"""Take a finished run away: the adapter as a zip, a merged 16-bit model, GGUF for llama.cpp/Ollama,
the Hugging Face Hub, and one Python script that trains the same run without the studio.

Everything lands in runs/<id>/export/. Each function returns what it made, and nothing is ever left
half-written: files are written under a temporary name in the same folder and renamed at the end
(a rename is atomic), and the temporary is removed when anything fails.

No gradio here; the Export tab (studio/ui/export_tab.py) only calls these.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from studio import templates
from studio.config import RunConfig, resolve_path

HUB_WHAT = ("adapter", "merged")
# One model-sized job at a time in this process: two clicks must not hold two copies of a model in memory,
# nor race to replace the same export/merged/ folder.
_model_jobs = threading.RLock()


class ExportError(RuntimeError):
    """A problem the person can act on; `str()` is the message to show (English). `key` and `params`: the same
    message in MESSAGES (here or in studio/gguf_export.py), which the Export tab says in the person's language;
    `cause`: the DataError behind it, likewise."""

    def __init__(self, message: str, cause: Exception | None = None, key: str | None = None,
                 params: dict | None = None):
        super().__init__(message)
        self.cause = cause
        self.key = key
        self.params = params or {}


MESSAGES = {  # the other ExportErrors are said in English only
    "err_export_gpu_busy": ("The GPU is training ({run}) and this 4-bit model's merge needs about {need} GiB of it: "
                            "export it when the run has ended.",
                            "GPU가 훈련 중이고({run}) 이 4비트 모델의 병합에는 약 {need} GiB가 필요합니다: 훈련이 끝난 뒤 "
                            "내보내세요."),
    "err_export_data": ("the run's dataset can't be read to write the script: {detail}",
                        "실행의 데이터셋을 읽을 수 없어 스크립트를 만들 수 없습니다: {detail}"),
    "err_export_no_drops": ("this run leaves rows out (data.drop) but stopped before it recorded which, so the script "
                            "can't leave out the same rows; resume it or start it again first",
                            "이 실행은 행을 빼도록(data.drop) 되어 있지만 어떤 행인지 기록하기 전에 멈췄습니다. 스크립트가 "
                            "같은 행을 뺄 수 없으니 먼저 이어서 훈련하거나 다시 시작하세요"),
}


# ---------------------------------------------------------------- run folder basics

def export_dir(run_dir: Path) -> Path:
    path = Path(run_dir) / "export"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_run(run_dir: Path) -> RunConfig:
    """The run's config, refusing runs without a saved adapter (still training, or failed early)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir.name}: not a run folder (no config.yaml)")
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise ExportError(f"{run_dir.name}: this run has no saved adapter yet (is it still training, or did it fail?)")
    return RunConfig.load(run_dir / "config.yaml")


def base_model(run_dir: Path, cfg: RunConfig | None = None) -> str:
    """The base model as something from_pretrained takes: a local folder that exists, or a Hub id.

    config.yaml names it relative to the repo for the bundled model; adapter_config.json stores the
    absolute path it was at when trained, which breaks when the repo moves. The run's config wins.
    """
    from studio import access
    cfg = cfg or load_run(run_dir)
    local = access.model_folder(cfg.model.name)  # the naming rule, as the form and the worker apply it
    if local is not None:
        return str(local)
    saved = json.loads((Path(run_dir) / "adapter" / "adapter_config.json").read_text()).get(
        "base_model_name_or_path") or ""
    if saved and access.model_folder(saved) is not None:
        return str(access.model_folder(saved))
    return cfg.model.name


@contextmanager
def staged(final: Path, folder: bool = False):
    """Yield a temporary path beside `final`; on success it replaces `final`, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    tmp.chmod(0o755 if folder else 0o644)  # mkstemp/mkdtemp make them private; exports are ordinary files
    try:
        yield tmp
        if folder and final.exists():  # a folder can't be renamed over a full one: move the old one aside first
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- adapter zip

def zip_adapter(run_dir: Path) -> Path:
    """export/<run>-adapter.zip: the adapter folder (PEFT files + tokenizer + chat template) and config.yaml."""
    run_dir = Path(run_dir)
    load_run(run_dir)
    final = export_dir(run_dir) / f"{run_dir.name}-adapter.zip"
    with staged(final) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted((run_dir / "adapter").rglob("*")):
                if path.is_file():
                    zf.write(path, f"adapter/{path.relative_to(run_dir / 'adapter')}")
            zf.write(run_dir / "config.yaml", "config.yaml")
    return final


# ---------------------------------------------------------------- merged 16-bit model

def merged_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "export" / "merged"


def merge_16bit(run_dir: Path) -> Path:
    """export/merged/: base + adapter merged into one 16-bit model that plain transformers loads.

    Unsloth's `save_pretrained_merged(save_method="merged_16bit")` does the merge (on CPU it merges in
    fp32 and rounds once to bf16); should it be unavailable, PEFT's `merge_and_unload()` does the same.
    """
    from studio import gpu
    run_dir = Path(run_dir)
    cfg = load_run(run_dir)
    final = merged_dir(run_dir)
    with _model_jobs, staged(final, folder=True) as tmp:
        try:  # the GPU's lease (studio/gpu.py): beside a training run only if it fits, else on the CPU
            lease = gpu.take("export", gpu.model_gb(cfg.model.name, False), run_dir.name)
        except gpu.GpuBusy as exc:
            lease = None
            if cfg.model.load_in_4bit:  # a 4-bit checkpoint merges only where bitsandbytes runs: the GPU
                raise ExportError(str(exc), key="err_export_gpu_busy",
                                  params={"need": f"{exc.need_gb:.1f}", "run": exc.training or "—"}) from None
            _merge_with_peft(run_dir, cfg, tmp)  # on the CPU: slower, and the run keeps its GPU
        else:
            try:
                _merge_with_unsloth(run_dir, cfg, tmp)
            except (NotImplementedError, AttributeError):
                for child in tmp.iterdir():  # whatever the failed attempt wrote
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
                _merge_with_peft(run_dir, cfg, tmp)
            finally:
                if lease is not None:
                    lease.release()
        if not (tmp / "config.json").is_file() or not list(tmp.glob("*.safetensors")):
            raise ExportError("the merge wrote no model weights")
    return final


def _adapter_for(run_dir: Path, base: str, work: Path) -> Path:
    """The adapter folder, or a copy of it that names `base` when adapter_config.json names another path."""
    adapter = Path(run_dir) / "adapter"
    conf = json.loads((adapter / "adapter_config.json").read_text())
    if conf.get("base_model_name_or_path") == base:
        return adapter
    copy = work / "adapter"
    shutil.copytree(adapter, copy)
    conf["base_model_name_or_path"] = base
    (copy / "adapter_config.json").write_text(json.dumps(conf, indent=2))
    return copy


def _merge_with_unsloth(run_dir: Path, cfg: RunConfig, out: Path) -> None:
    import unsloth  # noqa: F401  (patches transformers and PEFT first)
    import torch
    from transformers import AutoTokenizer
    from unsloth import FastLanguageModel
    with tempfile.TemporaryDirectory() as work:
        adapter = _adapter_for(run_dir, base_model(run_dir, cfg), Path(work))
        model, _ = FastLanguageModel.from_pretrained(
            str(adapter), max_seq_length=cfg.model.max_seq_length,
            load_in_4bit=cfg.model.load_in_4bit and torch.cuda.is_available())  # CPU merges need 16-bit weights
        if not hasattr(model, "merge_and_unload"):
            raise AttributeError("Unsloth did not load the adapter as a PEFT model")
        tokenizer = AutoTokenizer.from_pretrained(str(Path(run_dir) / "adapter"))  # the run's chat template
        model.save_pretrained_merged(str(out), tokenizer, save_method="merged_16bit")
        del model
    import gc
    gc.collect()  # the app process lives on: give the model's memory back now
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _merge_with_peft(run_dir: Path, cfg: RunConfig, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base = AutoModelForCausalLM.from_pretrained(base_model(run_dir, cfg), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(Path(run_dir) / "adapter")).merge_and_unload()
    merged = merged.to(torch.bfloat16)  # what "merged_16bit" means in Unsloth too
    merged.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(Path(run_dir) / "adapter")).save_pretrained(str(out))


def _merged_is_current(run_dir: Path) -> bool:
    folder = merged_dir(run_dir)
    adapter = Path(run_dir) / "adapter" / "adapter_model.safetensors"
    return (folder / "config.json").is_file() and (folder / "config.json").stat().st_mtime >= adapter.stat().st_mtime


# ---------------------------------------------------------------- GGUF (llama.cpp, Ollama)
# The writer is studio/gguf_export.py; here: which folders, in which order, and the Modelfile beside them.

@dataclass
class Sampling:
    """The Chat tab's sampling settings: the Modelfile makes Ollama answer as the Chat tab does."""
    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0


def _base_config(run_dir: Path, cfg: RunConfig) -> dict | None:
    """The base model's config.json from its folder or the Hugging Face cache (never the network)."""
    base = base_model(run_dir, cfg)
    path = Path(base) / "config.json"
    if not path.is_file():
        path = _cached_file(base, "config.json")
    return json.loads(path.read_text()) if path else None


def _cached_file(repo_id: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # not a repo id
        return None
    return Path(found) if isinstance(found, str) else None


def _tokenizer_dirs(run_dir: Path, cfg: RunConfig) -> list[Path]:
    """Where a SentencePiece tokenizer.model may be (transformers 5 saves only tokenizer.json with the model):
    the base model's folder, the Hugging Face cache, or (a SentencePiece tokenizer, online) the Hub."""
    base = base_model(run_dir, cfg)
    dirs = [Path(run_dir) / "adapter"] + ([Path(base)] if Path(base).is_dir() else [])
    cached = _cached_file(base, "tokenizer.model")
    if cached is None and not Path(base).is_dir() and _is_sentencepiece(Path(run_dir) / "adapter"):
        try:
            from huggingface_hub import hf_hub_download
            cached = Path(hf_hub_download(base, "tokenizer.model"))
        except Exception:  # offline, or no such file: the writer says what is missing
            cached = None
    return dirs + ([cached.parent] if cached else [])


def _is_sentencepiece(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "tokenizer.json").read_text())["model"].get("byte_fallback"))
    except (OSError, KeyError, json.JSONDecodeError):
        return False


def gguf_dir(run_dir: Path, quant: str) -> Path:
    return Path(run_dir) / "export" / f"gguf-{quant}"


def to_gguf(run_dir: Path, quant: str = "q8_0", sampling: Sampling | None = None) -> Path:
    """export/gguf-<quant>/<run>-<quant>.gguf (base + adapter merged) and an Ollama Modelfile beside it.

    Merges first (or reuses an up-to-date export/merged/), then writes the GGUF (studio/gguf_export.py).
    """
    from studio import gguf_export  # it imports ExportError from here
    run_dir = Path(run_dir)
    cfg = load_run(run_dir)
    gguf_export.check_quant(quant)
    gguf_export.load_gguf()
    base_config = _base_config(run_dir, cfg)
    if base_config is not None:  # refuse before spending minutes on a merge
        gguf_export.plan(base_config)
    folder = gguf_dir(run_dir, quant)
    final = folder / f"{run_dir.name}-{quant}.gguf"
    with _model_jobs:
        if not _merged_is_current(run_dir):
            merge_16bit(run_dir)
        with staged(final) as tmp_gguf, staged(folder / "Modelfile") as tmp_modelfile:
            gguf_export.write_model(merged_dir(run_dir), tmp_gguf, quant, name=cfg.run_name,
                                    tokenizer_dirs=_tokenizer_dirs(run_dir, cfg))
            tmp_modelfile.write_text(ollama_modelfile(final.name, cfg.data.template, merged_dir(run_dir), sampling),
                                     encoding="utf-8")
    return final


def lora_gguf_dir(run_dir: Path, quant: str) -> Path:
    return Path(run_dir) / "export" / f"gguf-lora-{quant}"


def to_gguf_lora(run_dir: Path, quant: str = "q8_0", sampling: Sampling | None = None) -> list[Path]:
    """export/gguf-lora-<quant>/: the adapter alone as a llama.cpp LoRA GGUF, the base model as a GGUF of `quant`
    and a Modelfile that names both (FROM the base, ADAPTER the LoRA). No merged copy is made.

    The base GGUF is written once per base model and type (runs/.gguf-bases/) and linked into each run's folder.
    """
    from studio import gguf_export  # it imports ExportError from here
    run_dir = Path(run_dir)
    cfg = load_run(run_dir)
    gguf_export.check_quant(quant)
    gguf_export.load_gguf()
    base_config = _base_config(run_dir, cfg)
    if base_config is not None:  # refuse before reaching for the base model's weights
        gguf_export.plan(base_config)
    base_dir = _base_weights_dir(run_dir, cfg)
    base_config = json.loads((base_dir / "config.json").read_text())
    folder = lora_gguf_dir(run_dir, quant)
    adapter = folder / f"{run_dir.name}-lora-f16.gguf"
    base = folder / f"{_slug(cfg.model.name)}-{quant}.gguf"
    with _model_jobs:
        with staged(adapter) as tmp_adapter, staged(folder / "Modelfile") as tmp_modelfile:
            gguf_export.write_lora(Path(run_dir) / "adapter", base_config, tmp_adapter, name=f"{cfg.run_name} LoRA")
            _link_base_gguf(base_dir, base, quant)
            tmp_modelfile.write_text(ollama_modelfile(base.name, cfg.data.template, Path(run_dir) / "adapter",
                                                      sampling, adapter=adapter.name), encoding="utf-8")
    return [adapter, base, folder / "Modelfile"]


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", Path(name).name).strip("._") or "base"


def _base_weights_dir(run_dir: Path, cfg: RunConfig) -> Path:
    """The base model's 16-bit weights: its folder, or (a Hub id) the 16-bit repo Unsloth's own 16-bit merge
    uses, from the Hugging Face cache or downloaded."""
    from studio import gguf_export  # it imports ExportError from here
    base = base_model(run_dir, cfg)
    if Path(base).is_dir():
        folder = Path(base)
    else:
        try:
            from unsloth.models.loader_utils import get_model_name  # the 4-bit repo -> its 16-bit original
            name = get_model_name(base, load_in_4bit=False) or base
        except Exception:
            name = base
        try:
            from huggingface_hub import snapshot_download
            folder = Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "tokenizer.model"]))
        except Exception as exc:
            raise gguf_export.refusal("err_gguf_base", base=base,
                                      detail=(str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]) from None
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config.get("quantization_config") or not list(folder.glob("*.safetensors")):
        raise gguf_export.refusal("err_gguf_base", base=base, detail="its folder holds no 16-bit safetensors weights")
    return folder


def _link_base_gguf(base_dir: Path, final: Path, quant: str) -> None:
    """final: the base model's GGUF, written once into runs/.gguf-bases/ and hard-linked here (a copy where the
    file system can't link)."""
    from studio import gguf_export  # it imports ExportError from here
    from studio import runs
    shared = runs.runs_root() / ".gguf-bases" / final.name
    newest = max(p.stat().st_mtime for p in base_dir.glob("*.safetensors"))
    if not shared.is_file() or shared.stat().st_mtime < newest:
        with staged(shared) as tmp:
            gguf_export.write_model(base_dir, tmp, quant, name=base_dir.name, tokenizer_dirs=[base_dir])
    if final.is_file() and os.path.samefile(final, shared):
        return
    with staged(final) as tmp:
        tmp.unlink()
        try:
            os.link(shared, tmp)
        except OSError:
            shutil.copyfile(shared, tmp)


# ---------------------------------------------------------------- Ollama Modelfile

# Go text/template, as Ollama's own templates for these families. System messages reach a template as
# .System; every newline below is literal (no {{- -}} trimming next to the turn markers).
CHATML_OLLAMA = (
    '{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ if $last }}<|im_start|>assistant\n{{ end }}'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}'
    '{{ if not $last }}<|im_end|>\n{{ end }}'
    '{{ end }}{{ end }}')
LLAMA3_OLLAMA = (
    '{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}'
    '{{ if or (not $last) (ne .Role "assistant") }}<|eot_id|>{{ end }}'
    '{{ if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}'
    '{{ end }}')
GEMMA3_OLLAMA = (
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "user" }}<start_of_turn>user\n{{ if and (eq $i 0) $.System }}{{ $.System }}\n\n{{ end }}'
    '{{ .Content }}<end_of_turn>\n{{ if $last }}<start_of_turn>model\n{{ end }}'
    '{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}'
    '{{ if not $last }}<end_of_turn>\n{{ end }}'
    '{{ end }}{{ end }}')
PHI4_OLLAMA = (
    '{{ if .System }}<|im_start|>system<|im_sep|>{{ .System }}<|im_end|>{{ end }}'
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "user" }}<|im_start|>user<|im_sep|>{{ .Content }}<|im_end|>'
    '{{ if $last }}<|im_start|>assistant<|im_sep|>{{ end }}'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant<|im_sep|>{{ .Content }}'
    '{{ if not $last }}<|im_end|>{{ end }}'
    '{{ end }}{{ end }}')
PHI3_OLLAMA = (
    '{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}'
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "user" }}<|user|>\n{{ .Content }}<|end|>\n{{ if $last }}<|assistant|>\n{{ end }}'
    '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}{{ if not $last }}<|end|>\n{{ end }}'
    '{{ end }}{{ end }}')
MISTRAL_OLLAMA = (  # the system prompt opens the first [INST], as Unsloth's 'mistral' template puts it
    '{{ $first := true }}{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "user" }}[INST] {{ if and $first $.System }}{{ $.System }} {{ end }}{{ $first = false }}'
    '{{ .Content }} [/INST]'
    '{{ else if eq .Role "assistant" }}{{ .Content }}{{ if not $last }}</s>{{ end }}'
    '{{ end }}{{ end }}')
# chat template -> (Ollama TEMPLATE, stop strings)
OLLAMA_TEMPLATES = {
    "qwen-3": (CHATML_OLLAMA, ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]),
    "qwen-2.5": (CHATML_OLLAMA, ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]),
    "chatml": (CHATML_OLLAMA, ["<|im_end|>", "<|im_start|>"]),
    "llama-3.1": (LLAMA3_OLLAMA, ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]),
    "gemma-3": (GEMMA3_OLLAMA, ["<end_of_turn>"]),
    "phi-4": (PHI4_OLLAMA, ["<|im_end|>", "<|im_start|>"]),
    "phi-3": (PHI3_OLLAMA, ["<|end|>", "<|user|>", "<|assistant|>"]),
    "mistral": (MISTRAL_OLLAMA, ["</s>", "[INST]"]),
}


def ollama_modelfile(gguf_name: str, template: str, model_dir: Path | None = None, sampling: Sampling | None = None,
                     adapter: str | None = None) -> str:
    """An Ollama Modelfile for the GGUF beside it (`ollama create NAME -f Modelfile`): the run's chat template,
    its stop strings and the Chat tab's sampling; with `adapter`, FROM names the base GGUF and ADAPTER the LoRA."""
    from studio.chat import TOP_P
    sampling = sampling or Sampling()
    lines = ["# Made by LoRA Studio. Import with:  ollama create my-model -f Modelfile", f"FROM ./{gguf_name}"]
    if adapter:
        lines += [f"ADAPTER ./{adapter}",
                  f"# llama.cpp without Ollama:  llama-cli -m {gguf_name} --lora {adapter}"]
    lines.append("")
    if template in OLLAMA_TEMPLATES:
        body, stops = OLLAMA_TEMPLATES[template]
        eos = _eos_token(model_dir) if model_dir else None
        stops = list(dict.fromkeys(stops + ([eos] if eos else [])))
        lines.append(f'TEMPLATE """{body}"""')
        lines += [f'PARAMETER stop "{s}"' for s in stops]
    else:  # Ollama falls back to the chat template stored in the GGUF's metadata
        lines.append(f"# No Ollama TEMPLATE is written for the '{template}' chat template: Ollama reads the one "
                     "stored in the GGUF (tokenizer.chat_template).")
    temperature = max(0.0, float(sampling.temperature or 0.0))
    lines += ["", "# The Chat tab's sampling: greedy at temperature 0, else nucleus sampling (top_p "
              f"{TOP_P}); no top-k, min-p or repeat penalty, as the studio's chat applies none",
              f"PARAMETER temperature {temperature:g}", f"PARAMETER top_p {TOP_P if temperature > 0 else 1.0:g}",
              "PARAMETER top_k 0", "PARAMETER min_p 0", "PARAMETER repeat_penalty 1",
              f"PARAMETER num_predict {int(sampling.max_new_tokens)}", f"PARAMETER seed {int(sampling.seed or 0)}"]
    return "\n".join(lines) + "\n"


def _eos_token(model_dir: Path) -> str | None:
    try:
        return json.loads((Path(model_dir) / "tokenizer_config.json").read_text()).get("eos_token") or None
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------- Hugging Face Hub

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def push_to_hub(run_dir: Path, repo_id: str, token: str, what: str = "adapter", private: bool = True) -> str:
    """Upload the adapter (or the merged model) to a Hub model repo, in one commit; returns the repo URL.

    The token goes to the Hub client for these two requests only: it is never stored on disk
    (no login, no git credential) and is masked out of any error message.
    """
    run_dir = Path(run_dir)
    repo_id = (repo_id or "").strip()
    if what not in HUB_WHAT:
        raise ExportError(f"unknown upload '{what}'; choose one of {', '.join(HUB_WHAT)}")
    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise ExportError(f"'{repo_id}' is not a Hub repo id (expected owner/name, e.g. alice/my-lora)")
    if not (token or "").strip():
        raise ExportError("a Hugging Face token with write access is needed to upload")
    token = token.strip()
    load_run(run_dir)
    if what == "merged":
        with _model_jobs:
            if not _merged_is_current(run_dir):
                merge_16bit(run_dir)
    folder = Path(run_dir) / "adapter" if what == "adapter" else merged_dir(run_dir)
    # PEFT's README names the base by its local path, which the Hub refuses as metadata: write our own card.
    files = [p for p in sorted(folder.rglob("*"))
             if p.is_file() and not p.name.startswith(".") and p.relative_to(folder).as_posix() != "README.md"]
    from huggingface_hub import CommitOperationAdd, HfApi
    ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p)) for p in files]
    ops.append(CommitOperationAdd(path_in_repo="lora_studio_config.yaml",
                                  path_or_fileobj=str(Path(run_dir) / "config.yaml")))
    ops.append(CommitOperationAdd(path_in_repo="README.md",
                                  path_or_fileobj=model_card(run_dir, what).encode("utf-8")))
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=bool(private), repo_type="model", exist_ok=True)
        api.create_commit(repo_id, operations=ops, repo_type="model",
                          commit_message=f"LoRA Studio: {what} of run {run_dir.name}")
    except Exception as exc:  # offline, bad token, no rights: the person's to fix, said plainly
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(token, "***")
        raise ExportError(f"could not upload to {repo_id}: {text[:300]}") from None
    return str(url)


def model_card(run_dir: Path, what: str) -> str:
    """README.md for the Hub: what this is, how to load it, the run's settings, then the run's report."""
    cfg = RunConfig.load(Path(run_dir) / "config.yaml")
    from studio import access
    hub_base = access.model_folder(cfg.model.name) is None  # a Hub id, not a folder on this machine
    meta = ["---"] + ([f"base_model: {cfg.model.name}"] if hub_base else []) + [
        f"library_name: {'peft' if what == 'adapter' else 'transformers'}",
        "tags:", "- lora", "- sft", "- unsloth", "- trl", "- lora-studio", "---", ""]
    if what == "adapter":
        usage = ("```python\nfrom unsloth import FastLanguageModel\n"
                 "model, tokenizer = FastLanguageModel.from_pretrained(\"REPO_ID\")  # finds the base model\n```")
    else:
        usage = ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
                 "model = AutoModelForCausalLM.from_pretrained(\"REPO_ID\")\n"
                 "tokenizer = AutoTokenizer.from_pretrained(\"REPO_ID\")  # carries the chat template\n```")
    kind = "LoRA adapter" if what == "adapter" else "model merged with its LoRA adapter (16-bit)"
    body = [f"# {cfg.run_name}", "",
            f"A {kind}, fine-tuned with LoRA Studio (Unsloth + TRL SFTTrainer).", "",
            f"- base model: `{cfg.model.name}`", f"- chat template: `{cfg.data.template}`",
            f"- dataset: `{cfg.data.path}` ({cfg.data.source})",
            f"- LoRA r={cfg.lora.r}, alpha={cfg.lora.lora_alpha}, modules: {', '.join(cfg.lora.target_modules)}",
            f"- {cfg.train.max_steps} steps, learning rate {cfg.train.learning_rate}, "
            f"batch {cfg.train.per_device_train_batch_size} x {cfg.train.gradient_accumulation_steps}", "",
            "The full settings are in `lora_studio_config.yaml`.", "", usage, ""]
    from studio import report  # the run's report (eval loss vs the base model, answers, data checks, time)
    return "\n".join(meta + body) + "\n" + report.build(run_dir, level=2)


# ---------------------------------------------------------------- the run as one Python script

def python_script(run_dir: Path) -> str:
    """export/train_<run>.py: the run's training as one readable file (no studio import). Returns its text."""
    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
    if cfg is None:
        raise ExportError(f"{run_dir.name}: not a run folder (no config.yaml)")
    text = render_script(cfg, run_dir)
    final = export_dir(run_dir) / script_name(run_dir)
    with staged(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text


def script_name(run_dir: Path) -> str:
    return f"train_{re.sub(r'[^0-9A-Za-z_]', '_', Path(run_dir).name)}.py"


def _data_facts(cfg: RunConfig) -> tuple[str, str | None, str]:
    """(format, conversation column, file extension or 'hub') of the run's dataset, as studio.data sees it."""
    from studio import data as data_mod
    d = cfg.data
    source_path = str(resolve_path(data_mod.BUNDLED_DATA)) if d.source == "bundled" else d.path
    try:
        if d.source == "hub":
            ds = data_mod.load_hub(d.path, d.split)
            return ds.format, ds.conversation_column, "hub"
        ds = data_mod.load_file(Path(source_path))
        return ds.format, ds.conversation_column, Path(source_path).suffix.lower()
    except data_mod.DataError as exc:
        raise ExportError(MESSAGES["err_export_data"][0].format(detail=exc), cause=exc) from None


def dropped_rows(cfg: RunConfig, run_dir: Path) -> list[int]:
    """The rows the run left out (its data checks, and rows with no trained token), as it recorded them."""
    from studio.checks import DROPPED_ROWS_FILE
    path = Path(run_dir) / DROPPED_ROWS_FILE
    if not path.is_file():  # a run from before the checks, or one that stopped before it read its data
        if cfg.data.drop:
            raise ExportError(MESSAGES["err_export_no_drops"][0], key="err_export_no_drops")
        return []
    return sorted({i for rows in json.loads(path.read_text()).values() for i in rows})


def _int_set(values: list[int]) -> str:
    """A set literal of ints, wrapped."""
    if not values:
        return "set()"
    import textwrap
    return "{\n" + textwrap.fill(", ".join(map(str, values)), 110, initial_indent="    ",
                                 subsequent_indent="    ") + "\n}"


def script_values(cfg: RunConfig, run_dir: Path) -> dict:
    """The run's settings as the script states them (Python literals), for the _SCRIPT_* texts' fields."""
    d, m, lo, t = cfg.data, cfg.model, cfg.lora, cfg.train
    if d.source == "bundled":
        from studio.config import BUNDLED_DATA
        data_location = BUNDLED_DATA
    else:
        data_location = d.path
    gc = {"true": True, "false": False}.get(lo.use_gradient_checkpointing, lo.use_gradient_checkpointing)
    return dict(
        run=Path(run_dir).name, script=script_name(run_dir), run_name=cfg.run_name, model_name=repr(m.name),
        max_seq_length=m.max_seq_length, dtype="None" if m.dtype == "auto" else f"torch.{m.dtype}",
        load_in_4bit=m.load_in_4bit, r=lo.r, lora_alpha=lo.lora_alpha, lora_dropout=lo.lora_dropout,
        target_modules=repr(list(lo.target_modules)), bias=repr(lo.bias), gc=repr(gc),
        random_state=lo.random_state, data_location=repr(data_location), split=repr(d.split),
        max_rows=d.max_rows, template=repr(d.template), max_length=t.max_length, packing=t.packing,
        batch=t.per_device_train_batch_size, accum=t.gradient_accumulation_steps, warmup=t.warmup_steps,
        max_steps=t.max_steps, epochs=t.num_train_epochs, lr=repr(t.learning_rate), logging_steps=t.logging_steps,
        optim=repr(t.optim), weight_decay=t.weight_decay, scheduler=repr(t.lr_scheduler_type), seed=t.seed,
        save_steps=t.save_steps, save_total_limit=t.save_total_limit, checks=", ".join(d.drop) or "none",
        dropped_rows=_int_set(dropped_rows(cfg, run_dir)))


def render_script(cfg: RunConfig, run_dir: Path) -> str:
    if cfg.train.stage != "sft":  # DPO / ORPO: TRL's preference trainers on the run's pairs
        from studio import preference_script
        return preference_script.render(cfg, run_dir)
    fmt, column, ext = _data_facts(cfg)
    d = cfg.data
    if d.template in templates.MARKERS:
        instruction_part, response_part = templates.MARKERS[d.template]
    else:  # Unsloth's auto-detection, done here once so the script states the markers it trains with
        from transformers import AutoTokenizer
        instruction_part, response_part = templates.markers(
            AutoTokenizer.from_pretrained(str(Path(run_dir) / "adapter")), d.template)
    values = dict(script_values(cfg, run_dir), responses_only=d.train_on_responses_only,
                  instruction_part=repr(instruction_part), response_part=repr(response_part))
    parts = [(_SCRIPT_HEAD + SCRIPT_SETTINGS + _SCRIPT_SFT_SETTINGS + SCRIPT_TRAIN_SETTINGS).format(**values)]
    parts.append(_SCRIPT_MODEL)
    parts.append(_loader_code(ext, fmt, column))
    parts.append(_standardize_code(fmt, column))
    parts.append(SCRIPT_ROWS + _SCRIPT_TRAIN)
    return "\n".join(parts)


_SCRIPT_HEAD = '''\
"""LoRA fine-tuning of run '{run}' ({run_name}), reproduced outside LoRA Studio.

One file, today's APIs: Unsloth (FastLanguageModel, get_peft_model, get_chat_template,
train_on_responses_only) and TRL's SFTTrainer. Every setting is inline below.

Run it from the LoRA Studio folder (relative paths such as assets/... are relative to it):
    python {script}
The adapter is saved to lora_model/ (change OUTPUT_DIR / ADAPTER_DIR below).
"""
# Unsloth patches transformers, TRL and PEFT when imported: it must come first.
import unsloth  # noqa: F401
from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, train_on_responses_only

import json
import os
import random

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer
'''

SCRIPT_SETTINGS = '''
# ---- Settings (from the run's config.yaml)
MODEL_NAME = {model_name}  # Hub id or local folder
MAX_SEQ_LENGTH = {max_seq_length}
DTYPE = {dtype}  # None = auto (bf16/fp16 on GPU)
LOAD_IN_4BIT = {load_in_4bit}  # 4-bit needs a GPU; on CPU the model loads in 16 bits

LORA_R = {r}
LORA_ALPHA = {lora_alpha}
LORA_DROPOUT = {lora_dropout}
TARGET_MODULES = {target_modules}
LORA_BIAS = {bias}
GRADIENT_CHECKPOINTING = {gc}
LORA_RANDOM_STATE = {random_state}

DATA = {data_location}
SPLIT = {split}
MAX_ROWS = {max_rows}  # 0 = all rows
CHAT_TEMPLATE = {template}
# The rows the run left out (0-based): those its data checks found (config.yaml data.drop: {checks}) and those with
# no trained token left after the cut, as the run recorded them (dropped_rows.json).
DROPPED_ROWS = {dropped_rows}
'''

_SCRIPT_SFT_SETTINGS = '''\
TRAIN_ON_RESPONSES_ONLY = {responses_only}
INSTRUCTION_PART = {instruction_part}
RESPONSE_PART = {response_part}
PACKING = {packing}
'''

SCRIPT_TRAIN_SETTINGS = '''
MAX_LENGTH = {max_length}
BATCH_SIZE = {batch}
GRADIENT_ACCUMULATION_STEPS = {accum}
WARMUP_STEPS = {warmup}
MAX_STEPS = {max_steps}  # > 0 wins over NUM_TRAIN_EPOCHS
NUM_TRAIN_EPOCHS = {epochs}
LEARNING_RATE = {lr}
LOGGING_STEPS = {logging_steps}
OPTIM = {optim}
WEIGHT_DECAY = {weight_decay}
LR_SCHEDULER = {scheduler}
SEED = {seed}
SAVE_STEPS = {save_steps}  # 0 = no checkpoints, only the final adapter
SAVE_TOTAL_LIMIT = {save_total_limit}

OUTPUT_DIR = os.environ.get("OUTPUT_DIR", "outputs")
ADAPTER_DIR = os.environ.get("ADAPTER_DIR", "lora_model")
on_gpu = torch.cuda.is_available()
'''

_SCRIPT_MODEL = '''\
# ---- 1. Model, then LoRA adapters on the chosen modules
model, tokenizer = FastLanguageModel.from_pretrained(
    MODEL_NAME, max_seq_length=MAX_SEQ_LENGTH, dtype=DTYPE, load_in_4bit=LOAD_IN_4BIT and on_gpu)
model = FastLanguageModel.get_peft_model(
    model, r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT, target_modules=TARGET_MODULES,
    bias=LORA_BIAS, use_gradient_checkpointing=GRADIENT_CHECKPOINTING, random_state=LORA_RANDOM_STATE)
tokenizer = get_chat_template(tokenizer, chat_template=CHAT_TEMPLATE)

# ---- 2. Data: load, pick rows, standardize to role/content, render with the chat template
'''

_LOADERS = {
    ".jsonl": '''\
def load_rows():
    with open(DATA, encoding="utf-8-sig") as f:
        return [json.loads(line) for line in f if line.strip()]
''',
    ".json": '''\
def load_rows():
    with open(DATA, encoding="utf-8-sig") as f:
        data = json.load(f)
    if isinstance(data, dict):  # {"train": [...]}: the one list inside
        data = next(v for v in data.values() if isinstance(v, list))
    return data
''',
    ".parquet": '''\
def load_rows():
    import pyarrow.parquet as pq
    return pq.read_table(DATA).to_pylist()
''',
    "hub": '''\
def load_rows():
    from datasets import load_dataset
    return load_dataset(DATA, split=SPLIT)
''',
}


def _loader_code(ext: str, fmt: str, column: str | None) -> str:
    if ext in _LOADERS:
        return _LOADERS[ext]
    if ext == ".csv":
        json_cells = f'''
        if isinstance(row.get({column!r}), str) and row[{column!r}].strip().startswith("["):
            row[{column!r}] = json.loads(row[{column!r}])  # a JSON list inside a CSV cell''' if column else ""
        return f'''\
def load_rows():
    import csv
    rows = []
    with open(DATA, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            row = {{k.strip(): v for k, v in row.items()}}
            if not any((v or "").strip() for v in row.values()):
                continue{json_cells}
            rows.append(row)
    return rows
'''
    raise ExportError(f"the script can't read '{ext}' files")


def _standardize_code(fmt: str, column: str | None) -> str:
    from studio.data import PAIR_FORMATS
    if fmt in PAIR_FORMATS:  # SFT on preference pairs: on the prompt and the chosen answer
        from studio.preference_script import pairs_code
        return pairs_code(column) + '''

def standardize(row):
    """A preference row -> the prompt and the chosen answer, one conversation."""
    row = pair(row)
    return row["prompt"] + row["chosen"]
'''
    if fmt == "alpaca":
        return '''
def standardize(row):
    """Alpaca (instruction, input, output, optional system) -> role/content messages."""
    messages = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append({"role": "system", "content": row["system"]})
    extra = row.get("input") or ""
    user = f"{row['instruction']}\\n\\n{extra}" if extra.strip() else row["instruction"]
    messages.append({"role": "user", "content": user})
    messages.append({"role": "assistant", "content": row["output"]})
    return messages
'''
    from studio.data import ROLE_ALIASES
    role_key, content_key = ("from", "value") if fmt == "sharegpt" else ("role", "content")
    label = "ShareGPT (from/value)" if fmt == "sharegpt" else "OpenAI (role/content)"
    return f'''
ROLES = {ROLE_ALIASES!r}


def standardize(row):
    """{label} messages in column '{column}' -> role/content with roles system/user/assistant."""
    return [{{"role": ROLES[str(turn[{role_key!r}]).strip().lower()], "content": turn[{content_key!r}]}}
            for turn in row[{column!r}]]
'''


# The trainer's settings every stage's script passes to its TRL config (SFTConfig, DPOConfig, ORPOConfig)
SCRIPT_TRAINER_ARGS = '''\
        max_length=MAX_LENGTH,
        per_device_train_batch_size=BATCH_SIZE,
        gradient_accumulation_steps=GRADIENT_ACCUMULATION_STEPS,
        warmup_steps=WARMUP_STEPS,
        max_steps=MAX_STEPS if MAX_STEPS > 0 else -1,
        num_train_epochs=NUM_TRAIN_EPOCHS,
        learning_rate=LEARNING_RATE,
        logging_steps=LOGGING_STEPS,
        # bitsandbytes' 8-bit optimizers need a GPU
        optim="adamw_torch" if not on_gpu and "8bit" in OPTIM else OPTIM,
        weight_decay=WEIGHT_DECAY,
        lr_scheduler_type=LR_SCHEDULER,
        seed=SEED,
        data_seed=SEED,
        save_strategy="steps" if SAVE_STEPS > 0 else "no",
        save_steps=SAVE_STEPS if SAVE_STEPS > 0 else 500,
        save_total_limit=SAVE_TOTAL_LIMIT,
        report_to="none",
        gradient_checkpointing=bool(GRADIENT_CHECKPOINTING),  # TRL's default is on; the LoRA setting above decides
'''

SCRIPT_ROWS = '''
def training_rows(n):
    """The studio's row rule: a run that stops after MAX_STEPS sees at most this many rows, picked at random
    (seeded); less the rows the run left out."""
    indices = list(range(n))
    k = MAX_STEPS * BATCH_SIZE * GRADIENT_ACCUMULATION_STEPS
    if MAX_STEPS > 0 and n > k:
        indices = sorted(random.Random(SEED).sample(range(n), k))
    return [i for i in indices if i not in DROPPED_ROWS]
'''

_SCRIPT_TRAIN = '''

rows = load_rows()
n = min(len(rows), MAX_ROWS) if MAX_ROWS else len(rows)
indices = training_rows(n)
texts = [tokenizer.apply_chat_template(standardize(rows[i]), tokenize=False, add_generation_prompt=False)
         for i in indices]
dataset = Dataset.from_dict({"text": texts})
print(f"{len(texts)} training rows (of {n})")
if os.environ.get("PREPARE_ONLY"):  # check the model and data without training
    raise SystemExit(0)

# ---- 3. Trainer (loss on the responses only)
trainer = SFTTrainer(
    model=model,
    processing_class=tokenizer,
    train_dataset=dataset,
    args=SFTConfig(
        output_dir=OUTPUT_DIR,
        dataset_text_field="text",
        packing=PACKING,
        dataset_num_proc=1,
''' + SCRIPT_TRAINER_ARGS + '''\
    ),
)
if TRAIN_ON_RESPONSES_ONLY:
    trainer = train_on_responses_only(trainer, instruction_part=INSTRUCTION_PART, response_part=RESPONSE_PART)
stats = trainer.train()
print(stats)

# ---- 4. Save the adapter and the tokenizer with its chat template
model.save_pretrained(ADAPTER_DIR)
tokenizer.save_pretrained(ADAPTER_DIR)
if os.environ.get("LOG_HISTORY_JSON"):  # the per-step losses, for comparing runs
    with open(os.environ["LOG_HISTORY_JSON"], "w") as f:
        json.dump(trainer.state.log_history, f)
'''
