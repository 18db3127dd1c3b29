#!/usr/bin/env bash
# base.sh: pretrains a default base model here, from Debian's fortune corpora
# (English `fortunes`, Russian `fortunes-ru`; nothing is downloaded), and
# caches it beside the recipe it was made by (OUT.gguf.recipe). A cached
# file made by another recipe is pretrained again; one made by the same
# recipe is kept.
#
#   scripts/base.sh HYPERLORA OUT.gguf nano|wide
#
#   nano  preset nano (dim 64, 4 layers), 800 steps: about 30 s on 2 cores.
#         What a fresh clone's `make demo` makes (out/demo/base.gguf).
#   wide  preset micro (dim 128, 4 layers), 2,000 steps: about 6 min on
#         2 cores. What `make base` makes (out/base/wide.gguf); `make demo`
#         reuses it when it is there. Its word rows are far apart (nearest
#         neighbour cosine about 0.5 against 0.85 at dim 64), so a scene
#         decoder can tell hundreds of parts apart (BENCHMARKS.md, "a wider
#         base").
# Both are tied (the LM head is the embedding table) and share one 2048-token
# BPE vocabulary, trained on the same text, so a scene corpus made over one
# names the same tokens over the other.
# Environment (used by the demo's knobs): BASE_PRESET, BASE_STEPS,
# BASE_VOCAB, BASE_CORPUS_BYTES, BASE_TIED (1 or 0), BASE_CORPUS (files).
# The pretraining metrics go to OUT.gguf.pretrain.jsonl.
set -euo pipefail
HL=${1:?usage: base.sh HYPERLORA OUT.gguf nano|wide}
OUT=${2:?usage: base.sh HYPERLORA OUT.gguf nano|wide}
KIND=${3:-nano}
case $KIND in
  nano) preset=nano steps=800 ;;
  wide) preset=micro steps=2000 ;;
  *) echo "base.sh: unknown base \"$KIND\" (nano or wide)" >&2; exit 2 ;;
esac
preset=${BASE_PRESET:-$preset}
steps=${BASE_STEPS:-$steps}
vocab=${BASE_VOCAB:-2048}
bytes=${BASE_CORPUS_BYTES:-40000}
tied=${BASE_TIED:-1}
RECIPE="preset=$preset vocab=$vocab steps=$steps bytes=$bytes tied=$tied corpus=${BASE_CORPUS:-fortunes}"
if [ -s "$OUT" ] && [ "$(cat "$OUT.recipe" 2>/dev/null)" = "$RECIPE" ]; then
  echo "base model: cached $OUT, made by the same recipe (delete it to pretrain again)" >&2
  exit 0
fi
CORPUS=${BASE_CORPUS:-}
if [ -z "$CORPUS" ]; then
  en=(/usr/share/games/fortunes/{literature,wisdom,people,love,men-women,pets,science,platitudes,miscellaneous,education,work,food,magic,songs-poems,fortunes})
  ru=($(ls /usr/share/games/fortunes/ru/*.u8 2>/dev/null | head -n 24 || true)) # none: the check below says so
  CORPUS="${en[*]} ${ru[*]}"
fi
args=()
for f in $CORPUS; do [ -f "$f" ] && args+=(--corpus "$f"); done
[ ${#args[@]} -gt 0 ] || { echo "base.sh: no corpus files found (install fortunes and fortunes-ru)" >&2; exit 1; }
echo "pretraining the default base model $OUT ($KIND: preset $preset, $steps steps, ${#args[@]} corpus files)" >&2
mkdir -p "$(dirname "$OUT")"
tie=(); [ "$tied" = 1 ] && tie=(--tied)
rm -f "$OUT.ckpt" "$OUT.recipe"
"$HL" pretrain "${args[@]}" --max-bytes "$bytes" --preset "$preset" --vocab "$vocab" --steps "$steps" \
  --batch 8 --lr 3e-3 --warmup 30 --eval-every 100 "${tie[@]}" --threads 2 --seed 1 -o "$OUT.tmp" \
  --metrics "$OUT.pretrain.jsonl" --checkpoint "$OUT.ckpt"
mv "$OUT.tmp" "$OUT"
rm -f "$OUT.ckpt"
printf '%s\n' "$RECIPE" > "$OUT.recipe"
