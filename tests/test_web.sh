#!/usr/bin/env bash
# test_web.sh: the page `hyperlora serve` shows at /, driven in Debian's
# headless Chromium by Playwright (tests/web/page_test.mjs): it loads the
# lexicon and the adapters, decodes a scene picked from the lexicon (the
# streamed text must be exactly what `hyperlora decode` prints) and a scene
# typed from parts (exactly what /v1/scenes/decode answers for those parts),
# and shows what each scene is made of. The screenshot goes to
# $HL_WEB_SCREENSHOT when set.
# Skips when node or chromium is missing, unless HL_REQUIRE_ALL=1 (CI).
# Usage: test_web.sh HYPERLORA SHARED
set -uo pipefail
. "$(dirname "$0")/serve_common.sh" "$@"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || skip "chromium is missing at $CHROMIUM"
# Playwright's driver from the lock file, installed once per build tree.
npm_packages web-test "$ROOT/tests/web"
W=$BUILD/web-test
cp "$ROOT/tests/web/page_test.mjs" "$W/"
head -40 "$ROOT/examples/scenes/lexicon.jsonl" > lex40.jsonl
train_decoder dec.gguf lex40.jsonl 20
start_server --lora dec=dec.gguf

SHOT=${HL_WEB_SCREENSHOT:-$T/page.png}
CHROMIUM=$CHROMIUM node "$W/page_test.mjs" "http://127.0.0.1:$PORT/" "$SHOT" > page.json 2> page.err ||
  { cat page.err; echo "FAIL: the page test"; exit 1; }
[ -s "$SHOT" ] || { echo "FAIL: no screenshot"; exit 1; }

want_lexeme=$($HL decode -m $M --lora dec.gguf --scene Δ21 -n 30 2>/dev/null)
want_typed=$(curl -s "http://127.0.0.1:$PORT/v1/scenes/decode" \
  -d '{"parts":["кот","дом","тишина"],"max_tokens":30,"adapters":[{"name":"dec","scale":1}]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
python3 - "$want_lexeme" "$want_typed" <<'PY'
import json, sys
want_lexeme, want_typed = sys.argv[1], sys.argv[2]
r = json.load(open("page.json"))
fails = []
def check(ok, what):
    if not ok: fails.append(what)
check(len(r["options"]) == 40 and r["options"][0] == "Δ21", "the scene list holds the decoder's 40 lexemes")
check(r["adapters"] == ["dec"] and r["loaded"] == ["dec"], "the adapter is listed and shown as loaded")
check(r["lexeme"]["text"] == want_lexeme, "Δ21 streamed %r, decode prints %r" % (r["lexeme"]["text"], want_lexeme))
check(r["lexeme"]["status"].startswith("30 tokens"), "status after Δ21: %r" % r["lexeme"]["status"])
check(all(p in r["explain"] for p in ("тишина", "вход", "страх", "tone=fear", "nearest scenes")),
      "the explanation of Δ21 names its parts, facets and neighbours")
check(r["typed"]["text"] == want_typed, "typed parts streamed %r, the API answers %r" % (r["typed"]["text"], want_typed))
check("typed" in r["typed_explain"] and "кот" in r["typed_explain"], "the typed scene is explained")
check(not r["errors"], "page errors: %r" % r["errors"])
for f in fails: print("FAIL:", f)
if fails: sys.exit(1)
print("ok: page decoded Δ21 (%r) and a typed scene, explained both" % r["lexeme"]["text"][:40])
PY
