"""Benchmark 4: the fit-to-GPU preset (studio/fit.py): estimate vs measured peak memory for several settings,
and the speed of the setting it picks vs the chapter's recipe.

    # on the GPU: measure the settings (each one a separate `bench/gpu_recipe_bare.py` process)
    python bench/gpu_fit_preset.py --run --shape qwen3-4b --models /tmp/studio-bench --out-dir RESULTS
    # anywhere (CPU is fine): the tables, from the measured JSON files
    python bench/gpu_fit_preset.py --report RESULTS [RESULTS2 ...]

Measured settings run through the bare script, whose CPU token counter records every micro-batch, so the
estimate can be checked two ways: "est. (UI)" is what the Train tab shows (largest micro-batch simulated from
the rows' lengths for a run of this many steps), "est. (realized)" uses the largest micro-batch the run
actually had: the memory model on its own. The speedup of the pick is measured through the studio worker
(`gpu_recipe_studio.py --preset`, the UI path) and through the bare script.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import gpu_common as C  # noqa: E402
from studio import fit  # noqa: E402

HERE = Path(__file__).resolve().parent

# (load_in_4bit, micro_batch, accum, gc); the recipe first
SETTINGS = {
    "qwen3-4b": [(1, 2, 4, "unsloth"), (0, 8, 1, "false"), (0, 4, 2, "false"), (1, 8, 1, "false"),
                 (0, 4, 2, "unsloth"), (0, 8, 1, "unsloth")],
    "qwen3-0.6b": [(1, 2, 4, "unsloth"), (0, 8, 1, "false"), (0, 8, 1, "unsloth")],
    "qwen3-8b": [(1, 2, 4, "unsloth"), (0, 8, 1, "unsloth"), (0, 4, 2, "false")],
}
# round 3 (issue 18): bigger micro-batches, which the host-bound padding-free path may favour
SETTINGS["qwen3-4b"] += [(0, 16, 1, "unsloth"), (0, 16, 1, "false"), (0, 32, 1, "unsloth")]


def setting_name(shape, s) -> str:
    q4, mb, acc, gc = s
    return f"{shape}-{'4bit' if q4 else '16bit'}-mb{mb}x{acc}-gc_{gc}"


def run(a) -> int:
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = str(Path(a.models) / a.shape)
    data = str(Path(a.models) / "chat.jsonl")
    settings = SETTINGS.get(a.shape, SETTINGS["qwen3-4b"])
    todo = settings[a.skip:]
    if a.only:
        todo = [s for s in settings if setting_name(a.shape, s) in a.only]
    for s in todo:
        name = setting_name(a.shape, s)
        dest = out / f"fit-{name}.json"
        if dest.exists():
            print(f"{name}: have {dest}")
            continue
        if a.deadline and time.time() > a.deadline - a.need_s:
            print(f"{name}: skipped, not enough time left")
            continue
        q4, mb, acc, gc = s
        cmd = [sys.executable, str(HERE / "gpu_recipe_bare.py"), "--model", model, "--data", data,
               "--steps", str(a.steps), "--warmup", str(a.warmup), "--load-in-4bit", str(q4), "--micro-batch",
               str(mb), "--accum", str(acc), "--gc", gc, "--name", name, "--out", str(dest)]
        t0 = time.time()
        with open(out / f"fit-{name}.log", "w") as log:
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=a.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        print(f"{name}: rc={rc} in {time.time() - t0:.0f}s", flush=True)
        if rc != 0:
            tail = (out / f"fit-{name}.log").read_text(errors="replace").splitlines()[-15:]
            print("\n".join(tail))
            oom = any("out of memory" in x.lower() for x in tail)
            C.save_result({"name": name, "failed": True, "rc": str(rc), "oom": oom}, dest)
    return 0


def load_results(dirs) -> list[dict]:
    res = []
    for d in dirs:
        for p in sorted(Path(d).glob("*.json")):
            try:
                r = json.loads(p.read_text())
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "name" in r:
                r["_file"] = str(p)
                res.append(r)
    return res


def shape_of(r) -> str:
    m = Path(str(r.get("model", ""))).name or str(r.get("name", "")).split("-4bit")[0].split("-16bit")[0]
    return m


def lengths_for(shape: str) -> list[int]:
    """Token lengths of the benchmark rows (+1: TRL appends the eos token), regenerated deterministically."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(C.TOKENIZER_SRC)
    return [x + 1 for x in C.token_lengths(tok, C.make_rows(tok, 256))]


