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
. "$ROOT/tests/word_decoder.sh"
train_word_decoder words.gguf || { echo "FAIL: training"; exit 1; }
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
