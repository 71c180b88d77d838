#!/usr/bin/env bash
# Multi-GPU benchmarks (issue 10) in one device call, on a 4-GPU (or 2-GPU) H100 machine. From the repo root:
#
#   export PYTHONPATH=$PWD/.site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
#   bash bench/run_multi_gpu.sh            # everything that fits in BUDGET seconds (default 540)
#   bash bench/run_multi_gpu.sh scaling    # only the Qwen3-4B runs (ddp1, ddp2, ddp4, nodes2; ~5 min)
#   bash bench/run_multi_gpu.sh fsdp2      # only the Qwen3-32B FSDP2 run (~4 min)
#   REPEAT=1 bash bench/run_multi_gpu.sh scaling   # + ddp1 and ddp2 once more (process-to-process spread)
#   PLAIN=1 bash bench/run_multi_gpu.sh scaling    # + ddp2 and ddp4 without length balancing (its effect)
#
# Every run is the studio worker launched by studio.distributed.launch_command (what the Train tab runs),
# in its own process under `timeout`; one that would pass BUDGET is skipped and said so. In order:
#   ddp1     1 GPU, Qwen3-4B shape, fit preset (16-bit, micro-batch 8, no checkpointing), accumulation 2
#   ddp2     2 GPUs, DDP, same per-GPU micro-batch, accumulation 1: same effective batch (16) and rows as ddp1
#   ddp4     4 GPUs, DDP, accumulation 1 (skipped with fewer than 4 GPUs)
#            (ddp2 and ddp4 balance each step's rows across ranks, the studio's default; PLAIN=1 adds
#            ddp2_plain and ddp4_plain without it, the earlier behaviour)
#   nodes2   two torchrun "nodes" on this machine, one GPU each (CUDA_VISIBLE_DEVICES), static rendezvous on
#            127.0.0.1: the same run as ddp2
#   fsdp2_32b  Qwen3-32B shape (random weights, built as safetensors shards in /dev/shm or /tmp), native
#            FSDP2 over 2 GPUs, 16-bit, micro-batch FSDP_MB (4) x 1, Unsloth's offloaded checkpointing
# Throughput baseline: ddp1 runs micro-batch 8 with 2 accumulation steps, so that it is also the loss
# reference for ddp2 at the same effective batch; per-GPU work per micro-batch is identical to ddp2/ddp4.
# Results: $OUT/multi_results.tar.gz (JSON, worker logs, metrics.jsonl, status.json), the report on stdout.
# NCCL settings are left as they are (NVLink multicast stays off).
set -u
PHASE=${1:-all}
. bench/gpu_env.sh
SHAPE=${SHAPE:-qwen3-4b}          # SHAPE=tiny BIG_SHAPE=tiny-untied: CPU smoke test of this script
BIG_SHAPE=${BIG_SHAPE:-qwen3-32b}
W=${WARM:-4}; S=${STEPS:-12}
MB=${MB:-8}; GC=${GC:-false}
FSDP_MB=${FSDP_MB:-4}; FSDP_GC=${FSDP_GC:-unsloth}; FSDP_STEPS=${FSDP_STEPS:-8}; FSDP_WARM=${FSDP_WARM:-3}
NEED_32B=${NEED_32B:-230}         # seconds the 32B build + run needs
M=$BENCH_TMP/$SHAPE
DATA=$BENCH_TMP/chat.jsonl
NGPU=${NGPU:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || echo 0)}

BENCH_KILL_AFTER=15 BENCH_SHOW='^\||^state=|^node ' BENCH_SHOW_LINES=6 BENCH_TAIL=30
run() {  # run NAME NEED LIMIT worker-args...
    local name=$1 need=$2 lim=$3; shift 3
    bench "$name" "$need" "$lim" $PY bench/gpu_multi.py run --name "$name" --out "$R/multi-$name.json" \
        --timeout $((lim - 10)) "$@"
}

echo "== GPUs: $NGPU; budget ${BUDGET}s"
nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv 2>/dev/null
nvidia-smi topo -m 2>/dev/null | head -n 8
$PY -c "import sys; sys.path.insert(0, '.'); from bench import gpu_common as C; import json; print(json.dumps(C.versions()))" 2>&1 | tail -n 1