def report(a) -> int:
    res = load_results(a.report)
    env = next((r for r in res if r.get("name") == "env"), {})
    free_gb = a.free_gb or env.get("free_gib") or 79.0
    lengths = lengths_for("any")
    rows = []
    measured = [r for r in res if r.get("runner") in ("bare", "studio") and "peak_reserved_gb" in r
                and not r.get("failed")]
    for r in measured:
        shp = shape_of(r)
        mc = fit.model_config_for(shp) or fit.KNOWN.get(shp)
        if mc is None:
            continue
        q4, mb, acc, gc = bool(r["load_in_4bit"]), int(r["micro_batch"]), int(r["accum"]), str(r["gc"])
        exp_t, _ = fit.largest_micro_batch(lengths, mb, 2048, micro_batches=int(r["steps"]) * acc)
        est_ui = fit.estimate(mc, 2048, q4, mb, gc, tokens=exp_t)
        realized = max(r["micro_tokens"]) if r.get("micro_tokens") else None
        est_real = fit.estimate(mc, 2048, q4, mb, gc, tokens=realized) if realized else None
        tps = fit.tokens_per_s(mc, q4, mb, gc, sum(lengths) / len(lengths))
        m = r["peak_reserved_gb"]
        rows.append({"name": r["name"], "shape": shp, "runner": r["runner"],
                     "setting": fit.Estimate(q4, mb, acc, gc, 0, 0, 0, 0, True).label,
                     "tokens_per_s": r.get("tokens_per_s"), "est_tps": tps, "measured_gb": m,
                     "est_ui_gb": est_ui, "err_ui": 100 * (est_ui - m) / m,
                     "largest_mb": realized, "sim_mb": exp_t,
                     "est_real_gb": est_real, "err_real": 100 * (est_real - m) / m if est_real else None})
    rows.sort(key=lambda x: (x["shape"], x["runner"], -(x["tokens_per_s"] or 0)))
    print(f"free GPU memory for the pick: {free_gb:.1f} GiB")
    print(C.table(rows, [("shape", "model", ""), ("runner", "runner", ""), ("setting", "setting", ""),
                         ("tokens_per_s", "measured tokens/s", ",.0f"), ("est_tps", "est. tokens/s", ",.0f"),
                         ("measured_gb", "measured peak GiB", ".2f"), ("est_ui_gb", "est. (UI) GiB", ".2f"),
                         ("err_ui", "error %", "+.1f"), ("largest_mb", "largest micro-batch", ",.0f"),
                         ("est_real_gb", "est. (realized) GiB", ".2f"), ("err_real", "error %", "+.1f")]))
    worst = max((abs(x["err_ui"]) for x in rows), default=None)
    worst_r = max((abs(x["err_real"]) for x in rows if x["err_real"] is not None), default=None)
    print(f"largest |error|: UI estimate {worst:.1f}%, realized-batch estimate {worst_r:.1f}%" if rows else "no rows")

    picks = []

    def mean(xs):
        xs = [x for x in xs if x]
        return sum(xs) / len(xs) if xs else None
    for shp in sorted({x["shape"] for x in rows}):
        mc = fit.model_config_for(shp) or fit.KNOWN[shp]
        best = fit.pick(mc, 2048, free_gb, 8, lengths, steps=60)
        mine = [r for r in measured if shape_of(r) == shp]
        is_rec = [r for r in mine
                  if (bool(r["load_in_4bit"]), int(r["micro_batch"]), str(r["gc"])) == (True, 2, "unsloth")]
        is_best = [r for r in mine if (bool(r["load_in_4bit"]), int(r["micro_batch"]), str(r["gc"])) == (
            best.load_in_4bit, best.micro_batch, best.gradient_checkpointing)]
        for runner, rec_runs, best_runs in (
                ("bare", [r for r in is_rec if r["runner"] == "bare"], [r for r in is_best if r["runner"] == "bare"]),
                ("studio", [r for r in is_rec if r["runner"] == "studio" and not r.get("lazy_token_count")],
                 [r for r in is_best if r["runner"] == "studio"]),
                ("all runs", is_rec, is_best)):
            a_, b_ = mean([r.get("tokens_per_s") for r in best_runs]), mean([r.get("tokens_per_s") for r in rec_runs])
            if a_ and b_:
                picks.append({"shape": shp, "runner": f"{runner} ({len(best_runs)} / {len(rec_runs)} runs)",
                              "pick": best.label, "est_peak": best.peak_gb, "worst": best.worst_gb,
                              "measured_gb": max(r["peak_reserved_gb"] for r in best_runs), "tps": a_,
                              "recipe_tps": b_, "speedup": a_ / b_})
    print()
    print(C.table(picks, [("shape", "model", ""), ("runner", "measured through (pick / recipe)", ""),
                          ("pick", "picked setting", ""),
                          ("est_peak", "est. peak GiB", ".2f"), ("worst", "worst case GiB", ".2f"),
                          ("measured_gb", "measured peak GiB", ".2f"), ("tps", "mean tokens/s", ",.0f"),
                          ("recipe_tps", "recipe mean tokens/s", ",.0f"), ("speedup", "speedup", ".2f")]))
    failed = [r for r in res if r.get("failed")]
    for r in failed:
        print(f"FAILED: {r['name']} rc={r.get('rc')} oom={r.get('oom')}")
    if a.json:
        C.save_result({"rows": rows, "picks": picks, "free_gb": free_gb}, a.json)
    return 0


