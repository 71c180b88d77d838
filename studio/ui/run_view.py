"""How a run's status reads on the Train tab: the progress line (phase, step, ETA, speed, memory), the
summary (the chapter's printed lines, then the phases' times) and the error box. Text only, in the
request's language."""
from __future__ import annotations

import time

from studio import data, runs, timing
from studio.ui.i18n import lang, say_data, t


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def phase_text(status: dict, request=None) -> str:
    """'loading the model · 0:07' or 'preparing rows · 2,304 of 4,800 rows · 1,210 rows/s'."""
    phase = status.get("phase")
    if not phase:
        return ""
    parts = [t(f"phase_{phase}", request), clock(status.get("phase_elapsed_s"))]
    p = status.get("progress") or {}
    if p.get("detail") == "reused":
        parts.append(t("phase_reused", request))
    elif p.get("detail") == "compiles":
        parts.append(t("phase_compiles", request))
    elif p.get("total"):
        done, total = p.get("done", 0), p["total"]
        if p.get("unit") == "bytes":
            done, total = f"{done / 2**20:,.0f}", f"{total / 2**20:,.0f}"
            parts.append(t("phase_progress", request, done=done, total=total, unit=t("unit_bytes", request)) +
                         f" ({100 * p.get('done', 0) / max(1, p['total']):.0f}%)")
        else:
            parts.append(t("phase_progress", request, done=f"{done:,}", total=f"{total:,}", unit=t("unit_rows", request)))
        if p.get("rate"):
            parts.append(t("phase_rate", request, rate=f"{p['rate']:,.0f}"))
    return " · ".join(parts)


def progress_line(status: dict, logs: list[dict], run_id: str, request=None) -> str:
    state = status.get("state", "created")
    head = f"**{run_id}** · `{t('state_' + state, request)}`"
    if state == "queued" and status.get("waiting_for") == "token":
        return f"{head} · {t('queued_needs_token', request)}"
    if state == "queued" and status.get("waiting_for") == "gpu_memory":
        needs = f"{status.get('needs_gb') or 0:.1f}"
        return f"{head} · {t('queued_gpu_memory', request, gb=needs)}"
    if state == "queued":
        wait = t("queued_wait", request, wait=clock(status["wait_s"])) if status.get("wait_s") is not None else ""
        return f"{head} · {t('queued_line', request, ahead=status.get('ahead', 0), wait=wait)}"
    step, total = status.get("step", 0), status.get("max_steps") or 0
    last = logs[-1] if logs else {}
    elapsed = status.get("elapsed_s") or last.get("elapsed_s")
    if state in runs.ACTIVE_STATES and status.get("started_at") and not elapsed:
        elapsed = time.time() - status["started_at"]
    eta = elapsed / step * (total - step) if step and total and elapsed else None
    pct = f" · {100 * step / total:.0f}%" if total else ""
    parts = [f"{head} · {t('progress_step', request)} **{step} / {total or '?'}**{pct}",
             t("progress_elapsed", request, elapsed=clock(elapsed),
               eta=clock(eta) if state in runs.ACTIVE_STATES else "–")]
    rates = [e["tokens_per_s"] for e in logs[-5:] if e.get("tokens_per_s")]
    if rates:
        parts.append(t("progress_tokens", request, rate=f"{sum(rates) / len(rates):,.0f}"))
    mfus = [e["mfu"] for e in logs[-5:] if e.get("mfu")]
    if mfus:  # on a GPU whose peak is known: how much of it the model's own arithmetic uses
        parts.append(t("progress_mfu", request, pct=f"{100 * sum(mfus) / len(mfus):.0f}"))
    if last.get("memory_per_gpu_gb"):  # several GPUs: each one's peak
        parts.append(t("progress_gpus", request, n=len(last["memory_per_gpu_gb"]),
                       each=" / ".join(f"{x:.1f}" for x in last["memory_per_gpu_gb"])))
    elif last.get("device") == "cuda":
        parts.append(t("progress_gpu", request, peak=last["peak_reserved_gb"], pct=last["peak_pct"],
                       total=last["total_gb"], train=last["peak_training_gb"]))
    elif last.get("device") == "cpu":
        parts.append(t("progress_cpu", request, peak=last["process_peak_gb"]))
    line = " · ".join(parts)
    if state in runs.ACTIVE_STATES and status.get("phase"):
        line += f"\n\n⏳ {phase_text(status, request)}"
    if total:
        filled = int(30 * step / total)
        line += "\n\n`" + "█" * filled + "░" * (30 - filled) + "`"
    return line


