#!/usr/bin/env bash
# The end-to-end demo behind `make demo`:
#   1. a default base model: the wide one `make base` made, or else a nano
#      one pretrained here (scripts/base.sh: tied, from Debian's fortune
#      corpora) and cached with its recipe, or MODEL=path.gguf;
#   2. the scene decoder (LoRA + the example hyperlexeme lexicon) trained on
#      examples/scenes/train.jsonl, the written quality reference;
#   3. every demo scene decoded in each form and register;
#   4. reproducibility: the decoder's first DEMO_REPRO_STEPS steps (default
#      300) trained again at 1 thread, their checkpoints compared by SHA-256
#      (the 2-thread run pauses there and resumes), and the scenes decoded
#      again at 1 thread;
#   5. a reader: a second decoder trained on a generated corpus over the
#      base's own words (`scene synth`, composed by DEMO_COMPOSE), judged on
#      scenes declared only at decode time (held-out scenes, words that never
#      trained) next to its training scenes, and decoding scenes declared now;
#   6. a summary table and the loss plots (SVG), and the figures of the
#      full-scale reader when `make reader` made one over this base.
# Usage: scripts/demo.sh HYPERLORA_BINARY [MODEL.gguf]
# Knobs (environment): DEMO_OUT, DEMO_PRETRAIN_STEPS, DEMO_DECODER_STEPS,
# DEMO_CORPUS_BYTES, DEMO_SCENES, DEMO_LEXICON, DEMO_TRAIN, DEMO_HELDOUT,
# DEMO_PRESET, DEMO_VOCAB, DEMO_TIED (default 1: a tied base), DEMO_CORPUS
# (space-separated files), DEMO_BASE (auto: the wide base of `make base`
# when it is made and no DEMO_PRESET or DEMO_PRETRAIN_STEPS is set, else the
# nano one; nano; wide), DEMO_WIDE_BASE (where `make base` put it), and for
# the reader DEMO_READER_STEPS, DEMO_COMPOSE
# (default decay+facet-words), DEMO_SYNTH_SCENES, DEMO_SYNTH_WORDS,
# DEMO_SYNTH_UNSEEN, DEMO_EVAL_N (examples judged per split), DEMO_READER_DIR
# (where `make reader` put its reader: out/reader); DEMO_RANK for
# both decoders (default 16; at most what the smallest target allows).
set -euo pipefail
HL=${1:?usage: demo.sh HYPERLORA [MODEL.gguf]}
MODEL=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${DEMO_OUT:-$ROOT/out/demo}
LEX=${DEMO_LEXICON:-$ROOT/examples/scenes/lexicon.jsonl}
TRAIN=${DEMO_TRAIN:-$ROOT/examples/scenes/train.jsonl}
HELDOUT=${DEMO_HELDOUT:-$ROOT/examples/scenes/heldout.jsonl}
SCENES=${DEMO_SCENES:-"Δ21 вспышкавходстрах Δ07 stormgatejoy Δ23 windgatefear"}
PRE_STEPS=${DEMO_PRETRAIN_STEPS:-800}
DEC_STEPS=${DEMO_DECODER_STEPS:-900}
READ_STEPS=${DEMO_READER_STEPS:-1500}
RANK=${DEMO_RANK:-16}
COMPOSE=${DEMO_COMPOSE:-decay+facet-words}
TIED=${DEMO_TIED:-1}
EVAL_N=${DEMO_EVAL_N:-150}
mkdir -p "$OUT"
t_all=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# 1. the base model: the wide one if `make base` made it, else the nano one (pretrained here and cached)
t0=$(date +%s.%N)
OWN_BASE=0
PRE_METRICS=
if [ -z "$MODEL" ]; then
  OWN_BASE=1
  WIDE=${DEMO_WIDE_BASE:-$ROOT/out/base/wide.gguf}
  case ${DEMO_BASE:-auto} in auto|nano|wide) ;; *) echo "demo: DEMO_BASE is auto, nano or wide" >&2; exit 2 ;; esac
  if [ "${DEMO_BASE:-auto}" = wide ] && ! { [ -s "$WIDE" ] && [ -s "$WIDE.recipe" ]; }; then
    echo "demo: DEMO_BASE=wide, but $WIDE is not made yet (make base)" >&2; exit 1
  fi
  # auto reads the wide base only when no nano knob is set; an explicit wide always reads it
  if [ "${DEMO_BASE:-auto}" = wide ] || { [ "${DEMO_BASE:-auto}" = auto ] &&
     [ -z "${DEMO_PRESET:-}${DEMO_PRETRAIN_STEPS:-}" ] && [ -s "$WIDE" ] && [ -s "$WIDE.recipe" ]; }; then
    MODEL=$WIDE
    say "base model: the wide base from \`make base\` ($MODEL; $(cat "$WIDE.recipe"))"
  else
    MODEL=$OUT/base.gguf
    say "base model: $MODEL (nano; \`make base\` makes a wider one that the demo then uses)"
    BASE_PRESET=${DEMO_PRESET:-nano} BASE_STEPS=$PRE_STEPS BASE_VOCAB=${DEMO_VOCAB:-2048} \
      BASE_CORPUS_BYTES=${DEMO_CORPUS_BYTES:-40000} BASE_TIED=$TIED BASE_CORPUS=${DEMO_CORPUS:-} \
      bash "$ROOT/scripts/base.sh" "$HL" "$MODEL" nano
  fi
  PRE_METRICS=$MODEL.pretrain.jsonl
