#!/usr/bin/env bash
# reader.sh: the full-scale scene reader behind `make reader`, and its
# judgement on scenes it never trained on.
#
#   scripts/reader.sh HYPERLORA BASE.gguf OUTDIR
#
# 1. A generated corpus (`scene synth`, seed 3): 20,000 scenes of 2-5 parts
#    over about 400 of the base's own one-token words (English and
#    Russian, scenes in proportion to each language's words), 4,000 of them
#    held out, 100 holding words that never train;
#    each training scene in 3 of the 15 (form, register) pairs.
# 2. A reader: rank 32 on q,k,v,o,gate,up,down,output, `decay+facet-words`,
#    16,000 steps at lr 1.5e-3 (about 40 min on 2 cores at dim 128). The
#    training checkpoints every 50 steps; run the script again after an
#    interruption and it resumes. A reader made by the same recipe from the
#    same base is kept.
# 3. Judged with `decode --eval` on the same number of examples from each
#    (form, register, language) group of each split: training scenes,
#    held-out scenes (declared at decode time with --lexicon, never in the
#    reader's vocabulary), training scenes in their held-out pair, and
#    scenes holding unseen words. OUTDIR/summary.txt holds the table that
#    `make demo` prints; OUTDIR/eval_*.json the counts by group.
# Environment: READER_STEPS, READER_LR, READER_RANK, READER_SCENES,
# READER_WORDS, READER_UNSEEN, READER_PARTS, READER_EVAL_N (examples judged
# per split, default 600), READER_COMPOSE.
set -euo pipefail
HL=${1:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
BASE=${2:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
OUT=${3:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -s "$BASE" ] || { echo "reader.sh: no base model at $BASE (make base)" >&2; exit 1; }
STEPS=${READER_STEPS:-16000}
LR=${READER_LR:-1.5e-3}
RANK=${READER_RANK:-32}
SCENES=${READER_SCENES:-20000}
WORDS=${READER_WORDS:-400}
UNSEEN=${READER_UNSEEN:-20}
PARTS=${READER_PARTS:-2-5}
EVAL_N=${READER_EVAL_N:-600}
COMPOSE=${READER_COMPOSE:-decay+facet-words}
mkdir -p "$OUT"
SYN=$OUT/synth
base_sum=$(sha256sum < "$BASE" | cut -c1-16)
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "the corpus: scene synth over the base's own words"
"$HL" scene synth -m "$BASE" -o "$SYN" --seed 3 --scenes "$SCENES" --words "$WORDS" --unseen-words "$UNSEEN" \
  --pairs 3 --parts "$PARTS" >&2
# the corpus's own hash too: a generator that writes other templates makes another reader
data_sum=$(cat "$SYN/lexicon.jsonl" "$SYN/train.jsonl" | sha256sum | cut -c1-16)
RECIPE="base=$base_sum data=$data_sum compose=$COMPOSE scenes=$SCENES words=$WORDS unseen=$UNSEEN parts=$PARTS rank=$RANK lr=$LR steps=$STEPS"
# the lexicon the reader trains with, the one declared later, the judged examples
python3 "$ROOT/scripts/reader_split.py" "$SYN" "$OUT" "$EVAL_N" "$COMPOSE"

if [ -s "$OUT/reader.gguf" ] && [ "$(cat "$OUT/reader.recipe" 2>/dev/null)" = "$RECIPE" ]; then
  say "the reader: kept $OUT/reader.gguf, made by the same recipe (delete it to train again)"
else
  resume=()
  if [ -s "$OUT/reader.ckpt" ] && [ "$(cat "$OUT/reader.ckpt.recipe" 2>/dev/null)" = "$RECIPE" ]; then
    resume=(--resume)
    say "the reader: resuming $OUT/reader.ckpt"
  else
    rm -f "$OUT/reader.ckpt" "$OUT/reader.metrics.jsonl"
    printf '%s\n' "$RECIPE" > "$OUT/reader.ckpt.recipe"
    say "the reader: $(grep -c . "$SYN/train.jsonl") examples, $COMPOSE, rank $RANK, $STEPS steps at lr $LR, 2 threads"
  fi
  rm -f "$OUT/reader.recipe"
  "$HL" train -m "$BASE" --lexicon "$OUT/reader_lexicon.jsonl" --data "$SYN/train.jsonl" --ctx 64 --batch 16 \
    --rank "$RANK" --alpha "$((2 * RANK))" --targets q,k,v,o,gate,up,down,output --lr "$LR" --warmup 20 \
    --steps "$STEPS" --val-fraction 0.02 --eval-every 1000 --seed 7 --threads 2 -o "$OUT/reader.gguf" --plain \
    --metrics "$OUT/reader.metrics.jsonl" --checkpoint "$OUT/reader.ckpt" "${resume[@]}"
  printf '%s\n' "$RECIPE" > "$OUT/reader.recipe"
fi

say "judging the reader on $EVAL_N examples a split"
for split in train heldout_scenes heldout_pairs unseen_words; do
  later=()
  case $split in heldout_scenes|unseen_words) later=(--lexicon "$OUT/later_lexicon.jsonl") ;; esac
  "$HL" decode -m "$BASE" --lora "$OUT/reader.gguf" "${later[@]}" --eval "$OUT/eval_$split.jsonl" --json \
    --threads 2 > "$OUT/eval_$split.json" 2>> "$OUT/decode_notes.log"
done
python3 - "$OUT" "$RECIPE" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, recipe = sys.argv[1:]
splits = [("train", "training scenes"), ("heldout_scenes", "held-out scenes (*)"),
          ("heldout_pairs", "training scenes, held-out pair"), ("unseen_words", "scenes with unseen words (*)")]
def add(a, b):
    for k, v in b.items(): a[k] = a.get(k, 0) + v
def cells(a):
    r = lambda k, n: f"{a[k] / a[n]:.3f}" if a.get(n) else "  -  "
    return (f"{a['n']:>5} {100 * a['exact'] / a['n']:6.1f}%  {r('parts_hit', 'parts_ref')}  {r('order_ok', 'order_n')}"
            f"  {r('facets_hit', 'facets_ref')}")
print(f"reader ({recipe})")
print(f"{'split, form':<44}{'n':>5} {'exact':>7}  {'parts':>5}  {'order':>5}  {'facets':>5}")
for split, label in splits:
    j = json.load(open(f"{out}/eval_{split}.json"))
    print(f"{label:<44}{cells(j['all'])}")
    by = {}
    for g in j["groups"]:
        for key in (g["form"], g["lang"]):
            add(by.setdefault(key, {}), g["stats"])
    for key in ("symbols", "formula", "text", "dialogue", "report", "en", "ru"):
        if key in by: print(f"  {key:<42}{cells(by[key])}")
print("parts: share of the scene's parts the output names; order: symbols and formula outputs")
print("naming 2+ parts name them in the scene's order; facets: facet values the reference writes as")
print("words (a report's tone, field, action) that the output names; (*): declared at decode time with --lexicon")
PY
