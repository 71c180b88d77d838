"""Benchmark 3: the same recipe with plain transformers + PEFT + bitsandbytes, no Unsloth (own process).

    python bench/gpu_recipe_hf_peft.py --model /tmp/studio-bench/qwen3-4b --data /tmp/studio-bench/chat.jsonl \
        --warmup 4 --steps 14 --out result.json

The standard QLoRA recipe: BitsAndBytesConfig(nf4, double quant, bf16 compute), prepare_model_for_kbit_training
with gradient checkpointing (non-reentrant), LoRA r=8 alpha=8 on q,k,v,o,gate,up,down, transformers Trainer
with batch 2 x accumulation 4, adamw_8bit (bitsandbytes), lr 2e-4, linear schedule, warmup 5, bf16, SDPA
attention, padded batches. Same rows, same qwen-3 rendering (bench.gpu_common.render_qwen3, checked equal to
Unsloth's template on CPU), same 2048 cut, loss on the responses only (everything up to and including
"<|im_start|>assistant\\n" masked, as unsloth's train_on_responses_only does), same token count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig,  # noqa: E402
                          DataCollatorForSeq2Seq, Trainer, TrainingArguments)

from bench import gpu_common as C  # noqa: E402

T_IMPORT = time.time()


def tokenize_rows(tok, path: str, max_length: int) -> list[dict]:
    out = []
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        text = C.render_qwen3(json.loads(line)["conversations"])
        # TRL's SFTTrainer (benchmarks 1, 2) appends the eos token (<|im_end|> under the qwen-3 template)
        ids = (tok(text, add_special_tokens=False).input_ids + [eos])[:max_length]
        cut = text.rindex(C.RESPONSE_PART) + len(C.RESPONSE_PART)
        n_prompt = len(tok(text[:cut], add_special_tokens=False).input_ids)
        labels = [-100] * min(n_prompt, len(ids)) + ids[n_prompt:]
        if any(x != -100 for x in labels):
            out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--name", default="3. transformers + PEFT + bitsandbytes")
    ap.add_argument("--out", default="")
    a = ap.parse_args(argv)
    assert "unsloth" not in sys.modules, "this benchmark must run without Unsloth"
    R = C.RECIPE
    on_gpu = torch.cuda.is_available()

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    tok = AutoTokenizer.from_pretrained(a.model)
    kw = {"dtype": torch.bfloat16, "attn_implementation": "sdpa"}
    if on_gpu:
        kw.update(device_map={"": 0}, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16))
    model = AutoModelForCausalLM.from_pretrained(a.model, **kw)
    model.config.use_cache = False
    if on_gpu:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=R["r"], lora_alpha=R["lora_alpha"], lora_dropout=R["lora_dropout"],
                                             target_modules=R["targets"], bias="none", task_type="CAUSAL_LM"))
    t_model = time.time()

    rows = tokenize_rows(tok, a.data, R["max_length"])
    args = TrainingArguments(
        output_dir=os.environ.get("BENCH_TMP", "/tmp/studio-bench") + "/hf-out",
        per_device_train_batch_size=R["micro_batch"],
        gradient_accumulation_steps=R["accum"], warmup_steps=R["warmup_steps"], max_steps=a.steps,
        learning_rate=R["lr"], logging_steps=1, optim=R["optim"] if on_gpu else "adamw_torch",
        weight_decay=R["weight_decay"], lr_scheduler_type=R["schedule"], seed=R["seed"], bf16=on_gpu,
        report_to="none", save_strategy="no", remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    counter = C.CpuTokenCounter(trainer, tok.pad_token_id)
    rec = C.recorder_callback(lambda state: counter.seen)
    trainer.add_callback(rec)
    t_prep = time.time()
    stats = trainer.train()
    t_train = time.time()

    res = {"name": a.name, "runner": "hf_peft", "model": a.model, "load_in_4bit": on_gpu,
           "micro_batch": R["micro_batch"],
           "accum": R["accum"], "gc": "true", "steps": a.steps, "warmup": a.warmup, "logs": rec.logs,
           "micro_tokens": counter.micro, "train_loss": stats.metrics.get("train_loss"),
           "import_s": T_IMPORT - T_START, "model_s": t_model - T_IMPORT, "prep_s": t_prep - t_model,
           "train_s": t_train - t_prep, "wall_s": time.time() - T_START, "versions": C.versions()}
    if on_gpu:
        res["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / C.GIB
        res["peak_alloc_gb"] = torch.cuda.max_memory_allocated() / C.GIB
    res.update(C.steady(rec.logs, a.warmup))
    C.save_result(res, a.out)
    print(C.table([res], C.RESULT_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