else
  say "base model: $MODEL"
fi
t_base=$(elapsed "$t0")
"$HL" generate -m "$MODEL" -p "The" -n 24 --threads 2 2>/dev/null | head -c 300 >&2 || true

# 2. the scene decoder (threads 2). It pauses at step REPRO_AT and resumes, so that
# the checkpoint there can be compared with a 1-thread run of the same steps (4.)
# The default base's BPE keeps examples short; byte-level bases (stories260K) need longer rows.
DEC_CTX=${DEMO_DECODER_CTX:-$([ "$OWN_BASE" = 1 ] && echo 64 || echo 144)}
train_decoder() { # $1 threads, $2 output
  "$HL" train -m "$MODEL" --lexicon "$LEX" --data "$TRAIN" --ctx "$DEC_CTX" --batch 16 \
    --rank "$RANK" --alpha "$((2 * RANK))" --targets q,k,v,o,gate,up,down,output --lr 5e-3 --warmup 20 --steps "$DEC_STEPS" \
    --val-fraction 0.05 --eval-every 100 --seed 7 --threads "$1" -o "$2" --plain \
    --metrics "$2.metrics.jsonl" --checkpoint "$2.ckpt" "${@:3}"
}
REPRO_AT=${DEMO_REPRO_STEPS:-300}
[ "$REPRO_AT" -lt "$DEC_STEPS" ] || REPRO_AT=$((DEC_STEPS / 2))
t0=$(date +%s.%N)
if [ "$REPRO_AT" -ge 1 ]; then
  say "training the scene decoder ($DEC_STEPS steps, 2 threads; paused at step $REPRO_AT and resumed)"
  train_decoder 2 "$OUT/decoder.gguf" --stop-at "$REPRO_AT"
  cp "$OUT/decoder.gguf.ckpt" "$OUT/decoder_at_repro.ckpt"
  train_decoder 2 "$OUT/decoder.gguf" --resume
else # a one-step decoder: nothing to pause; its final checkpoint is compared
  REPRO_AT=$DEC_STEPS
  say "training the scene decoder ($DEC_STEPS steps, 2 threads)"
  train_decoder 2 "$OUT/decoder.gguf"
  cp "$OUT/decoder.gguf.ckpt" "$OUT/decoder_at_repro.ckpt"
fi
t_dec=$(elapsed "$t0")

