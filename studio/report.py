"""A finished run's report, one Markdown page built from its folder: the Runs tab shows it, the .md downloads,
and a Hub push puts it in the model card (studio/export.py).

What it says:
  eval loss     the base model's (the worker evaluates once before the first step: LoRA starts as the base model)
                and the adapter's (the best checkpoint, which the adapter is), on the same held-out rows
  answers       the fixed prompts answered by the base model (step 0) and by the adapter, side by side
  data checks   what the checks (studio/checks.py) find on the rows the run used, and what it left out
  settings      those that differ from the chapter's recipe (config.chapter_recipe)
  time, memory  estimated before Start vs taken, the phases to step 1, tokens/s, the peak

The checks are run here, on the run's config, the first time a report is asked for, and kept in the run folder
(report/checks.json), so the page is the same each time it is shown. The report's Markdown is written to
report/report-<lang>.md for the download.
"""
from __future__ import annotations

from pathlib import Path

from studio import checks, runs, timing
from studio.config import RunConfig, chapter_recipe

REPORT_DIR = "report"
CHECKS_FILE = "checks.json"


def english(key: str, **fields) -> str:
    """The report's words in English (the model card's; the UI passes its own `say` for the reader's language)."""
    for table in (MESSAGES, checks.MESSAGES, timing.MESSAGES):
        if key in table:
            return table[key][0].format(**fields)
    return key.split("_", 1)[-1]  # state_completed, phase_prepare: the code itself


