#!/usr/bin/env bash
# A miniature of `make demo`, end to end: pretrain a tiny base on a small
# corpus written here, train a scene decoder for a few steps, decode, check
# reproducibility, evaluate, plot. Usage: test_demo_mini.sh HYPERLORA SHARED
set -euo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# A small two-language corpus in fortune format.
python3 - "$T/corpus.txt" <<'PY'
import sys, random
random.seed(3)
en = "the rain falls on the old door and the light returns to the garden".split()
ru = "дождь стучит в старую дверь и свет возвращается в сад тишина у входа".split()
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for i in range(400):
        words = en if i % 2 else ru
        f.write(" ".join(random.choice(words) for _ in range(random.randint(4, 12))).capitalize() + ".\n%\n")
PY
DEMO_OUT=$T/out DEMO_CORPUS=$T/corpus.txt DEMO_PRESET=nano DEMO_VOCAB=400 DEMO_PRETRAIN_STEPS=8 \
  DEMO_DECODER_STEPS=4 DEMO_READER_STEPS=4 DEMO_SYNTH_SCENES=40 DEMO_SYNTH_UNSEEN=1 DEMO_EVAL_N=6 \
  DEMO_SCENES="Δ21 stormgatejoy" bash "$ROOT/scripts/demo.sh" "$HL" > "$T/demo.log" 2>&1 || {
  cat "$T/demo.log"; echo "FAIL: demo pipeline exited non-zero"; exit 1; }
fail=0
check() { if eval "$1"; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }
check 'grep -q "reproducibility (2 vs 1 thread).*PASS" "$T/demo.log"' "reproducibility check passes"
check 'grep -q "reproducibility (2 vs 1 thread) checkpoint at step 2 " "$T/demo.log" && grep -q "stopped at step 2 as asked" "$T/demo.log" &&
  [ "$(tail -n 1 "$T/out/decoder.gguf.metrics.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"step\"])")" = 4 ]' \
  "the decoder pauses at the compared step and resumes to its last"
check 'grep -q "exact match, training outputs" "$T/demo.log"' "summary table printed"
check 'grep -q "held-out scenes (\*)" "$T/demo.log" && grep -q "scenes with an unseen word (\*)" "$T/demo.log"' \
  "the reader's training and held-out splits in the summary"
check '[ "$(grep -c "^    Ψ[1-4] " "$T/demo.log")" -eq 8 ]' "4 scenes declared at decode time, decoded in 2 forms"
check '[ -s "$T/out/reader_loss.svg" ] && grep -q "\"compose\": \"decay+facet-words\"" "$T/out/reader_lexicon.jsonl"' \
  "the reader trains with the default rule (decay+facet-words) and plots its loss"
check '[ "$(grep -c "^    \(text\|symbols\|formula\|dialogue\|report\) " "$T/demo.log")" -eq 30 ]' "2 scenes x 15 decodings printed"
check '[ -s "$T/out/decoder_loss.svg" ] && [ -s "$T/out/pretrain_loss.svg" ]' "loss plots written"
check 'head -c 4 "$T/out/base.gguf" | grep -q GGUF' "the pretrained base is a GGUF"
check '"$HL" generate -m "$T/out/base.gguf" -p "The rain" -n 5 > /dev/null 2>&1' "the pretrained base loads in generate"
"$HL" inspect "$T/out/decoder.gguf" > "$T/inspect.txt" 2>&1
check 'grep -q "hyperlora.lexicon.jsonl" "$T/inspect.txt"' "the decoder carries its lexicon"
# The cached base is reused on a second run with the same recipe, and made again when the recipe changes.
again() { # $1 log, then extra VAR=value settings
  local log=$1; shift
  env DEMO_OUT=$T/out DEMO_CORPUS=$T/corpus.txt DEMO_PRESET=nano DEMO_VOCAB=400 DEMO_PRETRAIN_STEPS=8 \
    DEMO_DECODER_STEPS=2 DEMO_READER_STEPS=2 DEMO_SYNTH_SCENES=40 DEMO_SYNTH_UNSEEN=1 DEMO_EVAL_N=6 DEMO_SCENES="Δ21" \
    "$@" bash "$ROOT/scripts/demo.sh" "$HL" > "$log" 2>&1 || { cat "$log"; fail=1; }
}
again "$T/demo2.log"
check 'grep -q "base model: cached" "$T/demo2.log"' "second run reuses the cached base"
check 'grep -q "tied=1" "$T/out/base.gguf.recipe" && grep -q "parameters (.*tied LM head)" "$T/demo.log"' \
  "the default base is pretrained tied (its LM head is its embedding table) and records its recipe"
again "$T/demo3.log" DEMO_TIED=0
check 'grep -q "pretraining the default base" "$T/demo3.log" && grep -q "tied=0" "$T/out/base.gguf.recipe"' \
  "a cached base of another recipe is pretrained again"
# The wide base of `make base`, once made, is what the demo reads (here a tiny stand-in made by the same script).
BASE_PRESET=nano BASE_STEPS=8 BASE_VOCAB=400 BASE_CORPUS=$T/corpus.txt \
  bash "$ROOT/scripts/base.sh" "$HL" "$T/wide.gguf" wide > "$T/base.log" 2>&1 || { cat "$T/base.log"; fail=1; }
check '[ -s "$T/wide.gguf" ] && grep -q "preset=nano vocab=400 steps=8" "$T/wide.gguf.recipe" && ! [ -e "$T/wide.gguf.ckpt" ]' \
  "base.sh makes a base and records its recipe"