# 3. decode every demo scene in each form and register
say "decoding the demo scenes (greedy)"
t0=$(date +%s.%N)
decode_all() { # $1 threads -> stdout
  for s in $SCENES; do
    for f in text symbols formula dialogue report; do
      for r in poetic logical technical; do
        printf '%s\t%s\t%s\t' "$s" "$f" "$r"
        "$HL" decode -m "$MODEL" --lora "$2" --scene "$s" --form "$f" --register "$r" -n 80 --threads "$1" | tr '\n' ' '
        printf '\n'
      done
    done
  done
}
decode_all 2 "$OUT/decoder.gguf" > "$OUT/decoded_t2.tsv"
t_decode=$(elapsed "$t0")
python3 - "$OUT/decoded_t2.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t", 3) for l in open(sys.argv[1], encoding="utf-8", errors="replace")]
last = None
for scene, form, reg, text in rows:
    if scene != last:
        print(f"\n  {scene}")
        last = scene
    print(f"    {form:<9}{reg:<10} {text}")
PY

# 4. reproducibility: the first REPRO_AT steps again at 1 thread (the whole
# training state: adapter, optimizer moments, data order, RNG), and every scene
# decoded again at 1 thread; both compared by hash
say "reproducibility: the first $REPRO_AT decoder steps and the decoding again at 1 thread"
rm -f "$OUT/decoder_t1.gguf.ckpt"
REPRO_STOP=(--stop-at "$REPRO_AT"); [ "$REPRO_AT" -lt "$DEC_STEPS" ] || REPRO_STOP=()
train_decoder 1 "$OUT/decoder_t1.gguf" "${REPRO_STOP[@]}" > /dev/null 2>&1
decode_all 1 "$OUT/decoder.gguf" > "$OUT/decoded_t1.tsv"
h_a2=$(sha256sum < "$OUT/decoder_at_repro.ckpt" | cut -c1-16); h_a1=$(sha256sum < "$OUT/decoder_t1.gguf.ckpt" | cut -c1-16)
h_d2=$(sha256sum < "$OUT/decoded_t2.tsv" | cut -c1-16); h_d1=$(sha256sum < "$OUT/decoded_t1.tsv" | cut -c1-16)
repro=PASS
[ "$h_a2" = "$h_a1" ] && [ "$h_d2" = "$h_d1" ] || repro=FAIL

# 5. the reader: a decoder trained on a generated corpus, judged on scenes it never saw
say "the reader: a generated scene corpus (scene synth) over the base's own words"
t0=$(date +%s.%N)
SYN=$OUT/synth
mkdir -p "$SYN"
"$HL" scene synth -m "$MODEL" -o "$SYN" --seed 1 --scenes "${DEMO_SYNTH_SCENES:-6000}" --words "${DEMO_SYNTH_WORDS:-60}" \
  --unseen-words "${DEMO_SYNTH_UNSEEN:-5}" --pairs 3 --parts 2-4 >&2
# The reader's lexicon: the rule and the generated scenes that train. The
# others (held out, or holding unseen words) are declared only at decode
# time, as an extra lexicon the decoder never had in its vocabulary. And the
# examples each split is judged on.
python3 "$ROOT/scripts/reader_split.py" "$SYN" "$OUT" "$EVAL_N" "$COMPOSE"
python3 - "$SYN" "$OUT" <<'PY'
import json, sys
syn, out = sys.argv[1:]
# Scenes declared now: known words in a new combination, and unseen words.
w = json.load(open(f"{syn}/words.json", encoding="utf-8"))
extra = [("Ψ1", w["en"]["seen"][-3:]), ("Ψ2", w["ru"]["seen"][-3:]),
         ("Ψ3", [w["en"]["unseen"][0], w["en"]["seen"][-1], w["en"]["unseen"][-1]]),
         ("Ψ4", [w["ru"]["unseen"][0], w["ru"]["seen"][-1]])]
facets = {"archetype": "threshold", "action": "enter", "field": "home", "tone": "fear"}
with open(f"{out}/now_lexicon.jsonl", "w", encoding="utf-8") as f:
    for name, parts in extra:
        f.write(json.dumps({"lexeme": name, "parts": parts, "facets": facets}, ensure_ascii=False) + "\n")
