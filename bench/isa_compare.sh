#!/usr/bin/env bash
# bench/isa_compare.sh NATIVE_BUILD PORTABLE_BUILD [MODEL]: the native
# (-march=native, HL_NATIVE=ON) build against the portable one (run-time SIMD
# dispatch, HL_NATIVE=OFF) on s15M: pp128, tg64 and LoRA training tok/s
# (bench_isa: one thread, default weight layout, each the median of
# $ISA_REPS reps, default 5), by the thread's CPU clock and by the wall clock.
# $ISA_ROUNDS rounds (default 5); in each round both builds run once, which
# one goes first alternating, so load from elsewhere hits them alike. Prints
# every run, then per metric and clock the median of the rounds for each
# build and the portable/native ratio. Raw lines go to
# bench/out/isa-<stamp>.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NATIVE=${1:?native build dir}
PORT=${2:?portable build dir}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
OUT="$ROOT/bench/out"
MODEL=${3:-$OUT/s15M.gguf}
ROUNDS=${ISA_ROUNDS:-5}
REPS=${ISA_REPS:-5}
mkdir -p "$OUT"
if [ ! -s "$MODEL" ]; then
    "$NATIVE/hyperlora" init-model --preset s15M --tokenizer "$SHARED/models/llama2-tokenizer/tokenizer.bin" \
        --seed 0 -o "$MODEL" >&2
fi
RAW="$OUT/isa-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RAW"
echo "native: $("$NATIVE/hyperlora" --version | tail -n 1)"
echo "portable: $("$PORT/hyperlora" --version | tail -n 1)"
lscpu | grep -E '^Model name' || true

one() { # build label round
    "$1/bench_isa" -m "$MODEL" --reps "$REPS" | awk -v l="$2" -v r="$3" '$1 != "level" && $1 != "logits" { print l, $1, r, $2, $3 }' >>"$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
    if [ $((r % 2)) = 1 ]; then
        one "$NATIVE" native "$r"
        one "$PORT" portable "$r"
    else
        one "$PORT" portable "$r"
        one "$NATIVE" native "$r"
    fi
    echo "round $r/$ROUNDS done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
done
cat "$RAW"
python3 - "$RAW" <<'PY'
import sys, statistics as st
v = {}
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) != 5: continue
    label, metric, r, cpu, wall = f
    v.setdefault(metric, {}).setdefault(label, {"cpu": {}, "wall": {}})
    v[metric][label]["cpu"][r] = float(cpu)
    v[metric][label]["wall"][r] = float(wall)
# "paired": the median over rounds of portable / native within the round
print("\n| metric | clock | native tok/s, median (min-max) | portable tok/s, median (min-max) | portable / native: medians | paired |")
print("|---|---|---|---|---|---|")
for metric in ("pp128", "tg64", "train"):
    if metric not in v or len(v[metric]) < 2: continue
    for clock in ("cpu", "wall"):
        nd, pd = v[metric]["native"][clock], v[metric]["portable"][clock]
        n, p = list(nd.values()), list(pd.values())
        mn, mp = st.median(n), st.median(p)
        paired = st.median([pd[r] / nd[r] for r in nd if r in pd])
        print(f"| {metric} | {clock} | {mn:,.1f} ({min(n):,.1f}-{max(n):,.1f}) | {mp:,.1f} ({min(p):,.1f}-{max(p):,.1f}) "
              f"| {mp / mn:.3f} | {paired:.3f} |")
PY