wide() { # $1 log, then extra VAR=value settings
  local log=$1; shift
  env DEMO_OUT=$T/outw DEMO_WIDE_BASE=$T/wide.gguf DEMO_DECODER_STEPS=2 DEMO_READER_STEPS=2 DEMO_SYNTH_SCENES=40 \
    DEMO_SYNTH_UNSEEN=1 DEMO_EVAL_N=6 DEMO_SCENES="Δ21" "$@" bash "$ROOT/scripts/demo.sh" "$HL" > "$log" 2>&1
}
wide "$T/demo4.log" || { cat "$T/demo4.log"; fail=1; }
check 'grep -q "the wide base from" "$T/demo4.log" && grep -q "base model  *$T/wide.gguf" "$T/demo4.log" && ! [ -e "$T/outw/base.gguf" ]' \
  "the demo reads the wide base when it is made, and pretrains nothing"
wide "$T/demo7.log" DEMO_BASE=wide DEMO_PRESET=nano || { cat "$T/demo7.log"; fail=1; }
check 'grep -q "the wide base from" "$T/demo7.log"' "DEMO_BASE=wide reads the wide base even with a nano knob set"
check '! wide "$T/demo5.log" DEMO_BASE=wide DEMO_WIDE_BASE=$T/none.gguf && grep -q "not made yet (make base)" "$T/demo5.log"' \
  "DEMO_BASE=wide without the wide base is refused"
check '! wide "$T/demo6.log" DEMO_BASE=wider && grep -q "DEMO_BASE is auto, nano or wide" "$T/demo6.log"' \
  "an unknown DEMO_BASE is refused"
# Each judged split holds every (form, register, language) group it has, and
# distinct scenes (a stride over 15 pairs a scene once judged one pair only).
# Half the scenes in each language: 400 scenes in proportion to this base's
# unequal pools leave too few Russian held-out scenes to deal 2 a group.
mkdir -p "$T/judged"
"$HL" scene synth -m "$T/out/base.gguf" -o "$T/judged" --seed 2 --scenes 400 --unseen-words 1 --parts 2-4 --balance scenes \
  > "$T/judged.log" 2>&1 ||
  { cat "$T/judged.log"; fail=1; }
python3 "$ROOT/scripts/reader_split.py" "$T/judged" "$T/judged" 60 decay+facets
check 'python3 - "$T/judged" <<"PY"
import json, sys
d = sys.argv[1]
for name in ("train", "heldout_scenes", "heldout_pairs", "unseen_words"):
    rows = [json.loads(l) for l in open(f"{d}/{name}.jsonl", encoding="utf-8")]
    judged = [json.loads(l) for l in open(f"{d}/eval_{name}.jsonl", encoding="utf-8")]
    have = {(e["form"], e["register"], e["lang"]) for e in rows}
    groups = [(e["form"], e["register"], e["lang"]) for e in judged]
    assert len(judged) == 60 and set(groups) == have, (name, len(judged), len(have))
    assert max(groups.count(g) for g in have) - min(groups.count(g) for g in have) <= 1, name
    assert len({e["scene"] for e in judged}) == 60 or name == "unseen_words", name
PY' "the judged examples of each split come evenly from all its groups, one per scene"
# The full-scale reader (make reader) in miniature: corpus, training, resume, judgement, and the demo prints it.
reader() { READER_STEPS=4 READER_FORM_STEPS=3 READER_SCENES=60 READER_WORDS=30 READER_UNSEEN=1 READER_PARTS=2-4 READER_EVAL_N=30 READER_RANK=4 \
  bash "$ROOT/scripts/reader.sh" "$HL" "$T/wide.gguf" "$T/reader" > "$1" 2>&1; }
reader "$T/reader.log" || { tail -5 "$T/reader.log"; fail=1; }
check 'grep -q "^held-out scenes (\*)" "$T/reader/summary.txt" && grep -q "^  symbols " "$T/reader/summary.txt" &&
  grep -q "^  ru " "$T/reader/summary.txt" && [ "$(tail -n 1 "$T/reader/reader.metrics.jsonl" |
  python3 -c "import json,sys; print(json.load(sys.stdin)[\"step\"])")" = 4 ]' \
  "reader.sh trains its reader and writes the judged table by split, form and language"
check '[ -s "$T/reader/reader-symbols.gguf" ] && [ -s "$T/reader/reader-formula.gguf" ] &&
  [ "$(tail -n 1 "$T/reader/reader-symbols.metrics.jsonl" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"step\"])")" = 3 ] &&
  grep -q "start from $T/reader/reader.gguf" "$T/reader.log" &&
  python3 -c "import json,sys; d=json.load(open(sys.argv[1]))[\"decoders\"]; sys.exit(0 if [x[\"form\"] for x in d] == [\"symbols\", \"formula\", \"*\"] else 1)" "$T/reader/bundle.json" &&
  grep -q "^a bundle: symbols and formula" "$T/reader/summary.txt" && grep -q "^  symbols .*\[" "$T/reader/summary.txt"' \
  "reader.sh continues the reader on symbols and on formula, bundles them, and prints the mixed reader beside them"
reader "$T/reader2.log" || { cat "$T/reader2.log"; fail=1; }
check 'grep -q "the reader: kept .*made by the same recipe" "$T/reader2.log" && grep -q "the symbols reader: kept" "$T/reader2.log"' "a reader made by the same recipe is kept, and so are its readers per form"
wide "$T/demo8.log" DEMO_READER_DIR=$T/reader || { cat "$T/demo8.log"; fail=1; }
check 'grep -q "the full-scale reader over this base" "$T/demo8.log" && grep -q "^  held-out scenes (\*)" "$T/demo8.log"' \
  "the demo prints the full-scale reader made over its base"
check 'grep -q "make reader trains" "$T/demo.log"' "without one, the demo says how to make it"
if [ $fail -ne 0 ]; then cat "$T/demo.log"; echo "0 passed, 1 failed"; exit 1; fi
echo "test_demo_mini: all checks passed"