phase_scaling() {
bench prepare 100 200 $PY bench/gpu_common.py --shapes $SHAPE
COMMON=(--model "$M" --data "$DATA" --micro-batch $MB --gc $GC --steps $S --warmup $W)
run ddp1 70 150 "${COMMON[@]}" --gpus 1 --accum 2
if [ "$NGPU" -ge 2 ] || [ "${FORCE_CPU:-0}" = 1 ]; then
    run ddp2 70 150 "${COMMON[@]}" --gpus 2 --accum 1
else
    echo "== SKIP ddp2 (fewer than 2 GPUs)"
fi
if [ "$NGPU" -ge 4 ]; then
    run ddp4 70 150 "${COMMON[@]}" --gpus 4 --accum 1
else
    echo "== SKIP ddp4 (fewer than 4 GPUs)"
fi
if [ "${PLAIN:-0}" = 1 ]; then
    [ "$NGPU" -ge 4 ] && run ddp4_plain 70 150 "${COMMON[@]}" --gpus 4 --accum 1 --balance 0
    { [ "$NGPU" -ge 2 ] || [ "${FORCE_CPU:-0}" = 1 ]; } && run ddp2_plain 70 150 "${COMMON[@]}" --gpus 2 --accum 1 --balance 0
fi
if [ "$NGPU" -ge 2 ] || [ "${FORCE_CPU:-0}" = 1 ]; then
    run nodes2 70 150 "${COMMON[@]}" --gpus 1 --nodes 2 --accum 1
fi
if [ "${REPEAT:-0}" = 1 ]; then
    run ddp1_rep 70 150 "${COMMON[@]}" --gpus 1 --accum 2
    [ "$NGPU" -ge 2 ] && run ddp2_rep 70 150 "${COMMON[@]}" --gpus 2 --accum 1
fi
}

# FSDP2 on the big shape: built straight to safetensors shards (one layer per file), in RAM when it fits
phase_fsdp2() {
[ -f "$DATA" ] || bench data 30 120 $PY bench/gpu_common.py --shapes tiny --out "$BENCH_TMP"
if [ "$NGPU" -ge 2 ] || [ "${FORCE_CPU:-0}" = 1 ]; then
    BIGDIR=${BIGDIR:-}
    if [ -z "$BIGDIR" ]; then
        shm_free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}')
        if [ "${shm_free:-0}" -ge 75 ]; then BIGDIR=/dev/shm/studio-$BIG_SHAPE; else BIGDIR=$BENCH_TMP/$BIG_SHAPE; fi
    fi
    if [ "$(left)" -lt "$NEED_32B" ]; then
        echo "== SKIP fsdp2_32b ($(left)s left, needs ${NEED_32B}s for the build and the run)"
    elif bench build_big 60 150 $PY bench/gpu_multi.py build --shape "$BIG_SHAPE" --out "$BIGDIR"; then
        run fsdp2_32b 80 300 --model "$BIGDIR" --data "$DATA" --gpus 2 --devices 0,1 --strategy fsdp2 \
            --micro-batch $FSDP_MB --accum 1 --gc $FSDP_GC --steps $FSDP_STEPS --warmup $FSDP_WARM
    fi
    case "$BIGDIR" in /dev/shm/*) rm -rf "$BIGDIR" ;; esac
else
    echo "== SKIP fsdp2_32b (fewer than 2 GPUs)"
fi
}

case "$PHASE" in
    all) phase_scaling; phase_fsdp2 ;;
    scaling) phase_scaling ;;
    fsdp2) phase_fsdp2 ;;
    *) echo "usage: $0 [all|scaling|fsdp2]"; exit 2 ;;
esac

echo
echo "== report"
$PY bench/gpu_multi.py report "$R"
( cd "$BENCH_TMP" && tar czf "$OUT/multi_results.tar.gz" --exclude='*/adapter/*' --exclude='*/checkpoints/*' \
    results runs 2>/dev/null )
ls -la "$OUT"
echo "== done in $(( $(date +%s) - START ))s"