PY
say "training the reader ($(grep -c . "$SYN/train.jsonl") examples, $COMPOSE, $READ_STEPS steps, 2 threads)"
"$HL" train -m "$MODEL" --lexicon "$OUT/reader_lexicon.jsonl" --data "$SYN/train.jsonl" --ctx "$DEC_CTX" --batch 16 \
  --rank "$RANK" --alpha "$((2 * RANK))" --targets q,k,v,o,gate,up,down,output --lr 5e-3 --warmup 20 --steps "$READ_STEPS" \
  --val-fraction 0.02 --eval-every 250 --seed 7 --threads 2 -o "$OUT/reader.gguf" --plain \
  --metrics "$OUT/reader.gguf.metrics.jsonl" --checkpoint "$OUT/reader.gguf.ckpt"
say "scenes declared only now (--lexicon $OUT/now_lexicon.jsonl; nothing retrained)"
python3 - "$OUT/now_lexicon.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(l)
    print(f"  {e['lexeme']}: {' '.join(e['parts'])}")
PY
# decode's notes (how many new words got composed output rows) go to a log, and are said once
: > "$OUT/decode_notes.log"
for s in Ψ1 Ψ2 Ψ3 Ψ4; do
  for f in symbols text; do
    printf '    %-4s %-8s ' "$s" "$f"
    "$HL" decode -m "$MODEL" --lora "$OUT/reader.gguf" --lexicon "$OUT/now_lexicon.jsonl" --scene "$s" --form "$f" \
      --register logical -n 60 --threads 2 2>> "$OUT/decode_notes.log" | tr '\n' ' ' ||
      { cat "$OUT/decode_notes.log" >&2; exit 1; }
    printf '\n'
  done
done
grep -m1 'new word' "$OUT/decode_notes.log" | sed 's/^hyperlora decode: /    (/; s/$/: the unseen words of Ψ3 and Ψ4)/' || true
for split in train heldout_scenes heldout_pairs unseen_words; do
  later=()  # held-out and unseen-word scenes are declared now, on top of the carried lexicon
  case $split in heldout_scenes|unseen_words) later=(--lexicon "$OUT/later_lexicon.jsonl") ;; esac
  "$HL" decode -m "$MODEL" --lora "$OUT/reader.gguf" "${later[@]}" --eval "$OUT/eval_$split.jsonl" --json \
    --threads 2 > "$OUT/eval_$split.json" 2>> "$OUT/decode_notes.log" || { cat "$OUT/decode_notes.log" >&2; exit 1; }
done
t_reader=$(elapsed "$t0")

# 6. measurements and plots
"$HL" decode -m "$MODEL" --lora "$OUT/decoder.gguf" --eval "$TRAIN" --threads 2 > "$OUT/eval_train.txt"
"$HL" decode -m "$MODEL" --lora "$OUT/decoder.gguf" --eval "$HELDOUT" --eval-form symbols --threads 2 > "$OUT/eval_heldout.txt"
"$HL" plot "$OUT/decoder.gguf.metrics.jsonl" -o "$OUT/decoder_loss.svg" --title "scene decoder: train and eval loss"
"$HL" plot "$OUT/reader.gguf.metrics.jsonl" -o "$OUT/reader_loss.svg" --title "reader (generated scenes): train and eval loss"
[ -n "$PRE_METRICS" ] && [ -f "$PRE_METRICS" ] && "$HL" plot "$PRE_METRICS" -o "$OUT/pretrain_loss.svg" --title "default base: pretraining loss"
python3 - "$OUT" "$REPRO_AT" "$h_a2" "$h_a1" "$h_d2" "$h_d1" "$repro" "$t_base" "$t_dec" "$t_decode" "$t_reader" "$(elapsed "$t_all")" "$COMPOSE" "$PRE_METRICS" "$MODEL" <<'PY'
import json, sys, os
out, repro_at, ha2, ha1, hd2, hd1, repro, t_base, t_dec, t_decode, t_reader, t_all, compose, pre_metrics, model = sys.argv[1:]
def recs(p):
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
dec = [r for r in recs(f"{out}/decoder.gguf.metrics.jsonl") if r.get("loss") is not None]
dec_eval0 = [r["eval_loss"] for r in recs(f"{out}/decoder.gguf.metrics.jsonl") if r["step"] == 0]
rd = [r for r in recs(f"{out}/reader.gguf.metrics.jsonl") if r.get("loss") is not None]
pre = recs(pre_metrics) if pre_metrics else []
evals = [r["eval_loss"] for r in dec if r.get("eval_loss") is not None]
pre_eval = [r["eval_loss"] for r in pre if r.get("eval_loss") is not None]
tr = open(f"{out}/eval_train.txt").readline().split()
ho = open(f"{out}/eval_heldout.txt").readline().split()
print("\n  summary")
print("  " + "-" * 76)
print(f"  base model                     {model}")
if pre and pre_eval:
    print(f"  base pretraining loss          {pre[0]['loss']:.3f} -> {pre[-1]['loss']:.3f} (validation {pre_eval[-1]:.3f})")