def calibrate(a) -> int:
    """Least-squares fit (relative error) of studio/fit.py's coefficients on the measured settings.

    Memory: peak - weights - LoRA = FIXED + T * (ACT_NO_CKPT * act * layers + LOGIT_NO_CKPT * vocab) * 2 B  (off)
                                  = FIXED + T * (ACT_ONE_LAYER * act + 4 h + LOGIT_CKPT * vocab) * 2 B      (ckpt)
    with T the largest micro-batch the run had. Speed: seconds per micro-batch
        = HOST_S_PER_LAYER * layers + PFLOPs * (S_PER_PFLOP + RECOMPUTE_S_PER_PFLOP if ckpt) + 4-bit dequant
    (DEQUANT_S_PER_GPARAM fixed: reading NF4 and writing bf16 at ~3 TB/s). Prints the constants to paste."""
    import numpy as np
    res = [r for r in load_results(a.calibrate) if r.get("runner") == "bare" and "peak_reserved_gb" in r]
    lengths = lengths_for("any")
    mean_len = sum(lengths) / len(lengths)
    mem_x, mem_y, spd = [], [], {}
    for r in res:
        s = fit.shape(fit.model_config_for(shape_of(r)) or fit.KNOWN[shape_of(r)])
        q4, gc, t = bool(r["load_in_4bit"]), str(r["gc"]), float(max(r["micro_tokens"]))
        base = fit.weights_gb(s, q4) + s["lora_per_r"] * 8 * fit.LORA_BYTES_PER_PARAM / fit.GIB
        y = (r["peak_reserved_gb"] - base) * fit.GIB
        ck = gc != "false"
        row = [1 * fit.GIB, 0 if ck else t * s["act_elems"] * 2 * s["layers"], 0 if ck else t * s["vocab"],
               t * s["act_elems"] * 2 if ck else 0, t * s["vocab"] if ck else 0]
        y -= (fit.ACT_OFFLOAD_BUF * 2 * s["h"] * t) if gc == "unsloth" else 0
        mem_x.append([v / r["peak_reserved_gb"] for v in row])
        mem_y.append(y / r["peak_reserved_gb"])
        key = (shape_of(r), q4, int(r["micro_batch"]), gc)
        spd.setdefault(key, []).append(r)
    c, *_ = np.linalg.lstsq(np.array(mem_x), np.array(mem_y), rcond=None)
    names = ["FIXED_GB", "ACT_NO_CKPT", "LOGIT_NO_CKPT", "ACT_ONE_LAYER", "LOGIT_CKPT"]
    print("memory:", ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, c)))
    # speed: the mean tokens/s of each setting (bare and studio runs alike)
    for r in load_results(a.calibrate):
        if r.get("runner") == "studio" and r.get("tokens_per_s") and r.get("state") == "completed":
            key = (shape_of(r), bool(r["load_in_4bit"]), int(r["micro_batch"]), str(r["gc"]))
            spd.setdefault(key, []).append(r)
    X, y = [], []
    for (shp, q4, mb, gc), rs in spd.items():
        s = fit.shape(fit.model_config_for(shp) or fit.KNOWN[shp])
        tps = sum(r["tokens_per_s"] for r in rs) / len(rs)
        t_micro = mb * mean_len
        sec = t_micro / tps - (fit.DEQUANT_S_PER_GPARAM * s["linear"] / 1e9 * (3 if gc != "false" else 2) if q4 else 0)
        pf = t_micro * (4 * s["params"] + 6 * s["layers"] * s["q"] * mean_len / 2) / 1e15
        X.append([s["layers"] / sec, pf / sec, pf / sec if gc != "false" else 0])
        y.append(1.0)
        print(f"  speed point {shp} {'4bit' if q4 else '16bit'} mb{mb} {gc}: {tps:,.0f} tokens/s over {len(rs)} runs")
    c, *_ = np.linalg.lstsq(np.array(X), np.array(y), rcond=None)
    print("speed:", ", ".join(f"{n} = {v:.4g}" for n, v in zip(["HOST_S_PER_LAYER", "S_PER_PFLOP",
                                                                   "RECOMPUTE_S_PER_PFLOP"], c)))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--shape", default="qwen3-4b", choices=sorted(C.SHAPES))
    ap.add_argument("--models", default=os.environ.get("BENCH_TMP", "/tmp/studio-bench"))
    ap.add_argument("--out-dir", default="bench-results")
    ap.add_argument("--steps", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--skip", type=int, default=0, help="skip the first N settings (the recipe is benchmark 1)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--deadline", type=float, default=0, help="epoch seconds; settings that would pass it are skipped")
    ap.add_argument("--need-s", type=float, default=75)
    ap.add_argument("--report", nargs="*", default=None)
    ap.add_argument("--free-gb", type=float, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--calibrate", nargs="*", default=None, help="fit studio/fit.py's coefficients on these results")
    a = ap.parse_args(argv)
    if a.calibrate is not None:
        return calibrate(a)
    if a.report is not None:
        return report(a)
    if a.run:
        return run(a)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
