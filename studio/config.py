"""One run's whole configuration: a tree of dataclasses that round-trips through YAML.

`config.yaml` in a run folder is the single source of truth for the worker
(`python -m studio.train RUN_DIR`): the UI writes it, the worker reads it, and a person can
edit it and rerun by hand. Secrets (the Hub token) never live here.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from studio.distributed import DistributedConfig  # no torch import: safe here

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = "assets/tiny-qwen3"
BUNDLED_DATA = "assets/sample_data/sample_chat.jsonl"
BUNDLED_PAIRS = "assets/sample_data/sample_pairs.jsonl"  # preference pairs (the DPO/ORPO stage), a "file" source
STAGES = ["sft", "dpo", "orpo"]  # supervised fine-tuning, then preference tuning (studio/preference.py)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DTYPES = ["auto", "bfloat16", "float16", "float32"]
GRADIENT_CHECKPOINTING = ["unsloth", "true", "false"]
OPTIMIZERS = ["adamw_8bit", "adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "sgd", "adafactor"]
SCHEDULERS = ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts"]
BIASES = ["none", "all", "lora_only"]
REPORT_TO = ["none", "tensorboard", "trackio", "wandb"]
SAMPLE_PROMPTS = ["Continue the fibonacci sequence: 1, 1, 2, 3, 5, 8,",  # the chapter's two prompts
                  "What is France's tallest tower called?"]


@dataclass
class ModelConfig:
    name: str = BUNDLED_MODEL  # Hub id, local folder, or the bundled tiny model
    max_seq_length: int = 512
    dtype: str = "auto"  # "auto" lets Unsloth pick bf16/fp16 on GPU, fp32 on CPU
    load_in_4bit: bool = False
    adapter_from: str = ""  # a run id: start from that run's adapter (its owner's own run) instead of a new LoRA


@dataclass
class LoraConfig:
    r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    bias: str = "none"
    use_gradient_checkpointing: str = "false"
    random_state: int = 3407


@dataclass
class DataConfig:
    source: str = "bundled"  # bundled | hub | file
    path: str = BUNDLED_DATA  # Hub id for "hub", a file path otherwise
    split: str = "train"
    max_rows: int = 0  # 0 = all rows
    template: str = "qwen-3"
    train_on_responses_only: bool = True
    eval_size: float = 0.0  # held out for evaluation (seeded): 0 = none, below 1 a fraction, else a row count
    eval_path: str = ""     # or a second file (source "file") / Hub split name (source "hub") to evaluate on
    drop: list[str] = field(default_factory=list)  # data checks whose rows this run leaves out (studio/checks.py)


@dataclass
class TrainConfig:
    max_length: int = 512
    packing: bool = False
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 5
    max_steps: int = 150  # > 0 wins over num_train_epochs, as in transformers
    num_train_epochs: float = 1.0
    learning_rate: float = 5e-3  # the tiny bundled model; billion-parameter models want 2e-4
    logging_steps: int = 1
    optim: str = "adamw_torch"
    weight_decay: float = 0.01
    lr_scheduler_type: str = "linear"
    seed: int = 3407
    save_steps: int = 0  # checkpoint every N steps; 0 = only at the end or on Stop
    save_total_limit: int = 2
    eval_steps: int = 0               # evaluate every N steps (0 = ten times a run) when there is an eval set
    early_stopping_patience: int = 0  # stop after N evaluations without a better eval loss (0 = never)
    sample_prompts: list[str] = field(default_factory=lambda: list(SAMPLE_PROMPTS))  # answered at each eval
    report_to: str = "none"           # also log to: none | tensorboard | trackio | wandb (where installed)
    stage: str = "sft"                # sft (conversations) | dpo | orpo (chosen/rejected pairs: TRL's trainers)
    beta: float = 0.1                 # DPO's beta (how far from the reference it may move); ORPO's lambda


@dataclass
class RunConfig:
    run_name: str = "tiny-qwen3-sample"
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)  # GPUs, nodes (torchrun)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        if not isinstance(data, dict):
            raise ConfigError([Problem("config", "err_config_shape")])
        sections = {"model": ModelConfig, "lora": LoraConfig, "data": DataConfig, "train": TrainConfig,
                    "distributed": DistributedConfig}
        kwargs, problems = {}, []
        for key, value in data.items():
            if key in sections:
                if value is not None and not isinstance(value, dict):
                    problems.append(Problem(key, "err_config_shape"))
                    continue
                section, found = _section(sections[key], value or {}, key)
                kwargs[key] = section
                problems += found
            elif key == "run_name":
                try:
                    kwargs[key] = _coerce(value, "", key)
                except ValueError as exc:
                    problems.append(_problem(key, "", value, exc))
            else:
                problems.append(Problem(key, "err_unknown_key", {"key": key}))
        if problems:
            raise ConfigError(problems)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, text: str) -> "RunConfig":
        try:
            tree = yaml.safe_load(text or "")
        except yaml.YAMLError as exc:
            raise ConfigError([Problem("config", "err_yaml", {"detail": str(exc).splitlines()[0][:200]})]) from None
        return cls.from_dict(tree or {})

    def to_flat(self, keys: list[str]) -> list:
        """The values of dotted keys ("train.learning_rate"), in order: what a form shows."""
        tree = self.to_dict()
        out = []
        for key in keys:
            node = tree
            for part in key.split("."):
                node = node[part]
            out.append(node)
        return out

    @classmethod
    def from_flat(cls, keys: list[str], values: list) -> "RunConfig":
        """A config from a form's dotted keys and values (the rest at its defaults)."""
        tree: dict = {}
        empty = [Problem(k, "err_empty", {"field": k.split(".")[-1]}) for k, v in zip(keys, values) if v is None]
        if empty:
            raise ConfigError(empty)
        for key, value in zip(keys, values):
            section, _, name = key.rpartition(".")
            (tree.setdefault(section, {}) if section else tree)[name] = value
        return cls.from_dict(tree)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "RunConfig":
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the field, a message code (studio/ui/i18n.py) and its parameters."""
    field: str
    code: str
    params: dict = field(default_factory=dict)

    def english(self) -> str:
        return f"{self.field}: {self.code}" + (f" {self.params}" if self.params else "")


class ConfigError(ValueError):
    """The config cannot be used; `problems` say why, as codes the UI translates."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(p.english() for p in problems))


