#!/usr/bin/env bash
# test_serve_word_rows.sh: `serve --lexicon` composes output-adapter rows for
# the new words of its extra scenes when it loads a decoder (word_rows.h),
# says how many in GET /v1/models, and decodes a scene holding them to the
# same bytes as `decode --lexicon`; --no-word-rows composes none, and then
# matches `decode --no-word-rows`.
# Usage: test_serve_word_rows.sh HYPERLORA SHARED
set -uo pipefail
. "$(dirname "$0")/serve_common.sh" "$@"
command -v curl > /dev/null || skip "curl is not installed"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# A decoder with an output adapter over 20 of the base's one-token words.
W=(the and was her with said play his that mom she you they big friend little time had there for)
: > wl.jsonl; : > wt.jsonl
for i in $(seq 0 19); do
  a=${W[$i]}; b=${W[$(( (i + 7) % 20 ))]}
  echo "{\"lexeme\": \"W$i\", \"parts\": [\"$a\", \"$b\"]}" >> wl.jsonl
  echo "{\"scene\": \"W$i\", \"form\": \"symbols\", \"register\": \"logical\", \"output\": \"$a — $b\"}" >> wt.jsonl
done
echo '{"lexeme": "N1", "parts": ["upon", "very", "the"]}' > newwords.jsonl
$HL train -m "$M" --lexicon wl.jsonl --compose decay --data wt.jsonl --steps 10 --rank 4 --ctx 32 \
  --targets q,v,output --val-fraction 0 --threads 2 -o words.gguf --plain > /dev/null 2>&1 || { echo "FAIL: training"; exit 1; }
REQ='{"scene": "N1", "form": "symbols", "register": "logical", "max_tokens": 12, "adapters": [{"name": "w"}]}'
for mode in rows none; do
  flag=(); [ $mode = none ] && flag=(--no-word-rows)
  $HL decode -m "$M" --lora words.gguf --lexicon newwords.jsonl --scene N1 --form symbols --register logical -n 12 \
    "${flag[@]}" > cli.txt 2>/dev/null || fail "$mode: decode"
  start_server --lora w=words.gguf --lexicon newwords.jsonl "${flag[@]}"
  want=$([ $mode = rows ] && echo 2 || echo 0)
  curl -s -o models.json "$U/v1/models"
  got=$(python3 -c 'import json; print([m.get("new_word_rows") for m in json.load(open("models.json"))["data"] if m["id"] == "w"][0])')
  [ "$got" = "$want" ] || fail "$mode: /v1/models says new_word_rows $got, wanted $want"
  curl -s -o out.json -d "$REQ" "$U/v1/scenes/decode"
  python3 -c 'import json,sys; sys.stdout.write(json.load(open("out.json"))["text"])' > srv.txt 2>/dev/null ||
    fail "$mode: no text: $(cat out.json)"
  cmp -s <(tr -d '\n' < cli.txt) srv.txt || fail "$mode: server \"$(cat srv.txt)\" against decode \"$(cat cli.txt)\""
  kill "$PID"; wait "$PID" 2>/dev/null; PID=
done
[ $fails -eq 0 ] && echo "test_serve_word_rows: ok" || echo "test_serve_word_rows: $fails failed"
[ $fails -eq 0 ]
