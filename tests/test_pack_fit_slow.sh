#!/usr/bin/env bash
# The fit that document packing must give with the defaults (what packing
# promises): on stories260K, 48 prompt/completion pairs and 48 scene
# examples made here (a fixed bash RANDOM seed; not tuned against), trained
# with the defaults except --val-fraction 0 (and the run's rank, alpha, steps
# and lr), must each come back exactly for at least 90% of the examples:
# prompts through `generate --lora`, scenes through `decode --eval`.
# Usage: test_pack_fit_slow.sh HYPERLORA SHARED
set -euo pipefail
HL=$1
SHARED=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$SHARED/models/stories260K/stories260K-f32.gguf
[ -f "$MODEL" ] || { echo "missing $MODEL"; echo "0 passed, 1 failed"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUN=(--rank 16 --alpha 32 --steps 600 --lr 3e-3 --val-fraction 0 --threads 2 --plain)
syms=('*' '#' '+' '=' '~' '^' '%' '@' '&' '!' '?' '<' '>' '|')

# 48 prompt/completion pairs: "Scene NAME N as symbols:" -> " ab cd ..."
RANDOM=4242
names=(alder brook cinder dune ember fjord grove heath islet jetty kelp loam marsh nook oasis pike quay reef spire tarn umber vale wharf yew)
for i in $(seq 0 47); do
  c=""
  for k in $(seq 1 $((3 + RANDOM % 4))); do c="$c ${syms[$((RANDOM % 14))]}${syms[$((RANDOM % 14))]}"; done
  printf '{"prompt": "Scene %s %d as symbols:", "completion": "%s"}\n' "${names[$((i % 24))]}" $((i / 24 + 1)) "$c"
done > "$T/pc.jsonl"

# 48 scene examples: every lexeme of the example lexicon, symbols or formula form
RANDOM=777
forms=(symbols formula)
regs=(logical technical)
i=0
grep -o '"lexeme": "[^"]*"' "$ROOT/examples/scenes/lexicon.jsonl" | sed 's/"lexeme": "\(.*\)"/\1/' > "$T/lexemes"
while IFS= read -r lx; do
  c=""
  for k in $(seq 1 $((3 + RANDOM % 4))); do c="$c${c:+ }${syms[$((RANDOM % 14))]}${syms[$((RANDOM % 14))]}"; done
  printf '{"scene": "%s", "form": "%s", "register": "%s", "output": "%s"}\n' "$lx" "${forms[$((i % 2))]}" \
    "${regs[$((i / 2 % 2))]}" "$c"
  i=$((i + 1))
done < "$T/lexemes" > "$T/scenes.jsonl"
[ "$(wc -l < "$T/scenes.jsonl")" -eq 48 ] || { echo "expected 48 scene examples"; echo "0 passed, 1 failed"; exit 1; }

fail=0
"$HL" train -m "$MODEL" --data "$T/pc.jsonl" "${RUN[@]}" -o "$T/pc.gguf" > "$T/pc.log" 2>&1 || {
  tail -5 "$T/pc.log"; echo "0 passed, 1 failed"; exit 1; }
grep -E "rows:|done:" "$T/pc.log"
ok=0
while IFS= read -r line; do
  p=$(echo "$line" | sed 's/.*"prompt": "\([^"]*\)".*/\1/')
  c=$(echo "$line" | sed 's/.*"completion": "\([^"]*\)".*/\1/')
  out=$("$HL" generate -m "$MODEL" --lora "$T/pc.gguf" -p "$p" -n 48 2>/dev/null)
  [ "$out" = "$p$c" ] && ok=$((ok + 1))
done < "$T/pc.jsonl"
echo "prompt/completion pairs reproduced exactly: $ok of 48"
[ $((ok * 100)) -ge $((48 * 90)) ] || { echo "FAIL: below 90%"; fail=1; }

"$HL" train -m "$MODEL" --lexicon "$ROOT/examples/scenes/lexicon.jsonl" --compose parts+facets \
  --data "$T/scenes.jsonl" "${RUN[@]}" -o "$T/sc.gguf" > "$T/sc.log" 2>&1 || {
  tail -5 "$T/sc.log"; echo "0 passed, 1 failed"; exit 1; }
grep -E "rows:|done:" "$T/sc.log"
"$HL" decode -m "$MODEL" --lora "$T/sc.gguf" --eval "$T/scenes.jsonl" --threads 2 > "$T/eval.txt"
read -r _ n _ exact _ < "$T/eval.txt"
echo "scene examples reproduced exactly: $exact of $n"
[ "$n" -eq 48 ] && [ $((exact * 100)) -ge $((48 * 90)) ] || { echo "FAIL: below 90%"; fail=1; }
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || { echo "0 passed, 1 failed"; exit 1; }