def config_diff(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """Only what differs between two config trees, as (dotted key, first, second)."""
    out = []
    for key in list(dict.fromkeys([*a, *b])):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += config_diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append((f"{prefix}{key}", x, y))
    return out


def cell(value, limit: int = 160) -> str:
    """One table cell: one line, long text cut, pipes and angle brackets escaped (a model's `</think>` is text, not
    a tag that Markdown would hide)."""
    text = " ".join(str(value).split())
    text = text[:limit] + "…" if len(text) > limit else text
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- the data checks, once per run

def data_findings(run_dir: Path) -> dict:
    """What the data checks find on the rows this run used (kept in report/checks.json once found), or
    {"error": why} when they cannot be run here (the data or the tokenizer is gone)."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_DIR / CHECKS_FILE
    kept = runs.read_json(path)
    if kept:
        return kept
    from studio import data, templates
    from studio.distributed import world_plan
    cfg = RunConfig.load(run_dir / "config.yaml")
    d = cfg.data
    allowed = data.allowed_roots(runs.read_meta(run_dir).get("owner"))
    try:
        ds = data.DATASETS.get(d.source, d.path, d.split, d.max_rows, None, allowed)
        eval_source = data.eval_source(d)
        eval_file = data.load_dataset_source(*eval_source, 0, allowed_roots=allowed) if eval_source else None
        tokenizer = templates.TOKENIZERS.get(cfg.model.name, d.template, None)
        found = checks.run_checks(cfg, ds, eval_file, tokenizer, world=world_plan(cfg.distributed).world_size)
    except Exception as exc:  # said in the report; tried again next time
        return {"error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}
    result = {"rows": found.rows, "eval_rows": found.eval_rows, "readable": found.readable,
              "token_rows": found.token_rows, "sampled": found.sampled, "lost_share": round(found.lost_share, 4),
              "found": {code: found.estimate(f) for code, f in found.findings.items() if f.applies},
              "estimated": [code for code, f in found.findings.items() if f.sampled and f.count]}
    path.parent.mkdir(exist_ok=True)
    runs.write_json_atomic(path, result)
    return result


# ---------------------------------------------------------------- the page

def build(run_dir: Path, say=None, lang: str = "en", level: int = 1, findings: dict | None = None) -> str:
    """The report as Markdown. `say(key, **fields)` words it (the UI passes the reader's language, `lang`; English
    by default); `level`: the heading level of its title (2 inside a model card)."""
    say = say or english
    run_dir = Path(run_dir)
    cfg = RunConfig.load(run_dir / "config.yaml")
    status = runs.view(run_dir)
    events = runs.read_metrics(run_dir).events
    h = "#" * level
    end = next((e for e in reversed(events) if e.get("event") == "end"), {})
    dataset = next((e for e in events if e.get("event") == "dataset"), {})
    lines = [f"{h} {say('rep_title', name=cfg.run_name)}", "",
             say("rep_facts", run=run_dir.name, state=say("state_" + str(status.get("state"))), model=cfg.model.name,
                 data=cfg.data.path, steps=status.get("step", 0), rows=dataset.get("used", "?")), ""]
    lines += _eval_section(events, status, dataset, say, h)
    lines += _answers_section(events, status, say, h)
    lines += _checks_section(run_dir, findings, say, h)
    lines += _settings_section(cfg, say, h)
    lines += _time_section(run_dir, events, status, end, say, h, lang)
    return "\n".join(lines).rstrip() + "\n"


def _eval_section(events, status, dataset, say, h) -> list[str]:
    out = [f"{h}# {say('rep_eval_title')}", ""]
    evals = [e for e in events if e.get("event") == "eval"]
    base = next((e for e in evals if e.get("step") == 0), None)
    trained = [e for e in evals if e.get("step", 0) > 0]
    if not evals:
        logs = [e for e in events if e.get("event") == "log" and e.get("loss") is not None]
        out.append(say("rep_no_eval") if not logs else say(
            "rep_no_eval_train", first=sum(e["loss"] for e in logs[:5]) / len(logs[:5]),
            last=sum(e["loss"] for e in logs[-5:]) / len(logs[-5:])))
        return out + [""]
    best_step = status.get("best_step")
    adapter = next((e for e in trained if e["step"] == best_step), None) or (
        min(trained, key=lambda e: e["eval_loss"]) if trained else None)
    out += [say("rep_eval_rows", n=dataset.get("eval_rows", "?")), "",
            f"| | {say('rep_step')} | {say('rep_eval_loss')} |", "| --- | ---: | ---: |"]
    if base:
        out.append(f"| {say('rep_base')} | 0 | {base['eval_loss']:.4f} |")
    if adapter:
        out.append(f"| {say('rep_adapter')} | {adapter['step']} | {adapter['eval_loss']:.4f} |")
    if base and adapter and base["eval_loss"]:
        out += ["", say("rep_eval_change", pct=100 * (adapter["eval_loss"] - base["eval_loss"]) / base["eval_loss"])]
    elif not base:
        out += ["", say("rep_no_base")]
    return out + [""]


def _answers_section(events, status, say, h) -> list[str]:
    samples = [e for e in events if e.get("event") == "samples"]
    if not samples:  # said, not left out: a reader looks for this section
        return [f"{h}# {say('rep_answers_title')}", "", say("rep_no_answers"), ""]
    base = next((e for e in samples if e.get("step") == 0), None)
    best_step = status.get("best_step")
    later = [e for e in samples if e.get("step", 0) > 0]
    adapter = next((e for e in later if e["step"] == best_step), None) or (later[-1] if later else None)
    if adapter is None:
        return []
    out = [f"{h}# {say('rep_answers_title')}", "",
           f"| {say('rep_prompt')} | {say('rep_base')} ({say('rep_step')} 0) | {say('rep_adapter')} "
           f"({say('rep_step')} {adapter['step']}) |", "| --- | --- | --- |"]
    before = dict(zip(base["prompts"], base["answers"])) if base else {}
    for prompt, answer in zip(adapter["prompts"], adapter["answers"]):
        said = [cell(text) or f"*{say('rep_empty')}*" for text in (before.get(prompt, "–"), answer)]
        out.append(f"| {cell(prompt, 80)} | {said[0]} | {said[1]} |")
    return out + [""]


def _checks_section(run_dir: Path, findings, say, h) -> list[str]:
    findings = data_findings(run_dir) if findings is None else findings
    left_out = runs.read_json(run_dir / checks.DROPPED_ROWS_FILE)
    out = [f"{h}# {say('rep_checks_title')}", ""]
    if findings.get("error"):
        out += [say("rep_checks_error", error=findings["error"]), ""]
    else:
        out += [say("rep_checks_rows", rows=findings["rows"], eval=findings["eval_rows"]), ""]
    out += [f"| {say('rep_check')} | {say('rep_found')} | {say('rep_left_out')} |", "| --- | ---: | ---: |"]
    for code in checks.CHECKS:
        found = findings.get("found", {}).get(code)
        shown = "–" if found is None else (f"≈ {found:,}" if code in findings.get("estimated", []) else f"{found:,}")
        out.append(f"| {say('check_' + code)} | {shown} | {len(left_out.get(code, [])):,} |")
    if findings.get("sampled"):
        out += ["", say("rep_checks_sampled", sample=findings["token_rows"], rows=findings["readable"])]
    return out + [""]


def _settings_section(cfg: RunConfig, say, h) -> list[str]:
    differ = [(k, a, b) for k, a, b in config_diff(chapter_recipe().to_dict(), cfg.to_dict()) if k != "run_name"]
    out = [f"{h}# {say('rep_settings_title')}", ""]
    if not differ:
        return out + [say("rep_settings_same"), ""]
    out += [f"| {say('rep_setting')} | {say('rep_chapter')} | {say('rep_this_run')} |", "| --- | --- | --- |"]
    out += [f"| `{k}` | {cell(a, 60)} | {cell(b, 60)} |" for k, a, b in differ]
    return out + [""]


def _time_section(run_dir: Path, events, status, end, say, h, lang: str) -> list[str]:
    out = [f"{h}# {say('rep_time_title')}", ""]
    estimate, actual = timing.read_plan(run_dir), timing.actual_seconds(status)
    if estimate.get("seconds") and actual:
        out.append("- " + timing.versus(estimate, actual, say, lang))
    elif actual:
        out.append("- " + say("rep_took", actual=timing.duration(actual, lang)))
    phases = [p for p in status.get("phases") or [] if p["phase"] not in ("save",)]
    if phases:
        out.append("- " + say("rep_phases", phases=", ".join(
            f"{say('phase_' + p['phase'])} {say('rep_seconds', s=p['seconds'])}" for p in phases)))
    if end.get("train_runtime") is not None:
        rate = end.get("tokens_seen", 0) / end["train_runtime"] if end.get("train_runtime") else 0
        out.append("- " + say("rep_train_time", s=end["train_runtime"], tokens=end.get("tokens_seen", 0), rate=rate))
    if end.get("device") == "cuda":
        out.append("- " + say("rep_gpu_peak", gpu=end.get("gpu_name", "GPU"), peak=end["peak_reserved_gb"],
                              pct=end["peak_pct"], train=end["peak_training_gb"]))
    elif end.get("process_peak_gb") is not None:
        out.append("- " + say("rep_cpu_peak", peak=end["process_peak_gb"]))
    return out + [""]


def write(run_dir: Path, text: str, lang: str = "en") -> Path:
    """The report as a file in the run folder, for the download (one per language)."""
    path = Path(run_dir) / REPORT_DIR / f"report-{lang}.md"
    path.parent.mkdir(exist_ok=True)
    runs.write_text_atomic(path, text)
    return path


MESSAGES = {
    "rep_title": ("Report: {name}", "보고서: {name}"),
    "rep_facts": ("Run `{run}` · {state} · model `{model}` · data `{data}` · {rows} rows · {steps} steps",
                  "실행 `{run}` · {state} · 모델 `{model}` · 데이터 `{data}` · {rows}행 · {steps} 스텝"),
    "rep_eval_title": ("Eval loss: base model vs adapter", "평가 손실: 베이스 모델 대 어댑터"),
    "rep_eval_rows": ("On the same {n} held-out rows.", "같은 평가용 {n}행에서."),
    "rep_step": ("step", "스텝"),
    "rep_eval_loss": ("eval loss", "평가 손실"),
    "rep_base": ("base model", "베이스 모델"),
    "rep_adapter": ("adapter", "어댑터"),
    "rep_eval_change": ("From the base model to the adapter, the eval loss changed by {pct:+.1f}%.",
                        "어댑터의 평가 손실은 베이스 모델 대비 {pct:+.1f}%입니다."),
    "rep_no_base": ("The base model was not evaluated (a run from before reports).",
                    "베이스 모델은 평가하지 않았습니다 (보고서 기능 이전의 실행)."),
    "rep_no_eval": ("No held-out rows: hold some out on the Dataset tab to compare with the base model.",
                    "평가용 행이 없습니다: 데이터셋 탭에서 일부를 떼어 두면 베이스 모델과 비교합니다."),
    "rep_no_eval_train": ("No held-out rows, so no eval loss: the train loss went from {first:.4f} (first 5 steps) "
                          "to {last:.4f} (last 5).",
                          "평가용 행이 없어 평가 손실은 없습니다: 훈련 손실이 {first:.4f}(처음 5 스텝)에서 "
                          "{last:.4f}(마지막 5 스텝)로 바뀌었습니다."),
    "rep_answers_title": ("The fixed prompts: base model and adapter", "고정 프롬프트: 베이스 모델과 어댑터"),
    "rep_no_answers": ("None yet: the fixed prompts are answered at each evaluation. Hold some rows out on the "
                       "Dataset tab to see the base model's answers beside the adapter's.",
                       "아직 없습니다: 고정 프롬프트는 평가 때마다 답합니다. 데이터셋 탭에서 일부 행을 떼어 두면 "
                       "베이스 모델과 어댑터의 답을 나란히 봅니다."),
    "rep_prompt": ("prompt", "프롬프트"),
    "rep_empty": ("no text", "빈 답"),
    "rep_checks_title": ("Data checks", "데이터 검사"),
    "rep_checks_rows": ("On the {rows:,} rows this run trained on (and its {eval:,} eval rows).",
                        "이 실행이 훈련한 {rows:,}행 (평가 {eval:,}행과 함께)에서."),
    "rep_checks_error": ("The checks could not run here: {error}", "여기서 검사를 할 수 없었습니다: {error}"),
    "rep_checks_sampled": ("≈: the token checks looked at a seeded sample of {sample:,} of {rows:,} rows.",
                           "≈: 토큰 검사는 {rows:,}행 중 시드 고정 표본 {sample:,}행을 봤습니다."),
    "rep_check": ("check", "검사"),
    "rep_found": ("rows found", "찾은 행"),
    "rep_left_out": ("left out by this run", "이 실행에서 뺀 행"),
    "rep_settings_title": ("Settings that differ from the chapter's recipe", "교재 레시피와 다른 설정"),
    "rep_settings_same": ("None: this run is the chapter's recipe.", "없음: 이 실행은 교재 레시피 그대로입니다."),
    "rep_setting": ("setting", "설정"),
    "rep_chapter": ("the chapter", "교재"),
    "rep_this_run": ("this run", "이 실행"),
    "rep_time_title": ("Time and memory", "시간과 메모리"),
    "rep_took": ("Took {actual}.", "{actual} 걸렸습니다."),
    "rep_seconds": ("{s:.1f} s", "{s:.1f}초"),
    "rep_phases": ("Before step 1: {phases}.", "1 스텝 전: {phases}."),
    "rep_train_time": ("Training: {s:.1f} s, {tokens:,} tokens, {rate:,.0f} tokens/s.",
                       "훈련: {s:.1f}초, 토큰 {tokens:,}개, 초당 {rate:,.0f} 토큰."),
    "rep_gpu_peak": ("Peak GPU memory ({gpu}): {peak:.2f} GB reserved ({pct:.1f}%), {train:.2f} GB for training.",
                     "GPU 최대 메모리 ({gpu}): {peak:.2f} GB 예약 ({pct:.1f}%), 훈련용 {train:.2f} GB."),
    "rep_cpu_peak": ("Peak process memory: {peak:.2f} GB (CPU).", "프로세스 최대 메모리: {peak:.2f} GB (CPU)."),
}
