#!/usr/bin/env bash
# bench/profile.sh BUILD_DIR MODEL.gguf OUT_DIR: where the time goes, with perf
# (cpu-clock sampling: KVM guests often have no hardware counters).
#   OUT_DIR/profile-decode.txt  decode (tg64 at 2 threads, no adapter)
#   OUT_DIR/profile-train.txt   LoRA training steps (batch 4x256, 2 threads)
# Each report lists self time per symbol, then per caller of the matmul kernels.
set -euo pipefail
BUILD=$1
MODEL=$2
OUT=$3
command -v perf >/dev/null || { echo "perf not installed: skipping profiles"; exit 0; }
name=$(basename "$MODEL" .gguf)
rep() { # data file, title, output
    {
        echo "# $2"
        perf report -i "$1" --stdio --no-children --sort symbol --percent-limit 0.5 2>/dev/null | grep -v '^$' | head -60
        echo
        echo "# callers (self time attributed to the calling function)"
        perf report -i "$1" --stdio --no-children --sort symbol -g caller,0.5,callee,function --percent-limit 3 2>/dev/null |
            grep -v '^$' | head -150
    } >"$3"
    rm -f "$1"
    echo "wrote $3"
}
perf record -q -e cpu-clock -F 1999 -g -o "$OUT/perf-decode.data" -- \
    "$BUILD/bench_infer" -m "$MODEL" --name "$name" --threads 2 --runs 5 --pp 8 >/dev/null
rep "$OUT/perf-decode.data" "decode $name: bench_infer --threads 2 (tg64 x6, pp8 x6)" "$OUT/profile-decode.txt"
perf record -q -e cpu-clock -F 1999 -g -o "$OUT/perf-train.data" -- \
    "$BUILD/bench_train" -m "$MODEL" --name "$name" --batch 4 --threads 2 --warmup 1 --steps 2 --eval-runs 0 \
    >/dev/null 2>&1
rep "$OUT/perf-train.data" "LoRA training $name 4x256, 2 threads, 3 steps" "$OUT/profile-train.txt"
