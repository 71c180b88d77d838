"""The preference stage: after SFT, DPO or ORPO on chosen/rejected pairs, through TRL's own trainers.

A preference run is a run like any other (config.yaml with train.stage: dpo | orpo, the same worker, queue, Stop,
Resume and owner); studio/train.py calls `build_trainer` here instead of building SFTTrainer. What is ours:

  - the rows: studio/pairs.py reads the common formats into TRL's conversational preference example
    ({prompt, chosen, rejected} as messages), and TRL tokenizes them with the run's chat template;
  - the start: a fresh LoRA on the base model, or the adapter of one of the person's earlier runs
    (model.adapter_from), copied into this run's folder (start_adapter/) after its owner is checked again here, and
    loaded trainable by Unsloth. DPO's reference is then that run's model (TRL keeps a frozen copy of the starting
    adapter, named "ref"; it is left out of the saved adapter);
  - `pair_tokens`: one pair tokenized by TRL's own code, for the Template tab (what is trained is marked).

Installed TRL 1.15: DPOTrainer is `trl.DPOTrainer`; ORPO lives in `trl.experimental.orpo` (not `trl.ORPOTrainer`).
Unsloth patches both when imported first (on a GPU; its CPU fallback runs them as TRL ships them).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from studio import data as data_mod
from studio.config import BUNDLED_PAIRS, RunConfig

STAGE_NAMES = {"sft": "SFT", "dpo": "DPO", "orpo": "ORPO"}
START_ADAPTER = "start_adapter"  # in a preference run's folder: the adapter it started from, as it was then
REFERENCE_ADAPTER = "ref"        # TRL's frozen copy of the starting adapter (DPO's reference)

MESSAGES = {
    # the stage panel on the Train tab
    "stage": ("Stage", "단계"),
    "stage_info": ("SFT learns from conversations. DPO and ORPO learn from pairs of answers, one chosen and one "
                   "rejected: the usual next step after SFT.",
                   "SFT는 대화로 학습합니다. DPO와 ORPO는 선택(chosen)과 거절(rejected) 답변 쌍으로 학습하며, 보통 SFT 다음 "
                   "단계입니다."),
    "stage_sft": ("SFT (supervised)", "SFT (지도 학습)"),
    "stage_dpo": ("DPO (preference)", "DPO (선호 학습)"),
    "stage_orpo": ("ORPO (preference, no reference)", "ORPO (선호 학습, 참조 모델 없음)"),
    "beta": ("beta", "beta"),
    "beta_info": ("DPO: how far from the starting model it may move (0.1 is usual; larger stays closer). "
                  "ORPO: the weight of the preference term (lambda).",
                  "DPO: 시작 모델에서 얼마나 멀어질 수 있는지(보통 0.1, 클수록 가깝게 유지). ORPO: 선호 항의 가중치(lambda)."),
    "adapter_from": ("Start from", "시작점"),
    "adapter_from_info": ("The base model with a new LoRA, or the adapter of one of your runs (an SFT run): training "
                          "goes on from it, and DPO compares with it.",
                          "새 LoRA를 붙인 기본 모델, 또는 내 실행(SFT 실행)의 어댑터. 그 어댑터에서 이어서 훈련하며, DPO는 "
                          "그 모델과 비교합니다."),
    "adapter_from_base": ("The base model (a new LoRA)", "기본 모델 (새 LoRA)"),
    "stage_note": ("Preference tuning: the rows must be chosen/rejected pairs (Dataset tab; the bundled sample of "
                   "pairs is `assets/sample_data/sample_pairs.jsonl`). Starting from a run takes its model, LoRA "
                   "settings and template; DPO then compares with that run's model.",
                   "선호 학습: 행은 chosen/rejected 쌍이어야 합니다(데이터셋 탭, 내장 쌍 예제: "
                   "`assets/sample_data/sample_pairs.jsonl`). 실행에서 시작하면 그 실행의 모델, LoRA 설정, 템플릿을 "
                   "쓰며, DPO는 그 실행의 모델과 비교합니다."),
    "recipe_dpo": ("Bundled tiny model + sample pairs, DPO (CPU, offline)", "내장 소형 모델 + 예제 쌍, DPO (CPU, 오프라인)"),
    "fmt_pairs_text": ("preference pairs (prompt/chosen/rejected text)", "선호 쌍 (prompt/chosen/rejected 텍스트)"),
    "fmt_pairs_chat": ("preference pairs (chosen/rejected conversations)", "선호 쌍 (chosen/rejected 대화)"),
    "pair_prompt": ("prompt", "프롬프트"),
    "pair_chosen": ("chosen", "선택 (chosen)"),
    "pair_rejected": ("rejected", "거절 (rejected)"),
    "template_pair_stats": ("Row {row} of {rows} · {stage} trains on the answers: chosen {chosen} of {chosen_total} "
                            "tokens, rejected {rejected} of {rejected_total}{cut}",
                            "{rows}행 중 {row}행 · {stage}는 답변으로 학습합니다: chosen {chosen}/{chosen_total} 토큰, "
                            "rejected {rejected}/{rejected_total}{cut}"),
    "template_orpo_note": (" · ORPO's NLL term covers the whole chosen text, prompt included (TRL); its odds ratio the "
                           "two answers",
                           " · ORPO의 NLL 항은 프롬프트를 포함한 chosen 전체에, 오즈비 항은 두 답변에 걸립니다(TRL)"),
    "sum_preference": ("{stage}, beta {beta}, on {pairs:,} pairs, from {start}",
                       "{stage}, beta {beta}, {pairs:,}개 쌍, 시작점: {start}"),
    "sum_rewards": ("Last step: reward accuracy {accuracy:.0%}, margin {margin:.3f} (chosen {chosen:.3f}, "
                    "rejected {rejected:.3f})",
                    "마지막 스텝: 보상 정확도 {accuracy:.0%}, 마진 {margin:.3f} (chosen {chosen:.3f}, rejected "
                    "{rejected:.3f})"),
    "plot_rewards_axis": ("reward", "보상"),
    "plot_margin": ("reward margin", "보상 마진"),
    "plot_chosen": ("chosen reward", "chosen 보상"),
    "plot_rejected": ("rejected reward", "rejected 보상"),
    "plot_accuracy": ("reward accuracy", "보상 정확도"),
    "plot_accuracy_axis": ("accuracy", "정확도"),
    "plot_eval_accuracy": ("eval reward accuracy", "평가 보상 정확도"),
    # config.validate and Start
    "err_beta": ("beta must be a positive number.", "beta는 양수여야 합니다."),
    "err_adapter_from_sft": ("Starting from a run's adapter is for the preference stages (DPO, ORPO).",
                             "실행의 어댑터에서 시작하는 것은 선호 학습 단계(DPO, ORPO)에서만 됩니다."),
    "err_pref_packing": ("Packing is for SFT; DPO and ORPO keep each pair whole: turn packing off.",
                         "패킹은 SFT용입니다. DPO와 ORPO는 쌍을 통째로 씁니다: 패킹을 끄세요."),
    "err_pref_one_gpu": ("The preference stages train on one GPU: set GPUs to 1.",
                         "선호 학습 단계는 GPU 한 장으로 훈련합니다: GPU 수를 1로 하세요."),
    "err_pref_drop": ("The token checks (render_error, no_trained_tokens, truncated) measure SFT rows; a preference "
                      "run can drop only the text checks' rows.",
                      "토큰 점검(render_error, no_trained_tokens, truncated)은 SFT 행을 잽니다. 선호 학습 실행은 텍스트 "
                      "점검의 행만 뺄 수 있습니다."),
    "err_adapter_from_none": ("Run {run} has no saved adapter to start from (yet).",
                              "{run} 실행에는 시작점으로 쓸 저장된 어댑터가 (아직) 없습니다."),
    "err_adapter_model": ("the run to start from, {run}, trained {model}: choose that model (Model tab).",
                          "시작점 실행 {run}은(는) {model} 모델로 훈련했습니다. 모델 탭에서 그 모델을 고르세요."),
}


class StartError(ValueError):
    """model.adapter_from names no run this run's owner may start from (a hand-edited config.yaml)."""


