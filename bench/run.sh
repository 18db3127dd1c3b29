#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: the benchmarks behind BENCHMARKS.md (`make bench`).
#
#   quick (default, a few minutes): sgemm/bandwidth reference, inference on
#       stories260K and s15M (pp128, tg64 at 1 and 2 threads, decode with
#       merged / 1, 2, 4 unmerged rank-16 adapters), LoRA training on s15M 4x256,
#       and the hostile-input budgets (bench_bounds: a 100k-entry lexicon's
#       load time, the peak RSS of generate on a 2^24-context header);
#   BENCH_FULL=1: also s110M inference and s110M training 1x256 and 4x256,
#       3 alternating rounds of the training benchmarks;
#   always: LoRA training throughput and padding in the three --pack modes on
#       the example scene data (bench/pack.sh), and the composition rules
#       compared on a generated scene corpus (bench/compose.sh, ~3 min), and
#       serving throughput against the number of distinct adapters
#       (bench/serve_adapters.sh, ~3 min; s110M too with BENCH_FULL=1), and
#       data-parallel training, 1 vs 2 processes against 2 threads, where
#       mpirun and the MPI build of the CLI exist (bench/train_dp.sh, ~2 min;
#       s110M too with BENCH_FULL=1).
#
# Environment:
#   BENCH_LLAMACPP=DIR  a llama.cpp checkout you built (DIR/build/bin/llama-bench,
#                    llama-server): its server beside ours in serve_adapters.sh,
#                    and llama-bench beside bench_infer on the same f32 and
#                    quantized files (bench/llamacpp.sh); never downloaded here;
#   BENCH_PEER=1     also run the PyTorch peer (../shared/bench/bench.py) on the
#                    training shapes, alternating with ours in the same run;
#                    it needs python3-torch, python3-numpy and libopenblas0-openmp.
#                    This script never installs them (installing another
#                    OpenBLAS flavour changes the system's BLAS alternatives):
#                    when they are missing it says which and runs without the peer;
#   BENCH_RUNS=N     inference runs per configuration (default 5);
#   BENCH_ROUNDS=N   alternating training rounds (default 1 quick, 3 full);
#   BENCH_STEPS=N    timed training steps per run (default 5, after 2 warm-up);
#   BENCH_QUIET=1    the machine is shared: before each measurement wait (up to
#                    BENCH_QUIET_MAX s, default 900) until other processes use
#                    < 0.1 core, and repeat a measurement (up to BENCH_RETRIES
#                    times, default 2) when other processes used more than
#                    BENCH_MAX_OTHER cores (default 0.25) during its timed part;
#                    every attempt is kept in the results, flagged clean or not;
#   BENCH_PROFILE=1  also record perf profiles (decode and a training step)
#                    into bench/out/profile-*.txt;
#   BENCH_AVX2=1     also build an AVX2-only copy (-march=znver3: what
#                    -march=native gives on the Zen 3 machines of the quoted figures; no
#                    AVX-512) in build-avx2/ and run
#                    the s15M (and, with BENCH_FULL, s110M) inference there
#                    at its AVX2 level (HYPERLORA_ISA=avx2: the kernels are
#                    dispatched at run time and would pick AVX-512 here)
#                    (default: on with BENCH_FULL when the CPU has AVX2).
# s15M and s110M inference run in both weight layouts (packed, rows).
# Everything generated goes to bench/out/ (random models, merged models, the
# JSONL results and a log); results.jsonl and summary.md are the latest run's.
# The results are also kept as bench/reports/UARCH-STAMP.jsonl, their first
# record the machine from `hyperlora info --json`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
OUT="$ROOT/bench/out"
TOK="$SHARED/models/llama2-tokenizer/tokenizer.bin"
S260K="$SHARED/models/stories260K/stories260K-f32.gguf"
PEER_PY="$SHARED/bench/bench.py"
FULL=${BENCH_FULL:-0}
PEER=${BENCH_PEER:-0}
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then AVX2=${BENCH_AVX2:-$FULL}; else AVX2=0; fi
RUNS=${BENCH_RUNS:-5}
STEPS=${BENCH_STEPS:-5}
if [ "$FULL" = 1 ]; then ROUNDS=${BENCH_ROUNDS:-3}; else ROUNDS=${BENCH_ROUNDS:-1}; fi
THREADS=2
QUIET=${BENCH_QUIET:-0}
QUIET_MAX=${BENCH_QUIET_MAX:-900}
MAX_OTHER=${BENCH_MAX_OTHER:-0.25}
RETRIES=${BENCH_RETRIES:-2}
OPENBLAS_OMP_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp
J="$ROOT/bench/jsonl.py"

mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES="$OUT/results-$STAMP.jsonl"
LOG="$OUT/bench-$STAMP.log"
: >"$RES"
exec > >(tee "$LOG") 2>&1
T_START=$(date +%s)
say() { printf '\n== %s (%s, +%ds)\n' "$*" "$(date -u +%H:%M:%S)" $(($(date +%s) - T_START)); }

# ---------------------------------------------------------------- build
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j "$(nproc)" --target hyperlora bench_infer bench_train bench_sgemm bench_kernels bench_bounds >/dev/null
HL="$BUILD/hyperlora"

say "machine"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|CPU family|Model:|L2|L3|Flags)' | sed 's/^Flags:.*\(avx2\).*\(avx512f\).*/Flags: ... avx2 ... avx512f .../' || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); mode: $([ "$FULL" = 1 ] && echo full || echo quick); peer: $PEER; rounds: $ROUNDS"
"$HL" --version | tail -n 1 # the SIMD level the kernels run at (chosen at run time in a portable build)
python3 "$J" meta stamp="$STAMP" cpu="$(lscpu | sed -n 's/^Model name: *//p')" ncpu="$(nproc)" kernel="$(uname -r)" \
    full="$FULL" peer="$PEER" runs="$RUNS" rounds="$ROUNDS" steps="$STEPS" \
    commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
    dirty_files="$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l)" >>"$RES"
# The machine as the engine sees it: cpuid's microarchitecture, the kernel
# level, the BLAS and the weight layouts chosen for them (hyperlora info).
INFO=$("$HL" info --json || echo '{}')
echo "$INFO" | python3 -c 'import json, sys; r = json.load(sys.stdin); r["bench"] = "machine"; print(json.dumps(r))' >>"$RES" || true
UARCH=$(echo "$INFO" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cpu"]["uarch"])' 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- models
model() { # name preset
    local f="$OUT/$1.gguf"
    if [ ! -s "$f" ] || [ "$HL" -nt "$f" ]; then
        "$HL" init-model --preset "$2" --tokenizer "$TOK" --seed 0 -o "$f.tmp" >&2
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}
S15M=$(model s15M s15M)
if [ "$FULL" = 1 ]; then S110M=$(model s110M s110M); fi

# ---------------------------------------------------------------- peer
peer_ok=0
if [ "$PEER" = 1 ]; then
    have_peer() { /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null && [ -e "$OPENBLAS_OMP_DIR/libblas.so.3" ]; }
    if ! have_peer; then
        peer_missing=()
        for p in python3-torch python3-numpy libopenblas0-openmp; do
            dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || peer_missing+=("$p")
        done
        peer_missing=("${peer_missing[@]:-python3-torch python3-numpy libopenblas0-openmp}")
        echo "peer: BENCH_PEER=1 would need: ${peer_missing[*]}. Not installed, and this script installs" \
            "nothing (libopenblas0-openmp would change the system's BLAS alternatives). To run the peer:" \
            "apt-get install ${peer_missing[*]}, then run again."
    fi
    if have_peer && [ -f "$PEER_PY" ]; then peer_ok=1; else echo "peer unavailable: skipping it"; fi
fi

# Busy CPU cores of the whole machine over a 3-s sample (we are idle meanwhile).
busy_cores() {
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 3
    read -r -a b < <(head -n 1 /proc/stat)
    awk -v d=$(((b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7]))) \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz / 3 }'
}

