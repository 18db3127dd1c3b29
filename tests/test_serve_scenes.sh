#!/usr/bin/env bash
# test_serve_scenes.sh: the scene endpoints behind the page of `hyperlora
# serve`: the lexicon listing, explain, scenes typed from parts (composed as
# the decoder composes, so Δ21's own parts and facets decode to exactly Δ21's
# bytes), streamed scene decodes (the same bytes as the plain answer), and a
# clear 4xx for each kind of bad request.
# Usage: test_serve_scenes.sh HYPERLORA SHARED
set -uo pipefail
. "$(dirname "$0")/serve_common.sh" "$@"
head -40 "$ROOT/examples/scenes/lexicon.jsonl" > lex40.jsonl
train_decoder dec.gguf lex40.jsonl 20
start_server --lora dec=dec.gguf
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect CODE METHOD PATH [BODY]: the status code, and a JSON error message for 4xx.
expect() {
  local code=$1 method=$2 path=$3 body=${4:-}
  local got
  if [ "$method" = GET ]; then got=$(curl -s -o out.json -w '%{http_code}' "$U$path")
  else got=$(curl -s -o out.json -w '%{http_code}' -d "$body" "$U$path"); fi
  [ "$got" = "$code" ] || { fail "$method $path $body: status $got, wanted $code: $(cat out.json)"; return; }
  if [ "$code" -ge 400 ]; then grep -q '"message"' out.json || fail "$path: no error message: $(cat out.json)"; fi
}
field() { python3 -c 'import json,sys; d=json.load(open("out.json")); print(eval(sys.argv[1]))' "$1"; }

# The page.
# (into a file first: under pipefail, grep -q leaving early could fail curl with SIGPIPE)
curl -s -o page.html "$U/"
grep -q '<title>hyperlora scene decoder</title>' page.html || fail "GET / is not the page"
expect 405 POST / '{}'

# Lexicon listing.
expect 200 GET "/v1/scenes/lexicon?adapter=dec&limit=5"
[ "$(field 'd["total"], len(d["lexemes"]), d["compose"], d["lexemes"][0]["lexeme"]')" = "(40, 5, 'parts+facets', 'Δ21')" ] ||
  fail "lexicon listing: $(cat out.json | head -c 300)"
expect 400 GET "/v1/scenes/lexicon?limit=0"
expect 400 GET "/v1/scenes/lexicon?limit=x"
expect 404 GET "/v1/scenes/lexicon?adapter=nope"

# Explain.
expect 200 POST /v1/scenes/explain '{"scene":"Δ21 Δ22","top":3}'
[ "$(field '[x["lexeme"] for x in d["lexemes"]], d["lexemes"][0]["parts"], len(d["lexemes"][0]["nearest_lexemes"]), len(d["lexemes"][0]["nearest_tokens"])')" = \
  "(['Δ21', 'Δ22'], ['тишина', 'вход', 'страх'], 3, 3)" ] || fail "explain Δ21 Δ22: $(head -c 300 out.json)"
expect 200 POST /v1/scenes/explain '{"parts":["кот","дом"],"facets":{"tone":"joy"}}'
[ "$(field 'd["lexemes"][0]["lexeme"], d["lexemes"][0]["parts"], d["lexemes"][0]["facets"]')" = \
  "(None, ['кот', 'дом'], {'tone': 'joy'})" ] || fail "explain typed parts: $(head -c 300 out.json)"
expect 400 POST /v1/scenes/explain '{"scene":"Δ99"}'
expect 400 POST /v1/scenes/explain '{"scene":"Δ21","parts":["a"]}'
expect 400 POST /v1/scenes/explain '{}'
expect 400 POST /v1/scenes/explain '{"parts":[]}'
expect 400 POST /v1/scenes/explain '{"parts":["a",""]}'
expect 400 POST /v1/scenes/explain '{"parts":["a"],"facets":["x"]}'
expect 400 POST /v1/scenes/explain '{"parts":["a"],"facets":{"k":1}}'
expect 400 POST /v1/scenes/explain '{"scene":"Δ21","top":0}'
expect 404 POST /v1/scenes/explain '{"scene":"Δ21","adapter":"nope"}'