# ---------------------------------------------------------------- what Start checks

def needs_pairs(cfg: RunConfig, ds: data_mod.Dataset) -> None:
    """A preference stage learns from pairs: any other dataset is refused, naming the bundled sample of pairs."""
    if cfg.train.stage != "sft" and not ds.is_pairs:
        raise data_mod.DataError("data_needs_pairs", file=ds.name, stage=STAGE_NAMES[cfg.train.stage],
                                 format=data_mod.FORMAT_NAMES[ds.format], path=BUNDLED_PAIRS)


def starting_run(run_id: str, owner: str) -> Path:
    """The run folder of `run_id` if it belongs to `owner` and has a saved adapter; the same refusal for a run that
    is not there and for another person's (nothing to probe with)."""
    from studio.runs import folder
    try:
        run_dir = folder.resolve_run(run_id)
    except ValueError:
        raise StartError(f"model.adapter_from: no run {run_id!r} of {owner!r}") from None
    if (folder.read_meta(run_dir).get("owner") or folder.LOCAL_OWNER) != owner:
        raise StartError(f"model.adapter_from: no run {run_id!r} of {owner!r}")
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise StartError(f"model.adapter_from: run {run_id!r} has no saved adapter")
    return run_dir


def check_start(cfg: RunConfig, ds: data_mod.Dataset, user) -> None:
    """Start's checks of the stage (studio/jobs.py preflight): pairs for DPO/ORPO, and a run to start from that is
    the person's own (jobs.open_run, then the owner itself: an admin, too, starts only from their own runs), with an
    adapter, trained on the same model."""
    from studio import jobs
    from studio.config import Problem
    try:
        needs_pairs(cfg, ds)
    except data_mod.DataError as exc:
        raise jobs.Refused("err_data", detail=str(exc), cause=exc) from None
    run_id = cfg.model.adapter_from
    if not run_id:
        return
    from studio.runs import folder
    run_dir = jobs.open_run(run_id, user)
    if (folder.read_meta(run_dir).get("owner") or folder.LOCAL_OWNER) != user.name:  # as if it were not there
        raise jobs.Refused("err_no_such_run", run=str(run_id)[:80])
    if not (run_dir / "adapter" / "adapter_config.json").is_file():
        raise jobs.Refused("err_adapter_from_none", run=run_dir.name)
    trained = RunConfig.load(run_dir / "config.yaml").model.name
    if trained != cfg.model.name:
        raise jobs.Refused("err_config", problems=[Problem("model.adapter_from", "err_adapter_model",
                                                           {"run": run_dir.name, "model": trained})])


