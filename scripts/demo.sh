#!/usr/bin/env bash
# The end-to-end demo behind `make demo`:
#   1. a default base model: pretrained here from Debian's fortune corpora
#      (English `fortunes`, Russian `fortunes-ru`), cached after the first run,
#      or MODEL=path.gguf;
#   2. a scene decoder (LoRA + the example hyperlexeme lexicon) trained on
#      examples/scenes/train.jsonl;
#   3. every demo scene decoded in each form and register;
#   4. reproducibility: the decoder trained and the scenes decoded again at
#      another thread count, compared by SHA-256;
#   5. a summary table and the loss plots (SVG).
# Usage: scripts/demo.sh HYPERLORA_BINARY [MODEL.gguf]
# Knobs (environment): DEMO_OUT, DEMO_PRETRAIN_STEPS, DEMO_DECODER_STEPS,
# DEMO_CORPUS_BYTES, DEMO_SCENES, DEMO_LEXICON, DEMO_TRAIN, DEMO_HELDOUT,
# DEMO_PRESET, DEMO_VOCAB, DEMO_CORPUS (space-separated files).
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
mkdir -p "$OUT"
t_all=$(date +%s.%N)
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# 1. the base model
t0=$(date +%s.%N)
if [ -z "$MODEL" ]; then
  MODEL=$OUT/base.gguf
  if [ -s "$MODEL" ]; then
    say "base model: cached $MODEL (delete it to pretrain again)"
  else
    CORPUS=${DEMO_CORPUS:-}
    if [ -z "$CORPUS" ]; then
      en=(/usr/share/games/fortunes/{literature,wisdom,people,love,men-women,pets,science,platitudes,miscellaneous,education,work,food,magic,songs-poems,fortunes})
      ru=($(ls /usr/share/games/fortunes/ru/*.u8 2>/dev/null | head -n 24))
      CORPUS="${en[*]} ${ru[*]}"
    fi
    args=()
    for f in $CORPUS; do [ -f "$f" ] && args+=(--corpus "$f"); done
    [ ${#args[@]} -gt 0 ] || { echo "demo: no corpus files found (install fortunes and fortunes-ru)" >&2; exit 1; }
    say "pretraining the default base model (${#args[@]} corpus files, $PRE_STEPS steps)"
    "$HL" pretrain "${args[@]}" --max-bytes "${DEMO_CORPUS_BYTES:-40000}" --preset "${DEMO_PRESET:-nano}" \
      --vocab "${DEMO_VOCAB:-2048}" --steps "$PRE_STEPS" --batch 8 --lr 3e-3 --warmup 30 --eval-every 100 \
      --threads 2 --seed 1 -o "$MODEL.tmp" --metrics "$OUT/pretrain.metrics.jsonl" --checkpoint "$OUT/pretrain.ckpt"
    mv "$MODEL.tmp" "$MODEL"
  fi
else
  say "base model: $MODEL"
fi
t_base=$(elapsed "$t0")
"$HL" generate -m "$MODEL" -p "The" -n 24 --threads 2 2>/dev/null | head -c 300 >&2 || true

# 2. the scene decoder (threads 2), then again at threads 1 for the reproducibility check
# The default base's BPE keeps examples short; byte-level bases (stories260K) need longer rows.
DEC_CTX=${DEMO_DECODER_CTX:-$([ "$MODEL" = "$OUT/base.gguf" ] && echo 64 || echo 144)}
train_decoder() { # $1 threads, $2 output
  "$HL" train -m "$MODEL" --lexicon "$LEX" --data "$TRAIN" --ctx "$DEC_CTX" --batch 16 \
    --rank 16 --alpha 32 --targets q,k,v,o,gate,up,down,output --lr 5e-3 --warmup 20 --steps "$DEC_STEPS" \
    --val-fraction 0.05 --eval-every 100 --seed 7 --threads "$1" -o "$2" --plain \
    --metrics "$2.metrics.jsonl" --checkpoint "$2.ckpt"
}
say "training the scene decoder ($DEC_STEPS steps, 2 threads)"
t0=$(date +%s.%N)
train_decoder 2 "$OUT/decoder.gguf"
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
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8", errors="replace")]
last = None
for scene, form, reg, text in rows:
    if scene != last:
        print(f"\n  {scene}")
        last = scene
    print(f"    {form:<9}{reg:<10} {text}")
PY

# 4. reproducibility: retrain and decode at 1 thread, compare hashes
say "reproducibility: the same run at 1 thread"
train_decoder 1 "$OUT/decoder_t1.gguf" > /dev/null 2>&1
decode_all 1 "$OUT/decoder_t1.gguf" > "$OUT/decoded_t1.tsv"
h_a2=$(sha256sum < "$OUT/decoder.gguf" | cut -c1-16); h_a1=$(sha256sum < "$OUT/decoder_t1.gguf" | cut -c1-16)
h_d2=$(sha256sum < "$OUT/decoded_t2.tsv" | cut -c1-16); h_d1=$(sha256sum < "$OUT/decoded_t1.tsv" | cut -c1-16)
repro=PASS
[ "$h_a2" = "$h_a1" ] && [ "$h_d2" = "$h_d1" ] || repro=FAIL

# 5. measurements and plots
"$HL" decode -m "$MODEL" --lora "$OUT/decoder.gguf" --eval "$TRAIN" --threads 2 > "$OUT/eval_train.txt"
"$HL" decode -m "$MODEL" --lora "$OUT/decoder.gguf" --eval "$HELDOUT" --eval-form symbols --threads 2 > "$OUT/eval_heldout.txt"
"$HL" plot "$OUT/decoder.gguf.metrics.jsonl" -o "$OUT/decoder_loss.svg" --title "scene decoder: train and eval loss"
[ -f "$OUT/pretrain.metrics.jsonl" ] && "$HL" plot "$OUT/pretrain.metrics.jsonl" -o "$OUT/pretrain_loss.svg" --title "default base: pretraining loss"
python3 - "$OUT" "$h_a2" "$h_a1" "$h_d2" "$h_d1" "$repro" "$t_base" "$t_dec" "$t_decode" "$(elapsed "$t_all")" <<'PY'
import json, sys, os
out, ha2, ha1, hd2, hd1, repro, t_base, t_dec, t_decode, t_all = sys.argv[1:]
def recs(p):
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
dec = [r for r in recs(f"{out}/decoder.gguf.metrics.jsonl") if r.get("loss") is not None]
dec_eval0 = [r["eval_loss"] for r in recs(f"{out}/decoder.gguf.metrics.jsonl") if r["step"] == 0]
pre = recs(f"{out}/pretrain.metrics.jsonl")
evals = [r["eval_loss"] for r in dec if r.get("eval_loss") is not None]
pre_eval = [r["eval_loss"] for r in pre if r.get("eval_loss") is not None]
tr = open(f"{out}/eval_train.txt").readline().split()
ho = open(f"{out}/eval_heldout.txt").readline().split()
print("\n  summary")
print("  " + "-" * 64)
if pre:
    print(f"  base pretraining loss          {pre[0]['loss']:.3f} -> {pre[-1]['loss']:.3f} (validation {pre_eval[-1]:.3f})" if pre_eval else "")
print(f"  decoder loss (train)           {dec[0]['loss']:.3f} -> {dec[-1]['loss']:.3f}")
if evals: print(f"  decoder eval loss (held-out examples) {dec_eval0[0] if dec_eval0 else float('nan'):.3f} -> {evals[-1]:.3f}")
print(f"  exact match, training outputs  {tr[3]}/{tr[1]} {tr[4]}   CER {tr[6]}")
print(f"  held-out scenes, symbols form  {ho[3]}/{ho[1]} {ho[4]}   CER {ho[6]}")
for line in open(f"{out}/eval_heldout.txt"):
    w = line.split()
    if w[:1] == ["all"] and "recall" in w:  # what the held-out outputs name of their scenes
        print(f"  held-out scenes, read          part recall {w[w.index('recall') + 1]}, precision "
              f"{w[w.index('precision') + 1]}, order {w[w.index('order') + 1]}")
print(f"  reproducibility (2 vs 1 thread) adapter {ha2} / {ha1}, outputs {hd2} / {hd1}: {repro}")
print(f"  time: base {t_base} s, decoder {t_dec} s, decoding {t_decode} s, total {t_all} s")
print("  plots: " + ", ".join(p for p in (f"{out}/pretrain_loss.svg", f"{out}/decoder_loss.svg") if os.path.exists(p)))
PY
[ "$repro" = PASS ]