# A scene typed from Δ21's own parts and facets decodes to Δ21's bytes.
D='"adapters":[{"name":"dec"}],"max_tokens":40'
expect 200 POST /v1/scenes/decode "{\"scene\":\"Δ21\",$D}"
lexeme=$(field 'd["text"]')
expect 200 POST /v1/scenes/decode \
  "{\"parts\":[\"тишина\",\"вход\",\"страх\"],\"facets\":{\"archetype\":\"threshold\",\"action\":\"enter\",\"field\":\"home\",\"tone\":\"fear\"},$D}"
typed=$(field 'd["text"]')
[ -n "$lexeme" ] && [ "$lexeme" = "$typed" ] || fail "typed Δ21 decoded '$typed', Δ21 '$lexeme'"
[ "$lexeme" = "$($HL decode -m $M --lora dec.gguf --scene Δ21 -n 40 2>/dev/null)" ] || fail "server and decode differ on Δ21"
expect 400 POST /v1/scenes/decode "{\"parts\":[\"a\"],\"scene\":\"Δ21\",$D}"
expect 400 POST /v1/scenes/decode "{\"parts\":\"a\",$D}"

# A bundle in the request, over loaded adapters: the entry for the job's
# (form, register) wins as in bundle files (exact, then form *, * register, * *).
expect 200 POST /v1/scenes/decode '{"scene":"Δ21","form":"symbols","max_tokens":20,"adapters":[{"name":"dec","scale":0.5}]}'
half=$(field 'd["text"]')
expect 200 POST /v1/scenes/decode '{"scene":"Δ21","max_tokens":20,"adapters":[{"name":"dec"}]}'
full=$(field 'd["text"]')
B='"bundle":{"decoders":[{"form":"*","register":"*","adapters":[{"name":"dec"}]},{"form":"symbols","register":"*","adapters":[{"name":"dec","scale":0.5}]}]}'
expect 200 POST /v1/scenes/decode "{\"scene\":\"Δ21\",\"form\":\"symbols\",\"max_tokens\":20,$B}"
[ "$(field 'd["text"]')" = "$half" ] || fail "request bundle (symbols entry) gave '$(field 'd["text"]')', wanted '$half'"
expect 200 POST /v1/scenes/decode "{\"scene\":\"Δ21\",\"max_tokens\":20,$B}"
[ "$(field 'd["text"]')" = "$full" ] || fail "request bundle (* entry) gave '$(field 'd["text"]')', wanted '$full'"
[ "$half" != "$full" ] || fail "scale 0.5 and 1 decode alike: the bundle check proves nothing"
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[{"form":"text","register":"logical","adapters":[]}]}}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[]}}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[{"form":"poem","register":"*","adapters":[]}]}}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[{"form":"*","register":"*"}]}}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[{"form":"*","register":"*","adapters":[]},{"form":"*","register":"*","adapters":[]}]}}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","bundle":"dec.gguf"}'
expect 400 POST /v1/scenes/decode "{\"scene\":\"Δ21\",\"adapters\":[{\"name\":\"dec\"}],$B}"
expect 404 POST /v1/scenes/decode '{"scene":"Δ21","bundle":{"decoders":[{"form":"*","register":"*","adapters":[{"name":"nope"}]}]}}'

# Streaming: the events put together are the plain answer.
curl -sN -d "{\"scene\":\"Δ21\",\"stream\":true,$D}" "$U/v1/scenes/decode" > stream.txt
streamed=$(python3 -c '
import json
text, last = "", None
for line in open("stream.txt"):
    if line.startswith("data: ") and line.strip() != "data: [DONE]":
        e = json.loads(line[6:]); text += e["text"]; last = e
assert last["finish_reason"] == "length" and last["tokens"] == 40, last
print(text)') || fail "stream events: $(head -c 300 stream.txt)"
[[ "$(tail -c 20 stream.txt)" == *"data: [DONE]"* ]] || fail "the stream does not end with [DONE]"
[ "$streamed" = "$lexeme" ] || fail "streamed '$streamed', plain '$lexeme'"
expect 400 POST /v1/scenes/decode '{"scenes":[{"scene":"Δ21"}],"stream":true}'
expect 400 POST /v1/scenes/decode '{"scene":"Δ21","stream":"yes"}'

curl -s -o health.json "$U/health"
grep -q ok health.json || fail "the server stopped serving"
[ $fails -eq 0 ] && echo "ok: scene endpoints"
exit $((fails > 0))