# ---------------------------------------------------------------- the worker

def start_adapter(cfg: RunConfig, run_dir: Path, base_source: str) -> Path:
    """The adapter this run starts from, copied into its folder (a Resume finds it there, whatever became of the
    other run), naming `base_source` (the base as this worker loads it) as its base model.

    The owner is checked here again, not only at Start: config.yaml can be edited by hand, and must not reach
    another person's adapter."""
    from studio.runs import folder
    owner = folder.read_meta(run_dir).get("owner") or folder.LOCAL_OWNER
    target = run_dir / START_ADAPTER
    if (target / "adapter_config.json").is_file():
        return target
    source = starting_run(cfg.model.adapter_from, owner)
    trained = RunConfig.load(source / "config.yaml").model.name
    if trained != cfg.model.name:
        raise StartError(f"model.adapter_from: run {source.name!r} trained {trained!r}, not {cfg.model.name!r}")
    tmp = run_dir / f".{START_ADAPTER}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source / "adapter", tmp, ignore=shutil.ignore_patterns(REFERENCE_ADAPTER))
    config_path = tmp / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(base_source)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    os.replace(tmp, target)
    return target


def examples(ds: data_mod.Dataset, indices, progress=None):
    """TRL's conversational preference examples of the chosen rows, as a datasets.Dataset (a bad pair: DataError)."""
    from datasets import Dataset
    rows = range(len(ds)) if indices is None else indices
    out = []
    for n, i in enumerate(rows, 1):
        out.append(ds.pair(i).example())
        if progress and n % 256 == 0:
            progress(n)
    return Dataset.from_list(out)


def trainer_classes(stage: str):
    """(config class, trainer class) of TRL for the stage, as this TRL has them: ORPO moved to trl.experimental."""
    if stage == "dpo":
        from trl import DPOConfig, DPOTrainer
        return DPOConfig, DPOTrainer
    import warnings
    with warnings.catch_warnings():  # TRLExperimentalWarning: we know, and say so in the docstring above
        warnings.simplefilter("ignore")
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    return ORPOConfig, ORPOTrainer


