#!/usr/bin/env bash
# test_tokenize_cli.sh: `hyperlora tokenize` prints llama.cpp's ids for the
# shared Llama-3 and Qwen tokenizers (parse-special on and off, BOS as the
# file says), SentencePiece too, reads text from a file byte for byte, and
# refuses invalid UTF-8 with its offset and bad arguments with a message.
# Usage: test_tokenize_cli.sh HYPERLORA SHARED
set -uo pipefail
HL=$1; S=$2
A=$S/oracle/llamacpp/arch
T=$(mktemp -d /tmp/hl_tokenize_XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
expect() { # NAME WANT GOT
  if [ "$2" != "$3" ]; then echo "FAIL $1: want '$2', got '$3'"; fail=1; else echo "ok   $1"; fi
}
expect "llama3 ids" "[128000, 9906, 1917]" "$("$HL" tokenize -m "$A/llama3_tiny.gguf" -p "Hello world" --ids)"
expect "llama3 --no-bos" "[9906, 1917]" "$("$HL" tokenize -m "$A/llama3_tiny.gguf" -p "Hello world" --ids --no-bos)"
expect "qwen no BOS" "[9707, 1879]" "$("$HL" tokenize -m "$A/qwen2_tiny.gguf" -p "Hello world" --ids)"
expect "qwen control parsed" "[151644, 872]" "$("$HL" tokenize -m "$A/qwen3_tiny.gguf" -p "<|im_start|>user" --ids)"
nosp=$("$HL" tokenize -m "$A/qwen3_tiny.gguf" -p "<|im_start|>user" --ids --no-special)
case "$nosp" in "[151644"*) expect "qwen --no-special" "not 151644 first" "$nosp";; *) echo "ok   qwen --no-special ($nosp)";; esac
expect "qwen user-defined always" "[151667]" "$("$HL" tokenize -m "$A/qwen3_tiny.gguf" -p "<think>" --ids --no-special)"
# the pieces view: one line per token
lines=$("$HL" tokenize -m "$A/llama3_tiny.gguf" -p " Hello, world!" | wc -l)
expect "pieces lines" "5" "$lines"
expect "piece text" "  9906 -> 'Hello'" "$("$HL" tokenize -m "$A/llama3_tiny.gguf" -p "Hello" --no-bos)"
# SentencePiece (stories260K): BOS then the llama2.c ids
sp=$("$HL" tokenize -m "$S/models/stories260K/stories260K-f32.gguf" -p "Once upon a time" --ids)
case "$sp" in "[1, "*) echo "ok   sentencepiece ($sp)";; *) echo "FAIL sentencepiece: $sp"; fail=1;; esac
# a file with a NUL byte is read whole
printf 'a\0b' > "$T/nul.txt"
expect "file with NUL" "[64, 188, 65]" "$("$HL" tokenize -m "$A/qwen3_tiny.gguf" -f "$T/nul.txt" --ids)"
# refusals
printf 'ok\xffno' > "$T/bad.txt"
msg=$("$HL" tokenize -m "$A/qwen3_tiny.gguf" -f "$T/bad.txt" 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$msg" == *"offset 2"* ]]; then echo "ok   invalid UTF-8 refused: $msg"; else echo "FAIL invalid UTF-8: rc $rc: $msg"; fail=1; fi
msg=$("$HL" tokenize -m "$A/qwen3_tiny.gguf" 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$msg" == *"-p TEXT"* ]]; then echo "ok   no text refused"; else echo "FAIL no text: rc $rc: $msg"; fail=1; fi
msg=$("$HL" tokenize -m "$T/missing.gguf" -p x 2>&1); rc=$?
if [ $rc -ne 0 ] && [[ "$msg" == *"missing.gguf"* ]]; then echo "ok   missing model refused"; else echo "FAIL missing model: rc $rc: $msg"; fail=1; fi
exit $fail
