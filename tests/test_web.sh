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
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
BUILD=$(dirname "$HL")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=$S/models/stories260K/stories260K-f32.gguf
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
skip() {
  if [ "${HL_REQUIRE_ALL:-0}" = 1 ]; then echo "FAIL: $1"; exit 1; fi
  echo "SKIP: $1 (scripts/deps.sh test installs it)"; exit 0
}
command -v node >/dev/null || skip "node is missing"
command -v npm >/dev/null || skip "npm is missing"
[ -x "$CHROMIUM" ] || skip "chromium is missing at $CHROMIUM"

# Playwright's driver from the lock file, installed once per build tree.
W=$BUILD/web-test
if [ ! -d "$W/node_modules/playwright-core" ] || ! cmp -s "$ROOT/tests/web/package-lock.json" "$W/package-lock.json"; then
  mkdir -p "$W" && cp "$ROOT/tests/web/package.json" "$ROOT/tests/web/package-lock.json" "$W/" &&
    (cd "$W" && npm ci --no-audit --no-fund >npm.log 2>&1) || { cat "$W/npm.log"; echo "FAIL: npm ci"; exit 1; }
fi
cp "$ROOT/tests/web/page_test.mjs" "$W/"

T=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
L=$ROOT/examples/scenes
head -40 "$L/lexicon.jsonl" > lex40.jsonl
grep -h '"scene": "Δ2[0-2]"' "$L/train.jsonl" > tr.jsonl
$HL train -m $M --lexicon lex40.jsonl --compose parts+facets --data tr.jsonl --steps 20 --rank 4 --ctx 144 \
  --val-fraction 0 --threads 2 -o dec.gguf --plain >/dev/null 2>&1 || { echo "FAIL: training the decoder"; exit 1; }
$HL serve -m $M --lora dec=dec.gguf --port 0 2> serve.log &
PID=$!
for _ in $(seq 100); do grep -q "listening on" serve.log 2>/dev/null && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' serve.log | cut -d: -f2)
[ -n "$PORT" ] || { cat serve.log; echo "FAIL: the server did not start"; exit 1; }

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