def build_trainer(cfg: RunConfig, run_dir: Path, model, tokenizer, files, on_gpu: bool):
    """DPOTrainer or ORPOTrainer on the run's pairs (studio/train.py's stage switch). Returns (trainer, the studio's
    callback, GPU memory reserved before training)."""
    import torch
    from transformers import TrainerCallback
    from studio import distributed as dist, train
    rows = train.run_rows(cfg, files, dist.world_size())
    for ds in (rows.ds, rows.eval_ds):
        if ds is not None:
            needs_pairs(cfg, ds)
    files.phase("prepare", done=0, total=rows.count, unit="rows")
    train_set = examples(rows.ds, rows.train, lambda n: files.progress(done=n))
    files.progress(done=len(train_set))
    train.record_drops(files, cfg.data.drop, rows.left_out, rows.used)
    eval_set = examples(rows.eval_ds, rows.eval) if rows.eval_ds is not None else None
    files.event("preference", stage=cfg.train.stage, beta=cfg.train.beta, pairs=len(train_set),
                adapter_from=cfg.model.adapter_from or None)

    files.phase("trainer")  # TRL renders and tokenizes the pairs here, with the run's chat template
    start_reserved = torch.cuda.max_memory_reserved() / train.GIB if on_gpu else 0.0
    callbacks = train.stage_callbacks(cfg, files, tokenizer, start_reserved,
                                      rows.eval_prompts() if eval_set is not None else None)

    class LeaveOutReference(TrainerCallback):
        """The saved adapter is the trained one alone: TRL's frozen copy of the start goes before the save."""

        def on_train_end(self, args, state, control, model=None, **kw):
            if model is not None and REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
                model.delete_adapter(REFERENCE_ADAPTER)

    config_class, trainer_class = trainer_classes(cfg.train.stage)
    args = train.trainer_args(cfg, run_dir, on_gpu, len(train_set), evaluating=eval_set is not None, files=files)
    args["dataset_num_proc"] = None  # TRL maps the pairs itself: 1 would start a pool of one process
    trainer = trainer_class(model=model, args=config_class(**args, beta=cfg.train.beta), processing_class=tokenizer,
                            train_dataset=train_set, eval_dataset=eval_set,
                            callbacks=callbacks + [LeaveOutReference()])
    kept = len(trainer.train_dataset)
    files.event("dropped", count=len(train_set) - kept, total=len(train_set))  # DPO: prompts that fill max_length
    if kept == 0:
        raise ValueError("no pair has an answer left within max_length: raise max_length")
    train.count_tokens_lazily(trainer)  # also on CPU: ORPO's batches have no input_ids for transformers' count
    return trainer, callbacks[0], start_reserved


# ---------------------------------------------------------------- the Template tab

def pair_tokens(tokenizer, pair, stage: str, max_length: int | None = None) -> dict[str, tuple[list[int], list[bool]]]:
    """One pair as the stage's TRL trainer tokenizes it: for "chosen" and "rejected", the token ids of prompt +
    answer and, for each, whether it is trained (the answer's tokens). Cut to max_length as the trainer cuts."""
    if stage == "orpo":
        return _orpo_tokens(tokenizer, pair, max_length)
    from trl.data_utils import _tokenize, common_prefix_length
    # DPOTrainer._prepare_dataset: the answer starts where prompt (with the generation prompt) and prompt + answer
    # part; DataCollatorForPreference keeps the start of each sequence (truncation_mode "keep_start")
    prompt_ids = _tokenize(tokenizer, pair.prompt, add_generation_prompt=True)["input_ids"]
    full = {side: _tokenize(tokenizer, pair.prompt + getattr(pair, side))["input_ids"]
            for side in ("chosen", "rejected")}
    start = min(common_prefix_length(prompt_ids, ids) for ids in full.values())
    cut = slice(None, max_length) if max_length else slice(None)
    return {side: (ids[cut], [n >= start for n in range(len(ids))][cut]) for side, ids in full.items()}


def _orpo_tokens(tokenizer, pair, max_length: int | None):
    from trl.data_utils import maybe_apply_chat_template
    _, trainer_class = trainer_classes("orpo")

    class OneRow:
        """What ORPOTrainer.tokenize_row reads of its trainer: TRL's own code, run on one row."""
        is_encoder_decoder = False
        build_tokenized_answer = trainer_class.build_tokenized_answer
        tokenize_row = trainer_class.tokenize_row

        def __init__(self):
            self.processing_class, self.max_length = tokenizer, max_length or 1 << 30

    row = OneRow().tokenize_row(maybe_apply_chat_template(pair.example(), tokenizer))
    # TRL's ORPO takes its NLL term over the whole chosen sequence (prompt too: "computed over the full prompt and
    # response"), and the odds ratio over both answers: the chosen side is trained throughout, the rejected one on
    # its answer
    return {"chosen": (list(row["chosen_input_ids"]), [bool(m) for m in row["chosen_attention_mask"]]),
            "rejected": (list(row["rejected_input_ids"]), [label != -100 for label in row["rejected_labels"]])}
