"""A preference run (DPO, ORPO) as one readable Python script (the Export tab's script for train.stage != "sft").

The same shape as the SFT script (studio/export.py, whose settings blocks and row rule it shares): Unsloth loads the
model (or the run's starting adapter), the rows become TRL's conversational pairs by the studio's rule
(studio/pairs.py), and TRL's own DPOTrainer or ORPOTrainer trains on them.
"""
from __future__ import annotations

from pathlib import Path

from studio import data as data_mod, export
from studio.config import REPO_ROOT, RunConfig
from studio.preference import REFERENCE_ADAPTER, START_ADAPTER, STAGE_NAMES

TRAINERS = {"dpo": ("from trl import DPOConfig, DPOTrainer", "DPOConfig", "DPOTrainer"),
            "orpo": ("from trl.experimental.orpo import ORPOConfig, ORPOTrainer  # ORPO is experimental in TRL 1.x",
                     "ORPOConfig", "ORPOTrainer")}


def render(cfg: RunConfig, run_dir: Path) -> str:
    fmt, column, ext = export._data_facts(cfg)
    if fmt not in data_mod.PAIR_FORMATS:
        raise export.ExportError(f"{STAGE_NAMES[cfg.train.stage]} needs preference pairs; the run's data is {fmt}")
    trainer_import, config_class, trainer_class = TRAINERS[cfg.train.stage]
    start = Path(run_dir) / START_ADAPTER
    if cfg.model.adapter_from:  # the copy the run started from: relative to the studio folder where it lies there
        start_adapter = repr(str(start.relative_to(REPO_ROOT) if start.is_relative_to(REPO_ROOT) else start))
    else:
        start_adapter = "None"
    values = dict(export.script_values(cfg, run_dir), stage=STAGE_NAMES[cfg.train.stage], trainer=trainer_class,
                  config=config_class, trainer_import=trainer_import, beta=cfg.train.beta,
                  start_adapter=start_adapter, start_run=cfg.model.adapter_from or "none",
                  ref=repr(REFERENCE_ADAPTER), trainer_args=export.SCRIPT_TRAINER_ARGS)
    return "\n".join([(_HEAD + export.SCRIPT_SETTINGS + _SETTINGS + export.SCRIPT_TRAIN_SETTINGS).format(**values),
                      _MODEL, export._loader_code(ext, fmt, None), pairs_code(column), export.SCRIPT_ROWS,
                      _TRAIN.format(**values)])


_HEAD = '''\
"""Preference tuning ({stage}) of run '{run}' ({run_name}), reproduced outside LoRA Studio.

One file, today's APIs: Unsloth (FastLanguageModel, get_peft_model, get_chat_template) and TRL's {trainer},
on chosen/rejected pairs. Every setting is inline below.

Run it from the LoRA Studio folder (relative paths such as assets/... are relative to it):
    python {script}
The adapter is saved to lora_model/ (change OUTPUT_DIR / ADAPTER_DIR below).
"""
# Unsloth patches transformers, TRL and PEFT when imported: it must come first.
import unsloth  # noqa: F401
from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template

import json
import os
import random

import torch
from datasets import Dataset
{trainer_import}
'''

_SETTINGS = '''\
# The adapter the run started from (a copy of run {start_run}'s, with its own LoRA settings),
# or None: a new LoRA with the settings above
START_ADAPTER = {start_adapter}
BETA = {beta}  # DPO: how far from the starting model; ORPO: the weight of the preference term
'''

_MODEL = '''\
# ---- 1. Model: the starting adapter (trainable), or LoRA adapters on the base model
model, tokenizer = FastLanguageModel.from_pretrained(
    START_ADAPTER or MODEL_NAME, max_seq_length=MAX_SEQ_LENGTH, dtype=DTYPE, load_in_4bit=LOAD_IN_4BIT and on_gpu)
if START_ADAPTER is None:
    model = FastLanguageModel.get_peft_model(
        model, r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT, target_modules=TARGET_MODULES,
        bias=LORA_BIAS, use_gradient_checkpointing=GRADIENT_CHECKPOINTING, random_state=LORA_RANDOM_STATE)
tokenizer = get_chat_template(tokenizer, chat_template=CHAT_TEMPLATE)

# ---- 2. Data: load, pick rows, make each one TRL's conversational pair {prompt, chosen, rejected}
'''

def pairs_code(prompt_column: str | None) -> str:
    """The script's reading of preference rows (the studio's rule: studio/pairs.py), for the SFT script too."""
    return _PAIRS.format(roles=data_mod.ROLE_ALIASES, prompt_column=prompt_column)


_PAIRS = '''
ROLES = {roles!r}
PROMPT_COLUMN = {prompt_column!r}  # None: the prompt is what chosen and rejected share before their answers


def to_messages(value, role):
    """A text (said by `role`) or a list of {{role, content}} / {{from, value}} messages -> role/content messages."""
    if isinstance(value, str):
        return [{{"role": role, "content": value}}]
    out = []
    for turn in value:
        role_key, content_key = ("from", "value") if "from" in turn and "role" not in turn else ("role", "content")
        out.append({{"role": ROLES[str(turn[role_key]).strip().lower()], "content": turn[content_key]}})
    return out


def pair(row):
    """One row -> {{prompt, chosen, rejected}} as messages, by the studio's rule (which also checked every row)."""
    chosen, rejected = to_messages(row["chosen"], "assistant"), to_messages(row["rejected"], "assistant")
    if chosen[0]["role"] != "assistant" and rejected[0]["role"] != "assistant":  # whole conversations: the prompt
        # is what they share before their answers
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
            shared += 1
        return {{"prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}}
    prompt = to_messages(row[PROMPT_COLUMN], "user")
    system = row.get("system")
    if isinstance(system, str) and system.strip() and prompt[0]["role"] != "system":
        prompt.insert(0, {{"role": "system", "content": system}})
    return {{"prompt": prompt, "chosen": chosen, "rejected": rejected}}
'''

_TRAIN = '''

rows = load_rows()
n = min(len(rows), MAX_ROWS) if MAX_ROWS else len(rows)
indices = training_rows(n)
dataset = Dataset.from_list([pair(rows[i]) for i in indices])
print(f"{{len(dataset)}} training pairs (of {{n}})")
if os.environ.get("PREPARE_ONLY"):  # check the model and data without training
    raise SystemExit(0)

# ---- 3. Trainer: TRL renders the pairs with the chat template and trains on the answers
trainer = {trainer}(
    model=model,
    processing_class=tokenizer,
    train_dataset=dataset,
    args={config}(
        output_dir=OUTPUT_DIR,
        beta=BETA,
{trainer_args}\
    ),
)
stats = trainer.train()
print(stats)

# ---- 4. Save the adapter (without DPO's frozen copy of the start, "{ref}") and the tokenizer with its template
if {ref} in model.peft_config:
    model.delete_adapter({ref})
model.save_pretrained(ADAPTER_DIR)
tokenizer.save_pretrained(ADAPTER_DIR)
if os.environ.get("LOG_HISTORY_JSON"):  # the per-step losses, for comparing runs
    with open(os.environ["LOG_HISTORY_JSON"], "w") as f:
        json.dump(trainer.state.log_history, f)
'''
