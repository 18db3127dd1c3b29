#!/usr/bin/env bash
# bench/isa_compare.sh NATIVE_BUILD PORTABLE_BUILD [MODEL]: the native
# (-march=native, HL_NATIVE=ON) build against the portable one (run-time SIMD
# dispatch, HL_NATIVE=OFF) on s15M: pp128 and tg64 (bench_infer, default
# weight layout) and LoRA training tok/s (bench_train, 4x256, rank 8 on
# q,v,o,gate,up,down), at each of $ISA_THREADS (default "1 2").
# $ISA_ROUNDS rounds (default 5); in each round both builds run once, which
# one goes first alternating, so load from elsewhere hits them alike. Prints
# every run, then per metric the median and the best of the rounds for
# each build and the portable/native ratios. Raw lines go to
# bench/out/isa-<stamp>.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NATIVE=${1:?native build dir}
PORT=${2:?portable build dir}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
OUT="$ROOT/bench/out"
MODEL=${3:-$OUT/s15M.gguf}
ROUNDS=${ISA_ROUNDS:-5}
THREADS=${ISA_THREADS:-"1 2"}
STEPS=${ISA_STEPS:-3}
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

one() { # build label threads round
    local b=$1 label=$2 th=$3 r=$4 line
    # bench_infer's table: "pp128  base  packed  2  2412.7 ..." -> tok/s in column 5
    "$b/bench_infer" -m "$MODEL" --name s15M --runs 1 --threads "$th" 2>/dev/null |
        awk -v l="$label" -v t="$th" -v r="$r" '$1 ~ /^(pp128|tg64)$/ && $2 == "base" { print l, $1, t, r, $5 }' >>"$RAW"
    line=$("$b/bench_train" -m "$MODEL" --name s15M --batch 4 --ctx 256 --threads "$th" --rank 8 --alpha 16 \
        --targets q,v,o,gate,up,down --warmup 1 --steps "$STEPS" --mflop 63 2>/dev/null | tail -n 1)
    echo "$line" | awk -v l="$label" -v t="$th" -v r="$r" '{ for (i = 1; i < NF; i++) if ($(i + 1) == "tok/s") { print l, "train", t, r, $i; exit } }' >>"$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for th in $THREADS; do
        if [ $((r % 2)) = 1 ]; then
            one "$NATIVE" native "$th" "$r"
            one "$PORT" portable "$th" "$r"
        else
            one "$PORT" portable "$th" "$r"
            one "$NATIVE" native "$th" "$r"
        fi
    done
    echo "round $r/$ROUNDS done ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
done
cat "$RAW"
python3 - "$RAW" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
v = {}
for label, metric, th, r, x in rows:
    v.setdefault((metric, th), {}).setdefault(label, []).append(float(x))
print("\n| metric | threads | native median (best) | portable median (best) | portable/native median | best |")
print("|---|---|---|---|---|---|")
for (metric, th), d in sorted(v.items(), key=lambda k: (k[0][1], k[0][0])):
    n, p = d.get("native", []), d.get("portable", [])
    if not n or not p: continue
    mn, mp = st.median(n), st.median(p)
    print(f"| {metric} | {th} | {mn:,.1f} ({max(n):,.1f}) | {mp:,.1f} ({max(p):,.1f}) | {mp / mn:.3f} | {max(p) / max(n):.3f} |")
PY
