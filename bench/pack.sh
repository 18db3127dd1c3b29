#!/usr/bin/env bash
# bench/pack.sh BUILD_DIR [OUT_DIR]: LoRA training throughput in the three
# row modes (--pack docs, none, stream) on the example scene data
# (examples/scenes/train.jsonl, 466 examples, lexicon composed parts+facets)
# over stories260K, at the same settings: --ctx 144 --batch 16, rank 16 on
# q,k,v,o,gate,up,down,output, 2 threads, PACK_STEPS steps (default 60).
# Rounds alternate the modes (PACK_ROUNDS, default 3). For each run it takes
# the loss tokens and seconds from the metrics file (tokens counted in the
# loss, per second of the whole run after its first step), and the padding
# share that train prints (target slots holding padding). It prints a table
# with the medians and the docs/none ratio, and writes OUT_DIR/pack.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OUT=${2:-$ROOT/bench/out}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
MODEL="$SHARED/models/stories260K/stories260K-f32.gguf"
STEPS=${PACK_STEPS:-60}
ROUNDS=${PACK_ROUNDS:-3}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
: > "$T/runs"
for round in $(seq 1 "$ROUNDS"); do
    for mode in docs none stream; do
        "$BUILD/hyperlora" train -m "$MODEL" --lexicon "$ROOT/examples/scenes/lexicon.jsonl" --compose parts+facets \
            --data "$ROOT/examples/scenes/train.jsonl" --pack "$mode" --ctx 144 --batch 16 --rank 16 --alpha 32 \
            --targets q,k,v,o,gate,up,down,output --lr 5e-3 --steps "$STEPS" --val-fraction 0 --eval-every 0 \
            --checkpoint-every 0 --seed 7 --threads 2 --plain -o "$T/a.gguf" --metrics "$T/m.jsonl" 2> "$T/log"
        pad=$(sed -n 's/.*packing, \([0-9.]*\)% of target slots are padding.*/\1/p' "$T/log")
        rows=$(sed -n 's/.* \([0-9]*\) train rows of .*/\1/p' "$T/log")
        # loss tokens per second from step 2 on (step 1 includes the first-touch costs)
        python3 - "$T/m.jsonl" "$mode" "$pad" "$rows" "$round" >> "$T/runs" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
recs = [r for r in recs if r["step"] >= 1]
first, last = recs[0], recs[-1]
tok = last["tokens"] - first["tokens"]
sec = last["elapsed_s"] - first["elapsed_s"]
print(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], tok / sec, tok, sec)
PY
        tail -1 "$T/runs" >&2
    done
done
python3 - "$T/runs" "$STEPS" "$ROUNDS" <<'PY' | tee "$OUT/pack.md"
import statistics, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("| mode | rows | padding | loss tokens/s (median, min-max of %s) | vs none |" % sys.argv[3])
print("|---|---|---|---|---|")
med = {}
for mode in ("docs", "none", "stream"):
    v = [float(r[4]) for r in runs if r[0] == mode]
    med[mode] = statistics.median(v)
for mode in ("docs", "none", "stream"):
    r0 = next(r for r in runs if r[0] == mode)
    v = [float(r[4]) for r in runs if r[0] == mode]
    print("| %s | %s | %s%% | %.0f (%.0f-%.0f) | %.2fx |" % (mode, r0[2], r0[1], med[mode], min(v), max(v),
                                                          med[mode] / med["none"]))
PY
