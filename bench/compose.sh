#!/usr/bin/env bash
# bench/compose.sh BUILD_DIR [BASE.gguf] [OUT_DIR]: the composition rules
# compared on one generated corpus. `hyperlora scene synth` (seed 1, 60 words
# per language of which 5 never train, 1,200 scenes of 2-4 parts, 20% held
# out, 14 (form, register) pairs per training scene) is cut to the symbols
# form; a decoder is trained per rule (parts+facets, slots+facets,
# ranked+facets, decay+facets: rank 16 on q,k,v,o,gate,up,down,output, 1,500 steps, batch 16,
# ctx 48, lr 5e-3, 2 threads, seed 7) and judged with `decode --eval` on its
# training examples, the held-out scenes and the unseen-word scenes: exact
# match, part recall and order accuracy (parts named in the scene's order).
# BASE defaults to the demo's base (out/demo/base.gguf, made by `make demo`);
# without it the benchmark is skipped with a note. Writes OUT_DIR/compose.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
BASE=${2:-}
BASE=${BASE:-$ROOT/out/demo/base.gguf}
OUT=${3:-$ROOT/bench/out}
STEPS=${COMPOSE_STEPS:-1500}
HL="$BUILD/hyperlora"
if [ ! -s "$BASE" ]; then
    echo "bench/compose.sh: no base at $BASE (run make demo first); skipped" >&2
    exit 0
fi
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$HL" scene synth -m "$BASE" -o "$T" --seed 1 --words 60 --unseen-words 5 --scenes 1200 --pairs 14 --parts 2-4 >&2
python3 - "$T" <<'PY'
import json, sys
d = sys.argv[1]
for name in ("train", "heldout_scenes", "unseen_words"):
    with open(f"{d}/{name}.jsonl", encoding="utf-8") as f, open(f"{d}/{name}_symbols.jsonl", "w", encoding="utf-8") as o:
        for line in f:
            if json.loads(line)["form"] == "symbols":
                o.write(line)
PY
cat > "$T/cells.py" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["all"]
ratio = lambda k, n: "-" if not a[n] else f"{a[k] / a[n]:.3f}"
print(f"{100 * a['exact'] / a['n']:.1f}% | {ratio('parts_hit', 'parts_ref')} | {ratio('order_ok', 'order_n')} |")
PY
row() { # $1 rule -> one markdown row
    local r=$1
    "$HL" train -m "$BASE" --lexicon "$T/lexicon.jsonl" --compose "$r" --data "$T/train_symbols.jsonl" --ctx 48 \
        --batch 16 --rank 16 --alpha 32 --targets q,k,v,o,gate,up,down,output --lr 5e-3 --warmup 20 --steps "$STEPS" \
        --val-fraction 0 --eval-every 0 --checkpoint-every 0 --seed 7 --threads 2 --plain -o "$T/$r.gguf" \
        > "$T/$r.log" 2>&1
    local cells="| $r |"
    for split in train heldout_scenes unseen_words; do
        "$HL" decode -m "$BASE" --lora "$T/$r.gguf" --eval "$T/${split}_symbols.jsonl" --threads 2 --json > "$T/$r.$split.json"
        cells="$cells $(python3 "$T/cells.py" "$T/$r.$split.json")"
    done
    echo "$cells"
}
{
    echo "| rule | train exact | train recall | train order | held-out exact | held-out recall | held-out order | unseen exact | unseen recall | unseen order |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for r in parts+facets slots+facets ranked+facets decay+facets; do row "$r"; done
} | tee "$OUT/compose.md"
