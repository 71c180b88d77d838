#!/usr/bin/env bash
# All GPU benchmarks in one device call (docs/benchmarks.md). From the repo root, on the GPU machine:
#
#   export PYTHONPATH=$PWD/.site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
#   bash bench/run_gpu.sh all      # everything (about 23 min on one H100: run A, B, C as separate calls)
#   bash bench/run_gpu.sh A        # models + benchmarks 1, 2, 3 + the first fit settings (~8 min)
#   bash bench/run_gpu.sh B        # worker fix, repeat pair, the preset through the worker, 0.6B (~9 min)
#   bash bench/run_gpu.sh C        # 3 interleaved bare / worker+fix pairs, the remaining fit settings (~9 min)
#
# Every benchmark runs in its own process under `timeout`; one that would pass BUDGET seconds is skipped.
# Results: $OUT/results.tar.gz (JSON of every benchmark, worker logs, metrics.jsonl, status.json), $OUT/log.txt.
set -u
PHASE=${1:-all}
. bench/gpu_env.sh
BIG=${BIG:-qwen3-4b}      # SMALL/BIG=tiny: CPU smoke test of this script
SMALL=${SMALL:-qwen3-0.6b}
W=${WARM:-4}; S=${STEPS:-14}; FW=${FIT_WARM:-3}; FS=${FIT_STEPS:-11}
FIT4B_A=${FIT4B_A:-"$BIG-16bit-mb8x1-gc_false $BIG-16bit-mb4x2-gc_false"}
FIT4B_B=${FIT4B_B:-"$BIG-4bit-mb8x1-gc_false $BIG-16bit-mb4x2-gc_unsloth"}
FIT06_B=${FIT06_B:-"$SMALL-4bit-mb2x4-gc_unsloth $SMALL-16bit-mb8x1-gc_false"}
FIT4B_C=${FIT4B_C:-"$BIG-16bit-mb8x1-gc_unsloth"}
FIT06_C=${FIT06_C:-"$SMALL-16bit-mb8x1-gc_unsloth"}
M4=$BENCH_TMP/$BIG
DATA=$BENCH_TMP/chat.jsonl

env_info() {
    nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version,clocks.sm,clocks.max.sm,power.limit \
        --format=csv
    $PY - <<'PY'
import json, subprocess, sys
sys.path.insert(0, ".")
from bench import gpu_common as C
from studio import fit
v = C.versions()
v.update(name="env", free_gib=fit.free_gpu_gb(), cpu_count=__import__("os").cpu_count())
print(json.dumps(v))
C.save_result(v, __import__("os").environ["BENCH_TMP"] + "/results/env.json")
PY
}

pack() {
    ( cd "$BENCH_TMP" && tar czf "$OUT/results.tar.gz" --exclude='*/adapter/*' --exclude='*/checkpoints/*' \
        results runs 2>/dev/null )
    $PY bench/gpu_common.py --summary "$R" || true
    $PY bench/gpu_fit_preset.py --report "$R" --json "$OUT/fit_report.json" || true
    ls -la "$OUT"
}

phase_A() {
    bench prepare 120 240 $PY bench/gpu_common.py --shapes $BIG
    bench bench1_bare 90 240 $PY bench/gpu_recipe_bare.py --model "$M4" --data "$DATA" --warmup $W --steps $S \
        --out "$R/bench1.json"
    bench bench2_studio 90 240 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $W --steps $S \
        --timeout 230 --out "$R/bench2.json"
    bench bench3_hf_peft 90 240 $PY bench/gpu_recipe_hf_peft.py --model "$M4" --data "$DATA" --warmup $W --steps $S \
        --out "$R/bench3.json"
    bench fit4b_A 60 300 $PY bench/gpu_fit_preset.py --run --shape $BIG --models "$BENCH_TMP" --out-dir "$R" \
        --only $FIT4B_A --steps $FS --warmup $FW --deadline "$DEADLINE" --need-s 70 --timeout 150
}