def _section(kind, values: dict, where: str):
    """The one parser of every section: each field through `_coerce`, every problem collected."""
    known = {f.name: f for f in fields(kind)}
    out, problems = {}, []
    for key, value in values.items():
        if key not in known:
            problems.append(Problem(f"{where}.{key}", "err_unknown_key", {"key": f"{where}.{key}"}))
            continue
        default = getattr(kind(), key)
        try:
            out[key] = _coerce(value, default, f"{where}.{key}")
        except ValueError as exc:
            problems.append(_problem(f"{where}.{key}", default, value, exc))
    return kind(**out), problems


def _problem(key: str, default, value, exc: ValueError) -> Problem:
    if value is None:
        return Problem(key, "err_null", {"key": key})
    return Problem(key, "err_type", {"key": key, "expected": type(default).__name__, "got": repr(value)[:60]})


_TYPE_NAMES = {bool: "true/false", int: "whole number", float: "number", str: "text", list: "list"}  # (English)
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on"), ("false", "no", "off")


def _coerce(value, default, where):
    """What YAML (or a form) hands back, brought to the field's type, or ValueError: nothing is guessed.

    A value of the wrong kind is refused ("ture" is not a boolean, 2.5 is not a whole number, YAML's null is
    not the text "None"). What is taken: numbers written as text ("2e-4": YAML 1.1 reads it as a string),
    true/false/yes/no/on/off for booleans, a number where text is expected (a split named 2023), and a list
    as one item per line of text (a text box)."""
    if value is None:
        raise ValueError(f"config: '{where}' is empty (null)")
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is list:
        if isinstance(value, str):  # one item per line, as a text box holds them
            return [line.strip() for line in value.splitlines() if line.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                    for v in value):
            return [str(v) for v in value]
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ValueError(f"config: '{where}' must be a {_TYPE_NAMES.get(kind, kind.__name__)}, got {value!r}")


