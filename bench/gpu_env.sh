# Sourced by the GPU run scripts (bench/run_gpu*.sh): the environment, the time budget, and `bench`, which runs
# one benchmark in its own process under `timeout` and skips it when the budget has too little left.
OUT=${OUT:-$PWD/bench-out}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD/.site:$PWD} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export BENCH_TMP=${BENCH_TMP:-/tmp/studio-bench}
PY=${PY:-python3}
R=$BENCH_TMP/results
mkdir -p "$R"
START=$(date +%s)
BUDGET=${BUDGET:-540}
DEADLINE=$((START + BUDGET))
LOG=${LOG:-/dev/null}  # a script may name a file that collects every benchmark's output

left() { echo $((DEADLINE - $(date +%s))); }
# bench NAME NEED_S LIMIT_S cmd...   (skips when fewer than NEED_S seconds are left; returns the command's status)
# A script may set BENCH_SHOW (the lines of a result to print), BENCH_KILL_AFTER and BENCH_TAIL before calling it.
bench() {
    local name=$1 need=$2 lim=$3; shift 3
    local l; l=$(left)
    if [ "$l" -lt "$need" ]; then echo "== SKIP $name (${l}s left, needs ${need}s)" | tee -a "$LOG"; return 1; fi
    [ "$lim" -gt $((l - 5)) ] && lim=$((l - 5))
    echo "== $name (limit ${lim}s, $(date +%T))" | tee -a "$LOG"
    local t; t=$(date +%s)
    timeout -k "${BENCH_KILL_AFTER:-10}" "$lim" "$@" > "$R/$name.log" 2>&1
    local rc=$?
    grep -v -E "Warning|warn\(|^\s*$" "$R/$name.log" >> "$LOG"
    echo "== $name rc=$rc in $(( $(date +%s) - t ))s" | tee -a "$LOG"
    grep -E "${BENCH_SHOW:-^\|}" "$R/$name.log" | tail -n "${BENCH_SHOW_LINES:-3}"
    [ $rc -ne 0 ] && tail -n "${BENCH_TAIL:-25}" "$R/$name.log"
    return $rc
}