def summary_text(events: list[dict], status: dict, request=None, estimate: dict | None = None) -> str:
    """The chapter's printed summary lines, what data it used, where the time to step 1 went; with `estimate`
    (studio/timing.py: what the Train tab said before Start), the time it took against it."""
    lines = []
    last_drop = next((e for e in reversed(events) if e.get("event") == "data_drop"), None)
    for e in events:
        if e.get("event") == "model":
            lines.append(t("sum_trainable", request, trainable=e["trainable"], total=e["total"],
                           pct=100 * e["trainable"] / max(1, e["total"])))
        elif e.get("event") == "dataset" and e.get("used") is not None:
            how = t("sum_rows_sampled" if e["used"] < e["rows"] else "sum_rows_all", request)
            lines.append(t("sum_rows", request, used=e["used"], rows=e["rows"], how=how))
        elif e.get("event") == "dataset" and e.get("eval_rows"):
            lines.append(t("sum_eval_rows", request, n=e["eval_rows"]))
        elif e.get("event") == "dropped" and e.get("count"):
            lines.append(t("sum_dropped", request, count=e["count"], total=e["total"]))
        elif e.get("event") == "data_drop" and e is last_drop:  # data.drop (studio/checks.py); a resume says it again
            what = ", ".join(f"{t('check_' + code, request)} {n:,}" for code, n in e["counts"].items() if n)
            lines.append(t("sum_data_drop", request, total=e["total"], rows=e["rows"],
                           what=what or t("check_none", request)))
        elif e.get("event") == "preference":  # DPO/ORPO (studio/preference.py)
            lines.append(t("sum_preference", request, stage=e["stage"].upper(), beta=e["beta"], pairs=e["pairs"],
                           start=e.get("adapter_from") or t("adapter_from_base", request)))
        elif e.get("event") == "memory_start" and e.get("device") == "cuda":
            lines.append(t("sum_gpu", request, gpu=e["gpu_name"], total=e["total_gb"], reserved=e["start_reserved_gb"]))
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    if end:
        rt = end["train_runtime"]
        lines += [t("sum_seconds", request, s=rt), t("sum_minutes", request, m=rt / 60)]
        if end.get("train_loss") is not None:
            lines.append(t("sum_loss", request, loss=end["train_loss"]))
        rewarded = next((e for e in reversed(events) if e.get("event") == "log" and "rewards/margins" in e), None)
        if rewarded:  # a preference run: where its rewards ended
            lines.append(t("sum_rewards", request, accuracy=rewarded.get("rewards/accuracies", 0),
                           margin=rewarded["rewards/margins"], chosen=rewarded.get("rewards/chosen", 0),
                           rejected=rewarded.get("rewards/rejected", 0)))
        if end.get("device") == "cuda":
            lines += [t("sum_peak", request, v=end["peak_reserved_gb"]),
                      t("sum_peak_train", request, v=end["peak_training_gb"]),
                      t("sum_peak_pct", request, v=end["peak_pct"]),
                      t("sum_peak_train_pct", request, v=end["training_pct"])]
        else:
            lines.append(t("sum_cpu_peak", request, v=end.get("process_peak_gb")))
        if end.get("best_step"):
            lines.append(t("sum_best", request, step=end["best_step"], loss=end["best_eval_loss"]))
        if end.get("early_stopped"):
            lines.append(t("sum_early", request))
        if status.get("stop_reason"):
            kind, n = status["stop_reason"].split(":")
            lines.append(t("stopped_by_cap", request, why=t(f"cap_{kind}", request, n=n)))
        lines.append(t("adapter_saved", request))
    phases = status.get("phases") or []
    if phases:
        spent = " · ".join(f"{t('phase_' + p['phase'], request)} {p['seconds']:.1f} s" for p in phases
                           if p["phase"] != "save")
        lines.append(f"{t('phases_title', request)}: {spent}")
    actual = timing.actual_seconds(status)
    if end and estimate and estimate.get("seconds") and actual:
        lines.append(timing.versus(estimate, actual, lambda key, **kw: t(key, request, **kw), lang(request)))
    return "\n".join(f"- {x}" for x in lines if x)


def error_text(status: dict, request=None) -> str:
    if status.get("state") == "stopped" and status.get("stopped_in"):
        return t("stopped_early", request, phase=t(f"phase_{status['stopped_in']}", request))
    if status.get("state") != "failed":
        return ""
    hint = t(f"hint_{status.get('hint', 'crash')}", request)
    if status.get("data_error"):  # a problem in the data, with where it is
        error = say_data(data.DataError.from_dict(status["data_error"]), request)
    elif status.get("error_code"):
        error = t(status["error_code"], request, **(status.get("error_params") or {}))
    else:
        error = status.get("error", "failed")
    resumable = t("resumable_hint", request) if status.get("resumable") else ""
    return f"### ❌ {error}\n{hint}{resumable}\n\n```\n{status.get('traceback', '')[-3000:]}\n```"


def samples_table(events: list[dict], request=None, last: int = 6) -> str:
    """The fixed prompts' answers at each evaluation, newest last: one row per step."""
    rows = [e for e in events if e.get("event") == "samples"][-last:]
    if not rows:
        return ""
    prompts = rows[-1]["prompts"]

    def cell(text: str) -> str:
        text = " ".join(str(text).split())
        return (text[:90] + "…" if len(text) > 90 else text).replace("|", "\\|")

    head = f"**{t('samples_title', request)}**\n\n| {t('plot_step', request)} | " + \
        " | ".join(cell(p)[:40] for p in prompts) + " |\n|---" + "|---" * len(prompts) + "|\n"
    return head + "\n".join(f"| {e['step']} | " + " | ".join(cell(a) for a in e["answers"]) + " |" for e in rows)
