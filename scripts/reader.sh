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
# 3. Readers per form: the reader's A and B continued for 2,000 steps on
#    the symbols examples alone, and again on the formula examples alone
#    (`train --init-from`): the mixed reader reads the parts, the
#    continuation learns the form's own marks (the symbols glyph) on top.
#    OUTDIR/bundle.json routes symbols and formula to them and every other
#    form to the mixed reader (`decode --bundle`).
# 4. Judged with `decode --eval` on the same number of examples from each
#    (form, register, language) group of each split: training scenes,
#    held-out scenes (declared at decode time with --lexicon, never in the
#    reader's vocabulary), training scenes in their held-out pair, and
#    scenes holding unseen words. The bundle is judged on every split, the
#    mixed reader alone on the symbols and formula lines, for comparison.
#    OUTDIR/summary.txt holds the table that `make demo` prints;
#    OUTDIR/eval_*.json the counts by group.
# Environment: READER_STEPS, READER_FORM_STEPS (0: no readers per form,
# the mixed reader alone), READER_LR, READER_RANK, READER_SCENES,
# READER_WORDS, READER_UNSEEN, READER_PARTS, READER_EVAL_N (examples judged
# per split, default 600), READER_COMPOSE.
set -euo pipefail
HL=${1:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
BASE=${2:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
OUT=${3:?usage: reader.sh HYPERLORA BASE.gguf OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -s "$BASE" ] || { echo "reader.sh: no base model at $BASE (make base)" >&2; exit 1; }
STEPS=${READER_STEPS:-16000}
FORM_STEPS=${READER_FORM_STEPS:-2000}
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

# Readers per form: the mixed reader continued on one form's examples.
FORMS=()
[ "$FORM_STEPS" -gt 0 ] && FORMS=(symbols formula)
for form in "${FORMS[@]}"; do
  FRECIPE="$RECIPE then $form-only steps=$FORM_STEPS"
  if [ -s "$OUT/reader-$form.gguf" ] && [ "$(cat "$OUT/reader-$form.recipe" 2>/dev/null)" = "$FRECIPE" ]; then
    say "the $form reader: kept $OUT/reader-$form.gguf, made by the same recipe"
    continue
  fi
  python3 -c 'import json, sys
form = sys.argv[1]
with open(sys.argv[3], "w") as f:
    for line in open(sys.argv[2], encoding="utf-8"):
        if json.loads(line)["form"] == form: f.write(line)' "$form" "$SYN/train.jsonl" "$OUT/train_$form.jsonl"
  resume=()
  if [ -s "$OUT/reader-$form.ckpt" ] && [ "$(cat "$OUT/reader-$form.ckpt.recipe" 2>/dev/null)" = "$FRECIPE" ]; then
    resume=(--resume)
    say "the $form reader: resuming $OUT/reader-$form.ckpt"
  else
    rm -f "$OUT/reader-$form.ckpt" "$OUT/reader-$form.metrics.jsonl"
    printf '%s\n' "$FRECIPE" > "$OUT/reader-$form.ckpt.recipe"
    say "the $form reader: the reader continued on its $(grep -c . "$OUT/train_$form.jsonl") $form examples, $FORM_STEPS steps"
  fi
  rm -f "$OUT/reader-$form.recipe"
  "$HL" train -m "$BASE" --lexicon "$OUT/reader_lexicon.jsonl" --data "$OUT/train_$form.jsonl" --init-from "$OUT/reader.gguf" \
    --ctx 64 --batch 16 --rank "$RANK" --alpha "$((2 * RANK))" --targets q,k,v,o,gate,up,down,output --lr "$LR" \
    --warmup 20 --steps "$FORM_STEPS" --val-fraction 0.02 --eval-every 1000 --seed 7 --threads 2 \
    -o "$OUT/reader-$form.gguf" --plain --metrics "$OUT/reader-$form.metrics.jsonl" \
    --checkpoint "$OUT/reader-$form.ckpt" "${resume[@]}"
  printf '%s\n' "$FRECIPE" > "$OUT/reader-$form.recipe"
done
# The bundle: each form's reader where there is one, the mixed reader for the rest.
python3 -c 'import json, sys
dec = [{"form": f, "register": "*", "adapters": [{"path": f"reader-{f}.gguf"}]} for f in sys.argv[2:]]
dec.append({"form": "*", "register": "*", "adapters": [{"path": "reader.gguf"}]})
json.dump({"decoders": dec}, open(sys.argv[1], "w"), indent=1)' "$OUT/bundle.json" "${FORMS[@]}"

say "judging the reader on $EVAL_N examples a split"
rm -f "$OUT/decode_notes.log"
for split in train heldout_scenes heldout_pairs unseen_words; do
  later=()
  case $split in heldout_scenes|unseen_words) later=(--lexicon "$OUT/later_lexicon.jsonl") ;; esac
  "$HL" decode -m "$BASE" --bundle "$OUT/bundle.json" "${later[@]}" --eval "$OUT/eval_$split.jsonl" --json \
    --threads 2 > "$OUT/eval_$split.json" 2>> "$OUT/decode_notes.log"
  # the mixed reader alone, where the bundle routes elsewhere
  if [ ${#FORMS[@]} -gt 0 ]; then
    python3 -c 'import json, sys
keep = set(sys.argv[3:])
with open(sys.argv[2], "w") as f:
    for line in open(sys.argv[1], encoding="utf-8"):
        if json.loads(line)["form"] in keep: f.write(line)' "$OUT/eval_$split.jsonl" "$OUT/eval_${split}_forms.jsonl" "${FORMS[@]}"
    "$HL" decode -m "$BASE" --lora "$OUT/reader.gguf" "${later[@]}" --eval "$OUT/eval_${split}_forms.jsonl" --json \
      --threads 2 > "$OUT/eval_mixed_$split.json" 2>> "$OUT/decode_notes.log"
  fi
done
python3 - "$OUT" "$RECIPE" "$FORM_STEPS" "${FORMS[@]}" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out, recipe, form_steps, *forms = sys.argv[1:]
splits = [("train", "training scenes"), ("heldout_scenes", "held-out scenes (*)"),
          ("heldout_pairs", "training scenes, held-out pair"), ("unseen_words", "scenes with unseen words (*)")]
def add(a, b):
    for k, v in b.items(): a[k] = a.get(k, 0) + v
def cells(a):
    r = lambda k, n: f"{a[k] / a[n]:.3f}" if a.get(n) else "  -  "
    return (f"{a['n']:>5} {100 * a['exact'] / a['n']:6.1f}%  {r('parts_hit', 'parts_ref')}  {r('order_ok', 'order_n')}"
            f"  {r('facets_hit', 'facets_ref')}")
print(f"reader ({recipe})")
if forms:
    print(f"a bundle: {' and '.join(forms)} read by the reader continued {form_steps} steps on that form alone,")
    print("the other forms by the reader (the mixed reader alone: [brackets])")
print(f"{'split, form':<44}{'n':>5} {'exact':>7}  {'parts':>5}  {'order':>5}  {'facets':>5}")
def by_key(j):
    by = {}
    for g in j["groups"]:
        for key in (g["form"], g["lang"]):
            add(by.setdefault(key, {}), g["stats"])
    return by
for split, label in splits:
    j = json.load(open(f"{out}/eval_{split}.json"))
    print(f"{label:<44}{cells(j['all'])}")
    by = by_key(j)
    mixed = by_key(json.load(open(f"{out}/eval_mixed_{split}.json"))) if forms else {}
    for key in ("symbols", "formula", "text", "dialogue", "report", "en", "ru"):
        if key in by: print(f"  {key:<42}{cells(by[key])}" + (f"  [{cells(mixed[key]).strip()}]" if key in forms else ""))
print("parts: share of the scene's parts the output names; order: symbols and formula outputs")
print("naming 2+ parts name them in the scene's order; facets: facet values the reference writes as")
print("words (a report's tone, field, action) that the output names; (*): declared at decode time with --lexicon")
PY
