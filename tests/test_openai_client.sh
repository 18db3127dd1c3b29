#!/usr/bin/env bash
# test_openai_client.sh: `hyperlora serve` called by OpenAI's own npm client
# (examples/serve/openai_client.mjs, the openai package pinned in its
# package-lock.json) with the base URL set to the server and an adapter as
# the model: the completion must be exactly what `hyperlora generate` prints
# with that adapter and seed, the streamed completion the same text, and the
# chat reply and the model list well formed.
# Skips when node is missing, unless HL_REQUIRE_ALL=1 (CI).
# Usage: test_openai_client.sh HYPERLORA SHARED
set -uo pipefail
. "$(dirname "$0")/serve_common.sh" "$@"
R4=$S/oracle/llamacpp/random_lora_r4.gguf
npm_packages openai-client "$ROOT/examples/serve"
W=$BUILD/openai-client
cp "$ROOT/examples/serve/openai_client.mjs" "$W/"
start_server --lora r4=$R4
node "$W/openai_client.mjs" "http://127.0.0.1:$PORT/v1" r4 > client.json 2> client.err ||
  { cat client.err; echo "FAIL: the openai client"; exit 1; }
$HL generate -m $M --lora $R4 -p "Once upon a time" -n 24 --temp 0.8 --seed 7 2>/dev/null > gen.txt
python3 - <<'PY'
import json, sys
r = json.load(open("client.json"))
gen = open("gen.txt", "rb").read().decode()
prompt = "Once upon a time"
want = gen[len(prompt):-1] if gen.startswith(prompt) and gen.endswith("\n") else None
fails = []
def check(ok, what):
    if not ok: fails.append(what)
check(want is not None and r["completion"] == want, "completion %r, generate printed %r" % (r["completion"], want))
check(r["streamed"] == r["completion"], "streamed %r, plain %r" % (r["streamed"], r["completion"]))
check(r["finish_reason"] in ("stop", "length") and 0 < r["usage"]["completion_tokens"] <= 24, "finish and usage")
check(r["fingerprint"].endswith("+r4"), "fingerprint %r names the adapter" % r["fingerprint"])
check(isinstance(r["chat"], str) and r["chat"], "chat reply %r" % r["chat"])
check(r["models"] == ["stories260K-f32.gguf", "r4"], "models %r" % r["models"])
for f in fails: print("FAIL:", f)
if fails: sys.exit(1)
print("ok: the openai npm client: %r" % r["completion"][:40])
PY
