#!/usr/bin/env bash
# Scenes declared after training: `decode --lexicon EXTRA.jsonl` adds entries
# to the lexicon a decoder carries (carried tokens keep their ids, so the
# trained scenes decode as before), a lexeme in both or another composition
# rule is refused naming the file and the adapter, a scene word that is not a
# lexeme is refused with the nearest lexemes (in decode and in training data),
# and plain text needs --scene-text. Words that are parts only of the extra
# scenes get composed output-adapter rows (word_rows.h), unless --no-word-rows.
# Usage: test_scene_extra.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=$S/models/stories260K/stories260K-f32.gguf
L=$ROOT/examples/scenes
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

head -40 "$L/lexicon.jsonl" > lex40.jsonl     # Δ21 ... : the carried lexicon
tail -8 "$L/lexicon.jsonl" > extra.jsonl      # Δ35 ... : declared after training
grep -h '"scene": "Δ2[0-2]"' "$L/train.jsonl" > tr.jsonl
$HL train -m $M --lexicon lex40.jsonl --compose parts+facets --data tr.jsonl --steps 20 --rank 4 --ctx 144 \
  --val-fraction 0 --threads 2 -o dec.gguf --plain 2>/dev/null
ok '[ -s dec.gguf ]' "a decoder carrying 40 lexemes"
D="-m $M --lora dec.gguf --form symbols --register poetic -n 16"

ok '! $HL decode $D --scene Δ35 > out.txt 2> err.txt && [ ! -s out.txt ] && grep -q "scene word \"Δ35\" is not a lexeme" err.txt && grep -q "nearest: Δ" err.txt' \
  "an unknown scene is refused with its name and the nearest lexemes"
ok '! $HL decode $D --scene "Δ21 hello" 2> err.txt && grep -q "\"hello\"" err.txt && grep -q -- "--scene-text" err.txt' \
  "plain text in a scene is refused and the flag named"
ok '$HL decode $D --scene-text --scene "Δ21 hello" > t.txt 2>/dev/null' "--scene-text allows it"

$HL decode $D --scene Δ21 > base21.txt 2>/dev/null
ok '$HL decode $D --lexicon extra.jsonl --scene Δ35 --threads 1 > x1.txt 2>/dev/null && $HL decode $D --lexicon extra.jsonl --scene Δ35 --threads 2 > x2.txt 2>/dev/null && cmp -s x1.txt x2.txt' \
  "a scene from --lexicon EXTRA decodes, the same at 1 and 2 threads"
ok '$HL decode $D --lexicon extra.jsonl --scene Δ21 2>/dev/null | cmp -s - base21.txt' \
  "the carried scenes decode exactly as without the extra lexicon"
ok '$HL decode -m $M --lora dec.gguf --lexicon extra.jsonl --scene "Δ21 Δ35" -n 8 > two.txt 2>/dev/null' \
  "a scene mixing carried and extra lexemes decodes"
ok '! $HL decode $D --lexicon lex40.jsonl --scene Δ21 2> err.txt && grep -q "lex40.jsonl:1: lexeme \"Δ21\" is already in the lexicon the adapter carries" err.txt' \
  "a lexeme both define is refused, naming the file, line and adapter"
{ echo '{"compose": "parts"}'; cat extra.jsonl; } > other_rule.jsonl
ok '! $HL decode $D --lexicon other_rule.jsonl --scene Δ35 2> err.txt && grep -q "conflicts" err.txt' \
  "an extra lexicon with another composition rule is refused"
ok '! $HL decode $D --lexicon extra.jsonl --compose parts --scene Δ35 2> err.txt && grep -q "drop --compose" err.txt' \
  "--compose with a carried lexicon is refused"
: > empty.jsonl
ok '! $HL decode -m $M --lora dec.gguf --eval empty.jsonl > out.txt 2> err.txt && grep -q "no scene examples" err.txt' \
  "decode --eval over a file without examples is an error, not a rate over nothing"
ok '$HL combine -m $M --method cat --lora dec.gguf -o cat.gguf > /dev/null 2>&1 && $HL decode -m $M --lora cat.gguf --form symbols --register poetic -n 16 --scene Δ21 2>/dev/null | cmp -s - base21.txt' \
  "combine keeps the decoder's lexicon: its one-adapter cat decodes a scene as the decoder does"
ok '$HL scene explain Δ35 -m $M --lora dec.gguf --lexicon extra.jsonl > ex.txt 2>/dev/null && grep -q "parts: dark mirror fear" ex.txt' \
  "scene explain sees the extra lexemes"
ok '! $HL train -m $M --lexicon lex40.jsonl --data "$L/train.jsonl" --steps 1 -o bad.gguf 2> err.txt && grep -q "train.jsonl:[0-9]*: .*scene word \"Δ3[5-9]\|train.jsonl:[0-9]*: .*scene word \"Δ4" err.txt' \
  "training data whose scene is not a lexeme is refused with its line"
# New words: a decoder with an output adapter, trained on scenes over 20 of the
# base's one-token words, then given scenes holding two words it never named.
. "$ROOT/tests/word_decoder.sh"
train_word_decoder words.gguf
N="-m $M --lora words.gguf --form symbols --register logical -n 12"
ok '$HL decode $N --lexicon newwords.jsonl --scene N1 --threads 1 > n1.txt 2> n1.err && grep -q "2 new words read through output rows composed from 20 trained words" n1.err' \
  "new words of an extra lexicon get composed output rows, and decode says so"
ok '$HL decode $N --lexicon newwords.jsonl --scene N1 --threads 2 2>/dev/null | cmp -s - n1.txt' \
  "the same bytes at 2 threads"
ok '$HL decode $N --lexicon newwords.jsonl --scene N1 --no-word-rows > n0.txt 2> n0.err && ! grep -q "new word" n0.err' \
  "--no-word-rows keeps the trained rows"
$HL decode $N --scene W3 > w3.txt 2>/dev/null
ok '$HL decode $N --lexicon newwords.jsonl --no-word-rows --scene W3 2>/dev/null | cmp -s - w3.txt' \
  "with --no-word-rows the carried scenes decode exactly as without the extra lexicon"
ok '$HL decode $N --lexicon extra.jsonl --scene W3 2> e.err | cmp -s - w3.txt && ! grep -q "read through" e.err && grep -q "spelled by several tokens kept their trained rows" e.err' \
  "new words spelled by several tokens get no rows, and decode says so"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