phase_B() {
    bench prepare 120 240 $PY bench/gpu_common.py --shapes $BIG $SMALL
    # the recommended worker diff (lazy token count), then a second bare/studio pair: run-to-run spread
    bench bench2_fix 100 200 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $W --steps $S \
        --timeout 190 --name "2b. studio worker + lazy token count" --out "$R/bench2_fix.json"
    bench bench1_bare_rep 100 200 $PY bench/gpu_recipe_bare.py --model "$M4" --data "$DATA" --warmup $W --steps $S \
        --name "1. bare Unsloth script (repeat)" --out "$R/bench1_rep.json"
    bench bench2_studio_rep 100 200 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $W \
        --steps $S --timeout 190 --name "2. studio worker (repeat)" --out "$R/bench2_rep.json"
    bench preset4b_studio 90 240 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $FW --steps $FS \
        --preset ${FREE_GB:+--free-gb $FREE_GB} --timeout 230 --name "preset via studio worker" --out "$R/preset4b.json"
    bench fit06_B 50 200 $PY bench/gpu_fit_preset.py --run --shape $SMALL --models "$BENCH_TMP" --out-dir "$R" \
        --only $FIT06_B --steps $FS --warmup $FW --deadline "$DEADLINE" --need-s 50 --timeout 120
    bench fit4b_B 60 300 $PY bench/gpu_fit_preset.py --run --shape $BIG --models "$BENCH_TMP" --out-dir "$R" \
        --only $FIT4B_B --steps $FS --warmup $FW --deadline "$DEADLINE" --need-s 75 --timeout 150
}

phase_C() {
    bench prepare 120 240 $PY bench/gpu_common.py --shapes $BIG $SMALL
    # interleaved repeats: bare script vs the worker with the recommended diff (process-to-process spread)
    for n in $(seq 2 $((1 + ${PAIRS:-3}))); do
        bench bench1_bare_r$n 90 200 $PY bench/gpu_recipe_bare.py --model "$M4" --data "$DATA" --warmup $W \
            --steps $S --name "1. bare Unsloth script (run $n)" --out "$R/bench1_r$n.json"
        bench bench2_fix_r$n 90 200 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $W \
            --steps $S --timeout 190 --name "2b. studio worker + lazy token count (run $n)" \
            --out "$R/bench2_fix_r$n.json"
    done
    bench fit4b_C 60 400 $PY bench/gpu_fit_preset.py --run --shape $BIG --models "$BENCH_TMP" --out-dir "$R" \
        --only $FIT4B_C --steps $FS --warmup $FW --deadline "$DEADLINE" --need-s 65 --timeout 150
    bench fit06_C 50 200 $PY bench/gpu_fit_preset.py --run --shape $SMALL --models "$BENCH_TMP" --out-dir "$R" \
        --only $FIT06_C --steps $FS --warmup $FW --deadline "$DEADLINE" --need-s 50 --timeout 120
}

phase_D() {
    # after the lazy token count moved into studio/train.py: interleaved bare / worker pairs, as the UI runs it
    bench prepare 120 240 $PY bench/gpu_common.py --shapes $BIG
    for n in $(seq 1 ${PAIRS:-2}); do
        bench bench1_bare_d$n 90 200 $PY bench/gpu_recipe_bare.py --model "$M4" --data "$DATA" --warmup $W \
            --steps $S --name "1. bare Unsloth script (D$n)" --out "$R/bench1_d$n.json"
        bench bench2_studio_d$n 90 200 $PY bench/gpu_recipe_studio.py --model "$M4" --data "$DATA" --warmup $W \
            --steps $S --timeout 190 --name "2. studio worker (D$n)" --out "$R/bench2_d$n.json"
    done
}

env_info 2>&1 | tail -n 5
case "$PHASE" in
    A) phase_A ;;
    B) phase_B ;;
    C) phase_C ;;
    D) phase_D ;;
    all) phase_A; phase_B; phase_C ;;
    *) echo "usage: $0 A|B|all"; exit 2 ;;
esac
pack
echo "== done in $(( $(date +%s) - START ))s"