def resolve_path(path: str) -> Path:
    """Relative paths (the bundled assets) are relative to the repo, not to the caller's cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def validate(cfg: RunConfig, context_length: int | None = None, visible_gpus: int | None = None) -> list[Problem]:
    """The one validator: every check done before anything starts. Empty = ok.

    Problems carry message codes that studio/ui/i18n.py says in English or Korean.
    """
    errors: list[Problem] = []
    t, lo, m = cfg.train, cfg.lora, cfg.model

    def bad(name, key):
        errors.append(Problem(name, key))

    if not (t.learning_rate > 0 and math.isfinite(t.learning_rate)):
        bad("learning_rate", "err_lr")
    if t.learning_rate > 1:
        bad("learning_rate", "err_lr_big")
    if lo.r <= 0:
        bad("r", "err_r")
    if lo.lora_alpha <= 0:
        bad("lora_alpha", "err_alpha")
    if not 0 <= lo.lora_dropout < 1:
        bad("lora_dropout", "err_dropout")
    if not lo.target_modules:
        bad("target_modules", "err_targets")
    if lo.bias not in BIASES:
        bad("bias", "err_choice")
    if lo.use_gradient_checkpointing not in GRADIENT_CHECKPOINTING:
        bad("use_gradient_checkpointing", "err_choice")
    if t.per_device_train_batch_size <= 0:
        bad("per_device_train_batch_size", "err_batch")
    if t.gradient_accumulation_steps <= 0:
        bad("gradient_accumulation_steps", "err_accum")
    if t.max_steps <= 0 and t.num_train_epochs <= 0:
        bad("max_steps", "err_steps")
    if t.max_steps < 0:
        bad("max_steps", "err_steps")
    if t.warmup_steps < 0:
        bad("warmup_steps", "err_warmup")
    if t.logging_steps <= 0:
        bad("logging_steps", "err_logging")
    if t.weight_decay < 0:
        bad("weight_decay", "err_wd")
    if t.save_steps < 0 or t.save_total_limit < 1:
        bad("save_steps", "err_save")
    if t.max_length <= 0 or m.max_seq_length <= 0:
        bad("max_length", "err_max_length")
    if t.max_length > m.max_seq_length:
        bad("max_length", "err_max_length_model")
    if context_length and m.max_seq_length > context_length:
        bad("max_seq_length", "err_context")
    if t.optim not in OPTIMIZERS:
        bad("optim", "err_choice")
    if t.lr_scheduler_type not in SCHEDULERS:
        bad("lr_scheduler_type", "err_choice")
    if m.dtype not in DTYPES:
        bad("dtype", "err_choice")
    if not m.name.strip():
        bad("model", "err_model")
    if cfg.data.max_rows < 0:
        bad("max_rows", "err_rows")
    if cfg.data.eval_size < 0 or (0 < cfg.data.eval_size < 1 and cfg.data.eval_size > 0.5):
        bad("eval_size", "err_eval_size")
    if t.eval_steps < 0 or t.early_stopping_patience < 0:
        bad("eval_steps", "err_eval_steps")
    if t.early_stopping_patience and not (cfg.data.eval_size or cfg.data.eval_path):
        bad("early_stopping_patience", "err_patience_no_eval")
    if t.report_to not in REPORT_TO:
        bad("report_to", "err_choice")
    from studio import distributed
    for name, code in distributed.validate(cfg.distributed, visible_gpus):
        bad(f"distributed.{name}", code)
    if t.stage not in STAGES:
        bad("stage", "err_choice")
    if not (t.beta > 0 and math.isfinite(t.beta)):
        bad("beta", "err_beta")
    if m.adapter_from and t.stage == "sft":
        bad("adapter_from", "err_adapter_from_sft")
    if t.stage != "sft":  # what TRL's preference trainers do not do, said before anything starts
        if t.packing:
            bad("packing", "err_pref_packing")
        if distributed.world_plan(cfg.distributed, visible_gpus).world_size > 1:
            bad("distributed.gpus", "err_pref_one_gpu")
        if set(cfg.data.drop) & {"render_error", "no_trained_tokens", "truncated"}:
            bad("data.drop", "err_pref_drop")
    return errors


def chapter_recipe() -> RunConfig:
    """The textbook chapter's notebook, field for field (needs a GPU and the Hub)."""
    return RunConfig(
        run_name="qwen3-4b-finetome",
        model=ModelConfig(name="unsloth/Qwen3-4B-unsloth-bnb-4bit", max_seq_length=2048, dtype="auto",
                          load_in_4bit=True),
        lora=LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, bias="none", use_gradient_checkpointing="unsloth",
                        random_state=2025),
        data=DataConfig(source="hub", path="mlabonne/FineTome-100k", split="train", template="qwen-3",
                        train_on_responses_only=True),
        train=TrainConfig(max_length=2048, packing=False, per_device_train_batch_size=2,
                          gradient_accumulation_steps=4, warmup_steps=5, max_steps=60, num_train_epochs=1.0,
                          learning_rate=2e-4, logging_steps=1, optim="adamw_8bit", weight_decay=0.01,
                          lr_scheduler_type="linear", seed=3407),
    )


def bundled_preference_recipe() -> RunConfig:
    """DPO on the bundled sample of pairs (CPU, offline); pick an SFT run's adapter to start from on the Train tab."""
    cfg = RunConfig(run_name="tiny-qwen3-dpo")
    cfg.data.source, cfg.data.path = "file", BUNDLED_PAIRS
    cfg.train.stage, cfg.train.beta = "dpo", 0.1
    cfg.train.max_steps, cfg.train.learning_rate = 60, 2e-3
    return cfg


RECIPES = {"bundled": RunConfig, "chapter": chapter_recipe, "bundled_dpo": bundled_preference_recipe}
