#!/usr/bin/env bash
# Round 3's GPU measurements (issues 18, 20, 21), one phase per device call. From the repo root on the GPU machine:
#
#   export PYTHONPATH=$PWD/.site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
#   bash bench/run_gpu_round3.sh chat     # chat: the studio's lean compiled step against every anchor (~8 min)
#   bash bench/run_gpu_round3.sh train    # training: where a step's time goes, bigger micro-batches, the fit
#                                         # estimate on 0.6B / 4B / 8B (~9 min)
#   bash bench/run_gpu_round3.sh extras   # export (4B: merged, GGUF f16, q8_0) and preference tuning (~9 min)
#
# Each benchmark runs in its own process under `timeout`; one that would pass BUDGET seconds is skipped.
# What comes back: $OUT/<phase>.txt (every benchmark's output) and $OUT/results-<phase>.tar.gz (JSON, logs).
set -u
PHASE=${1:-chat}
LOG=${OUT:-$PWD/bench-out}/$PHASE.txt
. bench/gpu_env.sh

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$LOG"

case "$PHASE" in
chat)
    bench chat 120 520 $PY bench/gpu_chat.py --shape "${SHAPE:-qwen3-4b}" \
        --cases ${CASES:-studio studio_modules unsloth16 unsloth16g hf16c studio4} \
        --budget-s $(( $(left) - 10 )) --json "$OUT/chat.json"
    ;;
train)
    bench prepare 120 200 $PY bench/gpu_common.py --shapes qwen3-4b qwen3-0.6b
    M=$BENCH_TMP/qwen3-4b; D=$BENCH_TMP/chat.jsonl
    bench profile_pick 80 150 $PY bench/gpu_recipe_bare.py --model "$M" --data "$D" --load-in-4bit 0 \
        --micro-batch 8 --accum 1 --gc false --steps 8 --warmup 3 --profile 6 --out "$R/fit-qwen3-4b-16bit-mb8x1-gc_false.json" \
        --name qwen3-4b-16bit-mb8x1-gc_false
    bench fit4b 90 330 $PY bench/gpu_fit_preset.py --run --shape qwen3-4b --out-dir "$R" --steps 9 --warmup 3 \
        --only qwen3-4b-16bit-mb16x1-gc_unsloth qwen3-4b-16bit-mb32x1-gc_unsloth qwen3-4b-16bit-mb16x1-gc_false \
        qwen3-4b-4bit-mb2x4-gc_unsloth --deadline $((DEADLINE - 60)) --need-s 70
    bench fit06 60 100 $PY bench/gpu_fit_preset.py --run --shape qwen3-0.6b --out-dir "$R" --steps 9 --warmup 3 \
        --only qwen3-0.6b-16bit-mb8x1-gc_false --deadline $((DEADLINE - 20)) --need-s 50
    $PY bench/gpu_fit_preset.py --report "$R" --json "$OUT/fit_report.json" 2>&1 | tee -a "$LOG"
    ;;
fit8b)
    bench prepare8b 150 240 $PY bench/gpu_common.py --shapes qwen3-8b
    bench fit8b 90 300 $PY bench/gpu_fit_preset.py --run --shape qwen3-8b --out-dir "$R" --steps 8 --warmup 3 \
        --only qwen3-8b-4bit-mb2x4-gc_unsloth qwen3-8b-16bit-mb8x1-gc_unsloth --deadline $((DEADLINE - 20)) --need-s 90
    $PY bench/gpu_fit_preset.py --report "$R" --json "$OUT/fit_report_8b.json" 2>&1 | tee -a "$LOG"
    ;;
extras)
    [ -f bench/gpu_export.py ] && bench export 200 300 $PY bench/gpu_export.py --shape qwen3-4b
    [ -f bench/gpu_preference.py ] && bench preference 150 280 $PY bench/gpu_preference.py
    ;;
esac
tar czf "$OUT/results-$PHASE.tar.gz" -C "$R" . 2>/dev/null  # every JSON and log, one file
echo "== total $(( $(date +%s) - START ))s" | tee -a "$LOG"
