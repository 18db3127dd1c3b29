#!/usr/bin/env bash
# test_arch_cli.sh: the commands on every supported architecture (the shared
# llama3_tiny, qwen2_tiny and qwen3_tiny): train writes a GGUF adapter naming
# the base's architecture and a PEFT directory; generate with --lora gives
# the same greedy text as generate on the merged model; combine cat of an
# adapter and its negation gives the base's text; a scene decoder trains on
# qwen3 and decodes.
# Usage: test_arch_cli.sh HYPERLORA SHARED
set -uo pipefail
HL=$1; S=$2
A=$S/oracle/llamacpp/arch
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d /tmp/hl_arch_cli_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
printf '%s\n' '{"text": "Once upon a time there was a little cat."}' \
  '{"prompt": "Q: what colour is the sky?\nA:", "completion": " blue"}' \
  '{"text": "The rain fell on the old house."}' > "$T/data.jsonl"
for m in llama3_tiny qwen2_tiny qwen3_tiny; do
  arch=${m%_tiny}; [ "$arch" = llama3 ] && arch=llama
  if "$HL" train -m "$A/$m.gguf" --data "$T/data.jsonl" --rank 2 --alpha 4 --steps 4 --batch 2 --ctx 16 \
      --lr 2e-2 --val-fraction 0 --plain -o "$T/$m.a.gguf" --peft-out "$T/$m.peft" > "$T/$m.train.log" 2>&1; then
    ok "$m: train"
  else bad "$m: train"; cat "$T/$m.train.log"; continue; fi
  [ -s "$T/$m.peft/adapter_model.safetensors" ] && ok "$m: PEFT written" || bad "$m: PEFT written"
  "$HL" inspect "$T/$m.a.gguf" | grep -q "general.architecture.*\"$arch\"" && ok "$m: adapter names $arch" \
    || bad "$m: adapter architecture"
  g1=$("$HL" generate -m "$A/$m.gguf" --lora "$T/$m.a.gguf" -p "The rain" -n 8 2> /dev/null)
  "$HL" merge -m "$A/$m.gguf" --lora "$T/$m.a.gguf" -o "$T/$m.merged.gguf" > /dev/null 2>&1 || bad "$m: merge"
  g2=$("$HL" generate -m "$T/$m.merged.gguf" -p "The rain" -n 8 2> /dev/null)
  [ -n "$g1" ] && [ "$g1" = "$g2" ] && ok "$m: --lora and merged agree" || bad "$m: --lora '$g1' vs merged '$g2'"
  "$HL" combine -m "$A/$m.gguf" --method cat --lora "$T/$m.a.gguf" --lora-weighted "$T/$m.a.gguf:-1" \
    -o "$T/$m.zero.gguf" > /dev/null 2>&1 || bad "$m: combine"
  g3=$("$HL" generate -m "$A/$m.gguf" --lora "$T/$m.zero.gguf" -p "The rain" -n 8 2> /dev/null)
  g4=$("$HL" generate -m "$A/$m.gguf" -p "The rain" -n 8 2> /dev/null)
  [ -n "$g4" ] && [ "$g3" = "$g4" ] && ok "$m: adapter minus itself is the base" || bad "$m: '$g3' vs base '$g4'"
  [ "$g1" != "$g4" ] && ok "$m: the trained adapter changes the text" || echo "note $m: adapter text equals base text"
done
if "$HL" train -m "$A/qwen3_tiny.gguf" --data "$ROOT/examples/scenes/train.jsonl" \
    --lexicon "$ROOT/examples/scenes/lexicon.jsonl" --rank 2 --alpha 4 --steps 2 --batch 2 --ctx 64 --plain \
    -o "$T/dec.gguf" > "$T/dec.log" 2>&1; then ok "qwen3: scene decoder trains"; else bad "qwen3: scene decoder"; cat "$T/dec.log"; fi
out=$("$HL" decode -m "$A/qwen3_tiny.gguf" --lora "$T/dec.gguf" --scene "Δ21" --form symbols --register poetic -n 4 2>&1)
rc=$?
[ $rc -eq 0 ] && [ -n "$out" ] && ok "qwen3: decode" || bad "qwen3: decode rc $rc: $out"
exit $fail