# With BENCH_QUIET=1: wait (up to BENCH_QUIET_MAX s) until other processes use < 0.1 core.
wait_quiet() {
    [ "$QUIET" = 1 ] || return 0
    local t0 b
    t0=$(date +%s)
    while b=$(busy_cores) && awk -v b="$b" 'BEGIN { exit !(b >= 0.1) }'; do
        if [ $(($(date +%s) - t0)) -ge "$QUIET_MAX" ]; then
            echo "   (machine still busy: $b cores after ${QUIET_MAX}s; running anyway)"
            return 0
        fi
        sleep 5
    done
    echo "   (quiet after $(($(date +%s) - t0)) s: $b busy cores)"
}

# Runs "$@" (which appends JSON lines to $TMPJ) until the CPU used by other
# processes during its timed regions stays at or below MAX_OTHER cores (with
# BENCH_QUIET=1; at most 1 + RETRIES attempts), and moves every attempt's
# records to $RES with attempt and clean fields. $1 is the record field that
# holds its "other cores".
TMPJ="$OUT/.attempt-$$.jsonl"
attempts() {
    local other_field=$1 attempt worst clean
    shift
    for ((attempt = 1; ; attempt++)); do
        wait_quiet
        : >"$TMPJ"
        "$@" || true
        worst=$(python3 "$J" worst "$TMPJ" "$other_field")
        clean=$(awk -v w="$worst" -v m="$MAX_OTHER" 'BEGIN { print (w <= m) ? "true" : "false" }')
        python3 "$J" tag "$TMPJ" attempt="$attempt" clean="$clean" >>"$RES"
        if [ "$clean" = true ] || [ "$QUIET" != 1 ] || [ "$attempt" -gt "$RETRIES" ]; then break; fi
        echo "   (other processes used up to $worst cores during the timed part: repeating, attempt $((attempt + 1)))"
    done
    rm -f "$TMPJ"
}

