#!/usr/bin/env bash
# Quantized bases end to end through the command line: quantize a base
# (byte-identical to llama-quantize's file), train a LoRA adapter over it at
# 1 and 2 threads (identical adapter files, optimizer steps included), use
# it in generate (same text at 1 and 2 threads), merge it (the merged model's
# perplexity equals base + adapter's within 1e-4), a scene decoder over the
# quantized base, perplexity (same figures at 1 and 2 threads), and refusals:
# an f32 output of a quantized input to convert, a quantized input to quantize.
# Usage: test_quant_cli.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
Q=$S/oracle/llamacpp/quant/models
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

ok '$HL quantize $Q/q256-f32.gguf -o b.gguf --type q4_K 2>/dev/null && cmp -s b.gguf $Q/q256-Q4_K.gguf' \
  "quantize --type q4_K writes llama-quantize's file"
head -40 "$ROOT/examples/stories/train.jsonl" > d.jsonl
for th in 1 2; do
  $HL train -m b.gguf --data d.jsonl --steps 6 --rank 4 --ctx 64 --batch 2 --val-fraction 0 --threads $th \
    -o a$th.gguf --plain > /dev/null 2>&1
done
ok '[ -s a1.gguf ] && cmp -s a1.gguf a2.gguf' "LoRA training over q4_K: the same adapter at 1 and 2 threads"
ok '$HL generate -m b.gguf --lora a1.gguf -p "Once upon" -n 24 --threads 1 > g1.txt 2>/dev/null && $HL generate -m b.gguf --lora a1.gguf -p "Once upon" -n 24 --threads 2 > g2.txt 2>/dev/null && [ -s g1.txt ] && cmp -s g1.txt g2.txt' \
  "generate with the adapter: the same text at 1 and 2 threads"
ok 'HYPERLORA_DECODE_AHEAD=0 $HL generate -m b.gguf --lora a1.gguf -p "Once upon" -n 24 --threads 2 > g3.txt 2>/dev/null && HYPERLORA_DECODE_AHEAD=4096 $HL generate -m b.gguf --lora a1.gguf -p "Once upon" -n 24 --threads 2 > g4.txt 2>/dev/null && cmp -s g1.txt g3.txt && cmp -s g1.txt g4.txt' \
  "generate: the same text whether decoding asks for its rows early or not"
ok '! HYPERLORA_DECODE_AHEAD=4k $HL generate -m b.gguf -p "Once" -n 2 > /dev/null 2> e.txt && grep -q "HYPERLORA_DECODE_AHEAD=4k" e.txt' \
  "a malformed HYPERLORA_DECODE_AHEAD is refused, named"
STORY=$S/oracle/llamacpp/perplexity/story.txt
ppl() { "$HL" perplexity -f "$STORY" --ctx 128 "$@" 2>/dev/null | sed -n 's/^PPL = \([0-9.]*\).*/\1/p'; }
$HL merge -m b.gguf --lora a1.gguf -o m.gguf 2>/dev/null
# base + adapter with f32 products (HYPERLORA_QPRODUCT=f32), the arithmetic of
# the merged model's f32 projections: the default 8-bit activations would
# differ from it by their own rounding, not by the merge.
P_LORA=$(HYPERLORA_QPRODUCT=f32 ppl -m b.gguf --lora a1.gguf); P_MERGED=$(ppl -m m.gguf); P_BASE=$(ppl -m b.gguf)
ok 'awk -v a="$P_LORA" -v b="$P_MERGED" -v c="$P_BASE" "BEGIN { d = a - b; if (d < 0) d = -d; e = a - c; if (e < 0) e = -e; exit !(a > 0 && d <= 1e-4 * a && e > 10 * d) }"' \
  "the merged model (f32 projections, q4_K embeddings) scores as base + adapter ($P_MERGED vs $P_LORA; base $P_BASE)"
ok '$HL inspect m.gguf 2>/dev/null | grep -q "blk.0.attn_q.weight *f32" && $HL inspect m.gguf 2>/dev/null | grep -q "token_embd.weight *q4_K"' \
  "merge writes the adapted projections as f32 and copies the other blocks"
grep -h '"scene": "Δ2[0-2]"' "$ROOT/examples/scenes/train.jsonl" > sc.jsonl
ok '$HL train -m b.gguf --lexicon $ROOT/examples/scenes/lexicon.jsonl --data sc.jsonl --steps 3 --rank 4 --ctx 96 --val-fraction 0 -o dec.gguf --plain > /dev/null 2>&1 && $HL decode -m b.gguf --lora dec.gguf --scene Δ21 --form symbols --register poetic -n 8 > s.txt 2>/dev/null' \
  "a scene decoder trains and decodes over the quantized base"
ok '$HL perplexity -m b.gguf -f $S/oracle/llamacpp/perplexity/story.txt --ctx 128 --threads 1 > p1.txt 2>/dev/null && $HL perplexity -m b.gguf -f $S/oracle/llamacpp/perplexity/story.txt --ctx 128 --threads 2 > p2.txt 2>/dev/null && grep -q "^PPL = " p1.txt && cmp -s p1.txt p2.txt' \
  "perplexity over q4_K: the same figures at 1 and 2 threads"
ok '! $HL convert b.gguf -o c.gguf 2> e.txt && grep -q "quantized base" e.txt && [ ! -e c.gguf ]' \
  "convert refuses to rewrite a quantized base as f32"
ok '! $HL quantize b.gguf -o bb.gguf --type q8_0 2> e.txt && grep -q "is already q4_K" e.txt && [ ! -e bb.gguf ]' \
  "quantize refuses an already quantized input"
ok '! $HL quantize $Q/q256-f32.gguf -o x.gguf --type q2_K_S 2> e.txt && grep -q "not one of" e.txt && grep -q "q4_K_S, q4_K_M" e.txt && [ ! -e x.gguf ]' \
  "quantize names the types and mixes it writes"
ok '$HL quantize $Q/q256-f32.gguf -o m4.gguf --type Q4_K_M 2>/dev/null && cmp -s m4.gguf $Q/q256-Q4_K_M.gguf' \
  "quantize --type Q4_K_M writes llama-quantize's mix"

echo "test_quant_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