print(f"  decoder loss (train)           {dec[0]['loss']:.3f} -> {dec[-1]['loss']:.3f}")
if evals: print(f"  decoder eval loss (held-out examples) {dec_eval0[0] if dec_eval0 else float('nan'):.3f} -> {evals[-1]:.3f}")
print(f"  exact match, training outputs  {tr[3]}/{tr[1]} {tr[4]}   CER {tr[6]}")
print(f"  held-out scenes, symbols form  {ho[3]}/{ho[1]} {ho[4]}   CER {ho[6]}")
for line in open(f"{out}/eval_heldout.txt"):
    w = line.split()
    if w[:1] == ["all"] and "recall" in w:  # what the held-out outputs name of their scenes
        print(f"  held-out scenes, read          part recall {w[w.index('recall') + 1]}, precision "
              f"{w[w.index('precision') + 1]}, order {w[w.index('order') + 1]}")
print(f"  reproducibility (2 vs 1 thread) checkpoint at step {repro_at} {ha2} / {ha1}, outputs {hd2} / {hd1}: {repro}")
def ratio(a, k, n):
    return f"{a[k] / a[n]:.3f}" if a.get(n) else "  -  "
def line(label, split):
    a = json.load(open(f"{out}/eval_{split}.json"))["all"]
    cer = a["edits"] / a["ref_chars"] if a["ref_chars"] else 0
    print(f"  {label:<38}{a['n']:>5} {100 * a['exact'] / a['n']:6.1f}%  {cer:5.3f}  {ratio(a, 'parts_hit', 'parts_ref')}"
          f"  {ratio(a, 'order_ok', 'order_n')}")
if rd:
    print(f"\n  reader ({compose}) loss {rd[0]['loss']:.3f} -> {rd[-1]['loss']:.3f}")
print(f"  {'what the reader reads, all forms':<38}{'n':>5} {'exact':>7}  {'CER':>5}  {'parts':>5}  {'order':>5}")
line("training scenes", "train")
line("held-out scenes (*)", "heldout_scenes")
line("training scenes, held-out (form, reg.)", "heldout_pairs")
line("scenes with an unseen word (*)", "unseen_words")
print("  parts: share of the scene's parts the output names; order: named parts in the scene's order;")
print("  (*): declared at decode time with --lexicon, never in the reader's vocabulary; their new words")
print("       (parts of no training scene) read through output rows composed from the trained words' (README)")
print(f"\n  time: base {t_base} s, decoder {t_dec} s, decoding {t_decode} s, reader {t_reader} s, total {t_all} s")
print("  plots: " + ", ".join(p for p in (f"{out}/pretrain_loss.svg", f"{out}/decoder_loss.svg", f"{out}/reader_loss.svg")
                              if os.path.exists(p)))
PY
# The full-scale reader of `make reader`, when it was made over this base.
READER_DIR=${DEMO_READER_DIR:-$ROOT/out/reader}
if [ -s "$READER_DIR/summary.txt" ] &&
   grep -q "^base=$(sha256sum < "$MODEL" | cut -c1-16) " "$READER_DIR/reader.recipe" 2>/dev/null; then
  printf '\n  the full-scale reader over this base (make reader: %s)\n' "$READER_DIR/summary.txt"
  sed 's/^/  /' "$READER_DIR/summary.txt"
else
  printf '\n  (make reader trains the full-scale reader over the wide base, about 40 min on 2 cores;\n'
  printf '   the demo then prints what it reads of scenes it never trained on)\n'
fi
[ "$repro" = PASS ]
