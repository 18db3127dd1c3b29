#!/usr/bin/env bash
# The demo pipeline end to end on a byte-level BPE base: qwen2_tiny (Qwen's
# 151,936-token vocabulary, QKV biases, tied output) from the shared
# references, with a few steps per decoder: both decoders train, the scene
# corpus is generated from the vocabulary's " word" pieces, scenes declared
# at decode time decode, the reproducibility check passes, the summary
# prints. Slow only because of the vocabulary (about 3 min on 2 cores).
# Usage: test_demo_bpe_slow.sh HYPERLORA SHARED
set -euo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "$2" && pwd)/oracle/llamacpp/arch/qwen2_tiny.gguf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
DEMO_OUT=$T/out DEMO_RANK=8 DEMO_DECODER_STEPS=4 DEMO_READER_STEPS=4 DEMO_SYNTH_SCENES=200 DEMO_EVAL_N=6 \
  DEMO_SCENES="Δ21" bash "$ROOT/scripts/demo.sh" "$HL" "$MODEL" > "$T/demo.log" 2>&1 || {
  tail -40 "$T/demo.log"; echo "FAIL: the demo exited non-zero on qwen2_tiny"; exit 1; }
fail=0
check() { if eval "$1"; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }
check 'grep -q "reproducibility (2 vs 1 thread).*PASS" "$T/demo.log"' "reproducibility check passes"
check 'grep -q "held-out scenes (\*)" "$T/demo.log"' "the reader's splits are judged"
check '[ "$(grep -c "^    Ψ[1-4] " "$T/demo.log")" -eq 8 ]' "scenes declared at decode time decode"
check 'grep -q "words en 60" "$T/demo.log"' "the corpus draws 60 English words from the byte-level vocabulary"
if [ $fail -ne 0 ]; then tail -40 "$T/demo.log"; exit 1; fi
echo "test_demo_bpe_slow: all checks passed"