peer_once() { # shape batch round
    local line
    if line=$(cd "$SHARED/bench" && PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
        LD_LIBRARY_PATH="$OPENBLAS_OMP_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        /usr/bin/python3 "$PEER_PY" one --shape "$1" --mode lora --batch "$2" --threads $THREADS \
        --steps "$STEPS" --warmup 2 | tail -n 1) && [ -n "$line" ]; then
        echo "$line" | python3 "$J" peer "$3" >>"$TMPJ" || echo "pytorch peer: unreadable output"
    else
        echo "pytorch peer failed on $1 b$2"
    fi
}

ours_once() { # name model batch mflop round
    local tmp="$OUT/.train-$$.jsonl"
    : >"$tmp"
    "$BUILD/bench_train" -m "$2" --name "$1" --batch "$3" --ctx 256 --threads $THREADS --rank 8 --alpha 16 \
        --targets q,v,o,gate,up,down --warmup 2 --steps "$STEPS" --mflop "$4" --json "$tmp" 2>>"$LOG.steps" || true
    python3 "$J" tag "$tmp" round="$5" >>"$TMPJ"
    rm -f "$tmp"
}

run_peer() { attempts other_cores_max peer_once "$@"; }
run_ours() { attempts other_cores_max ours_once "$@"; }
run_infer() { attempts other_cores "$BUILD/bench_infer" "$@" --json "$TMPJ"; }

# ---------------------------------------------------------------- reference points
say "sgemm peak and read bandwidth"
wait_quiet
"$BUILD/bench_sgemm" --threads $THREADS --runs 5 --json "$RES"
if [ -e "$OPENBLAS_OMP_DIR/libopenblas.so.0" ]; then # the OpenBLAS build the peer uses
    wait_quiet
    "$BUILD/bench_sgemm" --threads $THREADS --runs 5 --blas-lib "$OPENBLAS_OMP_DIR/libopenblas.so.0" --no-bandwidth \
        --json "$RES"
fi

# ---------------------------------------------------------------- inference
say "inference: stories260K"
run_infer -m "$S260K" --name stories260K --runs "$RUNS" --threads 1,2 --adapters --workdir "$OUT"
say "inference: s15M"
run_infer -m "$S15M" --name s15M --runs "$RUNS" --threads 1,2 --weights packed,rows --adapters --workdir "$OUT"
if [ "$FULL" = 1 ]; then
    say "inference: s110M"
    run_infer -m "$S110M" --name s110M --runs "$RUNS" --threads 1,2 --weights packed,rows --adapters --workdir "$OUT"
fi
if [ "$AVX2" = 1 ]; then
    AVX2_BUILD="$ROOT/build-avx2"
    say "inference, AVX2-only build ($AVX2_BUILD)"
    cmake -S "$ROOT" -B "$AVX2_BUILD" -DCMAKE_BUILD_TYPE=Release -DHL_NATIVE=OFF -DCMAKE_C_FLAGS=-march=znver3 >/dev/null
    cmake --build "$AVX2_BUILD" -j "$(nproc)" --target bench_infer >/dev/null
    AVX2_MODELS=("s15M $S15M")
    if [ "$FULL" = 1 ]; then AVX2_MODELS+=("s110M $S110M"); fi
    for spec in "${AVX2_MODELS[@]}"; do
        read -r name path <<<"$spec"
        attempts other_cores env HYPERLORA_ISA=avx2 "$AVX2_BUILD/bench_infer" -m "$path" --name "$name (AVX2 build)" --runs "$RUNS" \
            --threads 2 --weights packed,rows --json "$TMPJ"
    done
fi

# ---------------------------------------------------------------- training
TRAIN=("s15M $S15M 4 63")
if [ "$FULL" = 1 ]; then TRAIN+=("s110M $S110M 1 448" "s110M $S110M 4 448"); fi
for ((round = 1; round <= ROUNDS; round++)); do
    for spec in "${TRAIN[@]}"; do
        read -r name path batch mflop <<<"$spec"
        say "training round $round/$ROUNDS: $name ${batch}x256"
        # alternate who goes first, so that neither always runs on a warmer machine
        if [ "$peer_ok" = 1 ] && [ $((round % 2)) = 0 ]; then run_peer "$name" "$batch" "$round"; fi
        run_ours "$name" "$path" "$batch" "$mflop" "$round"
        if [ "$peer_ok" = 1 ] && [ $((round % 2)) = 1 ]; then run_peer "$name" "$batch" "$round"; fi
    done
done

# ---------------------------------------------------------------- where the time goes
# bench_kernels replays one step's / one token's kernel calls; the measured
# medians from above (clean attempts) show what its table does not cover.
kernels() { # shape batch
    local step token
    step=$(python3 "$J" median "$RES" median_step_s bench='"train"' impl='"hyperlora"' model="\"$1\"" batch="$2")
    token=$(python3 "$J" median "$RES" inv:tok_s bench='"infer"' model="\"$1\"" section='"speed"' \
        variant='"base"' weights='"packed"' threads="$THREADS" test^=tg)
    say "kernel breakdown (bench_kernels): $1 ${2}x256"
    wait_quiet
    "$BUILD/bench_kernels" --shape "$1" --batch "$2" --threads $THREADS --runs 3 --step-s "$step" --token-s "$token" |
        tee "$OUT/kernels-$1.txt"
}
kernels s15M 4
if [ "$FULL" = 1 ]; then kernels s110M 1; fi

# ---------------------------------------------------------------- row packing
# LoRA training on the example scene data in the three --pack modes (pack.sh).
say "row packing: docs, none, stream on examples/scenes/train.jsonl"
wait_quiet
bash "$ROOT/bench/pack.sh" "$BUILD" "$OUT" || true

# ---------------------------------------------------------------- composition rules
# What a symbols decoder reads under the mean, slots, ranked and decay rules (compose.sh;
# needs the demo's base, out/demo/base.gguf, and skips itself without it).
say "composition rules: parts, slots, ranked, decay on a generated corpus"
wait_quiet
bash "$ROOT/bench/compose.sh" "$BUILD" "" "$OUT" || true
# What any reader could name from a composed row (readout_ceiling.py, ~10 s; the demo's base and a corpus over it).
if [ -s "$ROOT/out/demo/base.gguf" ]; then
    T_CEIL=$(mktemp -d)
    "$BUILD/hyperlora" scene synth -m "$ROOT/out/demo/base.gguf" -o "$T_CEIL" --seed 1 --scenes 6000 --words 200 \
        --unseen-words 10 --pairs 3 --parts 2-5 > /dev/null 2>&1 &&
        python3 "$ROOT/bench/readout_ceiling.py" "$ROOT/out/demo/base.gguf" "$T_CEIL" --hyperlora "$BUILD/hyperlora" \
            --facets 0.25 1.0 --scenes 150 | tee "$OUT/readout_ceiling.txt" || true
    rm -rf "$T_CEIL"
fi

# ---------------------------------------------------------------- serving with many adapters
# Aggregate decode tok/s, TTFT and token-gap percentiles with 0, 1, 8 and 32
# distinct adapters among 32 concurrent requests (serve_adapters.sh, ~3 min;
# BENCH_FULL adds the s110M shape).
say "serving: 32 concurrent requests over 1, 8, 32 distinct adapters (s15M)"
wait_quiet
bash "$ROOT/bench/serve_adapters.sh" "$BUILD" "$OUT" || true
if [ "${BENCH_FULL:-0}" = 1 ]; then
    say "serving: the same on s110M"
    wait_quiet
    SERVE_PRESET=s110M SERVE_TOKENS=32 bash "$ROOT/bench/serve_adapters.sh" "$BUILD" "$OUT/s110M" || true
fi

# ---------------------------------------------------------------- llama.cpp in the same run
# With BENCH_LLAMACPP=DIR (a llama.cpp checkout the user built; never fetched
# here): pp128/tg64 on the same files, f32 and quantized by our quantize,
# alternating with llama-bench, and LoRA training over q4_K_M against f32
# (llamacpp.sh, ~10 min; s110M in the quick mode too). serve_adapters.sh
# above also ran llama.cpp's server beside ours when it was set.
if [ -n "${BENCH_LLAMACPP:-}" ]; then
    say "inference against llama.cpp (llama-bench), f32 and quantized"
    wait_quiet
    LLAMACPP_ROUNDS="$ROUNDS" bash "$ROOT/bench/llamacpp.sh" "$BUILD" "$OUT" || true
    # its records join this run's report, where report.py turns them into same-run ratios
    [ -s "$OUT/llamacpp.jsonl" ] && python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line); r["bench"] = "llamacpp"; print(json.dumps(r))' "$OUT/llamacpp.jsonl" >>"$RES" || true
fi

# ---------------------------------------------------------------- data-parallel training
# 1 process x 1 thread, 2 processes x 1 thread (mpirun) and 1 process x 2
# threads on the same LoRA run (train_dp.sh; skips without MPI).
say "data-parallel training: 2 processes against 2 threads"
wait_quiet
DP_FULL="${BENCH_FULL:-0}" DP_ROUNDS="$ROUNDS" bash "$ROOT/bench/train_dp.sh" "$BUILD" "$OUT" || true

# ---------------------------------------------------------------- bounds
# Hostile-input budgets (a hostile file must not cost time or memory): a 100,000-entry lexicon loads in < 1 s, and
# a stories260K whose header claims 2^24 positions runs generate -n 2 in < 50 MB.
say "resource bounds (bench_bounds)"
wait_quiet
if "$BUILD/bench_bounds" --cli "$HL" --shared "$SHARED" --out "$OUT" | tee "$OUT/bounds.txt"; then :; else
    echo "bench_bounds: a budget was exceeded (see above)"
fi
grep '^{' "$OUT/bounds.txt" >>"$RES" || true

# ---------------------------------------------------------------- profiles
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    say "profiles (perf, cpu-clock sampling)"
    bash "$ROOT/bench/profile.sh" "$BUILD" "$([ "$FULL" = 1 ] && echo "$S110M" || echo "$S15M")" "$OUT" || true
fi

# ---------------------------------------------------------------- summary
cp "$RES" "$OUT/results.jsonl"
# Each machine class's reports are kept beside the code (bench/reports/UARCH-STAMP.jsonl),
# so the tables of every class measured can be rebuilt: python3 bench/report.py bench/reports/zen3-*.jsonl
mkdir -p "$ROOT/bench/reports"
cp "$RES" "$ROOT/bench/reports/$UARCH-$STAMP.jsonl"
say "summary"
if command -v python3 >/dev/null; then
    python3 "$ROOT/bench/report.py" "$RES" | tee "$OUT/summary.md"
fi
echo
echo "results: $RES"
echo "log:     $LOG"
echo "bench took $(($(date +%s) - T_START)) s"
