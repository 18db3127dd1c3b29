#!/usr/bin/env bash
# `hyperlora serve` end to end on a free loopback port: every endpoint, every
# class of hostile request (each a clear 4xx JSON error, the server serving on
# after it), run-time adapter loading and unloading (a request in flight keeps
# its adapter), the KV cap (503), and batch invariance: completions and scene
# decodes with different adapters, scales and seeds give exactly the bytes
# `generate` and `decode` print for them alone, whether each request runs
# alone or among the others, with the server at 1 or 2 threads (at 1, prompts
# in chunks of at most 3 tokens a step beside the decoding requests).
# Usage: test_serve.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ $("$HL" serve --help 2>&1) == *"without HTTP support"* ]]; then
  echo "SKIP: this hyperlora was built without HTTP support (libmicrohttpd-dev and pkg-config were not found)"
  exit 77
fi
M=$S/models/stories260K/stories260K-f32.gguf
R4=$S/oracle/llamacpp/random_lora_r4.gguf
L=$ROOT/examples/scenes
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
command -v python3 >/dev/null || { echo "FAIL: python3 is missing (scripts/deps.sh installs it)"; exit 1; }

# A small scene decoder carrying 40 lexemes; 8 more are declared only to the server (--lexicon).
head -40 "$L/lexicon.jsonl" > lex40.jsonl
tail -8 "$L/lexicon.jsonl" > extra.jsonl
grep -h '"scene": "Δ2[0-2]"' "$L/train.jsonl" > tr.jsonl
$HL train -m $M --lexicon lex40.jsonl --compose parts+facets --data tr.jsonl --steps 20 --rank 4 --ctx 144 \
  --val-fraction 0 --threads 2 -o dec.gguf --plain >/dev/null 2>&1 || { echo "FAIL: training the decoder"; exit 1; }

# start NAME THREADS ARGS...: a server on a free port; its port goes to NAME.port.
start() {
  local name=$1 threads=$2; shift 2
  $HL serve -m $M --port 0 --threads "$threads" "$@" 2> "$name.log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    grep -q "listening on" "$name.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -o '127.0.0.1:[0-9]*' "$name.log" | cut -d: -f2 > "$name.port"
  [ -s "$name.port" ] || { echo "FAIL: server $name did not start"; cat "$name.log"; exit 1; }
}

# References: what the commands print for each request alone. One line per
# case: kind, adapter (- for none), scale, temperature, seed, prompt or scene, form.
cat > cases.txt <<'CASES'
text	-	1	0	0	Once upon a time	-
text	r4	1	0	0	Once upon a time	-
text	r4	0.5	0.8	7	The little dog	-
text	-	1	1.0	42	Lily and Tom	-
text	r4	1	0.9	3	Once upon a time	-
text	r4	-0.7	0	0	One day	-
scene	dec	1	0	0	Δ21	symbols
scene	dec	1	0.7	5	Δ22	text
scene	dec	0.5	0	0	Δ35	formula
CASES
i=0
while IFS=$'\t' read -r kind ad scale temp seed what form; do
  if [ "$kind" = text ]; then
    args=(-m $M -p "$what" -n 30 --temp "$temp" --seed "$seed")
    [ "$ad" = r4 ] && args+=(--lora-scaled "$R4:$scale")
    $HL generate "${args[@]}" 2>/dev/null > "gen$i.txt"
    # stdout is the prompt, the completion and a newline
    python3 - "$what" "gen$i.txt" "ref$i.txt" <<'PY'
import sys
p, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
out = open(src, 'rb').read()
assert out.startswith(p.encode()) and out.endswith(b'\n'), out
open(dst, 'wb').write(out[len(p.encode()):-1])
PY
  else
    $HL decode -m $M --lora-scaled "dec.gguf:$scale" --lexicon extra.jsonl --scene "$what" --form "$form" \
      --temp "$temp" --seed "$seed" -n 30 2>/dev/null | head -c -1 > "ref$i.txt"
  fi
  i=$((i + 1))
done < cases.txt

# A decoder bundle: the adapters of scene requests that name none.
cat > bundle.json <<JSON
{"decoders": [{"form": "symbols", "register": "*", "adapters": [{"path": "dec.gguf"}]},
              {"form": "*", "register": "*", "adapters": [{"path": "dec.gguf", "scale": 0.5}, {"path": "$R4", "scale": 0.3}]}]}
JSON
$HL decode -m $M --bundle bundle.json --lexicon extra.jsonl --scene Δ21 --form symbols -n 30 2>/dev/null | head -c -1 > bref0.txt
$HL decode -m $M --bundle bundle.json --lexicon extra.jsonl --scene "Δ22 Δ35" --form text --temp 0.5 --seed 9 -n 30 \
  2>/dev/null | head -c -1 > bref1.txt

# A chat is a completion of its plain template: "role: content" lines, then "assistant:".
CHAT=$(printf 'system: Tell a story.\nuser: Once upon a time\nassistant:')
$HL generate -m $M --lora $R4 -p "$CHAT" -n 25 --temp 0.7 --seed 11 2>/dev/null > chat_gen.txt

start two 2 --lora r4=$R4 --lora dec=dec.gguf --lexicon extra.jsonl --api-key sekrit --kv-cap 450K \
  --max-body 4096 --max-tokens 400 --timeout 2 --max-adapters 3
# The 1-thread server takes at most 3 prompt tokens a step: prompts go in chunks beside decoding rows.
start one 1 --lora r4=$R4 --lora dec=dec.gguf --lexicon extra.jsonl --api-key sekrit --bundle bundle.json \
  --prompt-rows 3
python3 - "$(cat two.port)" "$(cat one.port)" "$R4" <<'PY'
import http.client, json, socket, sys, threading, time
port2, port1, r4path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
KEY = {"Authorization": "Bearer sekrit"}
passed = failed = 0
def ok(cond, what):
    global passed, failed
    if cond: passed += 1; print("ok:", what)
    else: failed += 1; print("FAIL:", what)

def req(port, method, path, body=None, headers=KEY, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers=dict(headers, **({"Content-Type": "application/json"} if data else {})))
    r = c.getresponse()
    out = r.read()
    c.close()
    try: js = json.loads(out)
    except Exception: js = None
    return r.status, js, out, r.getheader("Content-Type")

cases = []
for line in open("cases.txt", encoding="utf-8"):
    kind, ad, scale, temp, seed, what, form = line.rstrip("\n").split("\t")
    cases.append((kind, ad, float(scale), float(temp), int(seed), what, form))
refs = [open("ref%d.txt" % i, "rb").read() for i in range(len(cases))]

def body_of(case, stream=False):
    kind, ad, scale, temp, seed, what, form = case
    b = {"max_tokens": 30, "temperature": temp, "seed": seed}
    if kind == "text":
        b["prompt"] = what
        if ad != "-": b["lora"] = [{"name": ad, "scale": scale}]
        if stream: b["stream"] = True
    else:
        b.update(scene=what, form=form, adapters=[{"name": ad, "scale": scale}])
    return b

def run(port, i, stream=False):
    case = cases[i]
    path = "/v1/completions" if case[0] == "text" else "/v1/scenes/decode"
    if stream:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", path, json.dumps(body_of(case, True)), KEY)
        r = c.getresponse()
        raw = r.read().decode("utf-8")
        c.close()
        events = [e[6:] for e in raw.split("\n\n") if e.startswith("data: ")]
        assert events[-1] == "[DONE]", raw
        return "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]).encode()
    st, js, raw, _ = req(port, "POST", path, body_of(case))
    assert st == 200, raw
    return (js["choices"][0]["text"] if case[0] == "text" else js["text"]).encode()

# Each alone, then all at once (twice, in two orders), on both servers.
for port, name in ((port2, "2 threads"), (port1, "1 thread")):
    alone = [run(port, i) for i in range(len(cases))]
    for i in range(len(cases)):
        ok(alone[i] == refs[i], "%s: case %d alone gives what the command prints (%r)" % (name, i, refs[i][:40]))
    for order in (list(range(len(cases))), list(reversed(range(len(cases))))):
        got = [None] * len(cases)
        def worker(i):
            try: got[i] = run(port, i)
            except Exception as e: got[i] = repr(e).encode()
        ts = [threading.Thread(target=worker, args=(i,)) for i in order]
        for t in ts: t.start()
        for t in ts: t.join()
        ok(got == refs, "%s: %d concurrent requests, each the bytes it gives alone" % (name, len(cases)))
    streamed = [run(port, i, stream=True) for i in range(len(cases)) if cases[i][0] == "text"]
    ok(streamed == [refs[i] for i in range(len(cases)) if cases[i][0] == "text"],
       "%s: streamed completions join to the same bytes" % name)
ok(len(set(refs)) == len(refs), "the cases differ from each other")

# A batch of scenes in one request.
sc = [body_of(c) for c in cases if c[0] == "scene"]
st, js, raw, _ = req(port2, "POST", "/v1/scenes/decode", {"scenes": sc})
ok(st == 200 and [r["text"].encode() for r in js["results"]] == [refs[i] for i in range(len(cases)) if cases[i][0] == "scene"],
   "a batch of scenes in one request decodes each as alone")

# Chat completions.
chat_gen = open("chat_gen.txt", "rb").read()
chat_prompt = b"system: Tell a story.\nuser: Once upon a time\nassistant:"
chat_ref = chat_gen[len(chat_prompt):-1]
cb = {"messages": [{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "Once upon a time"}],
      "max_tokens": 25, "temperature": 0.7, "seed": 11, "model": "r4"}
st, js, raw, _ = req(port2, "POST", "/v1/chat/completions", cb)
ok(chat_gen.startswith(chat_prompt) and st == 200 and js["object"] == "chat.completion"
   and js["choices"][0]["message"]["role"] == "assistant" and js["choices"][0]["message"]["content"].encode() == chat_ref
   and len(chat_ref) > 20, "/v1/chat/completions gives generate's bytes for the templated prompt")
c = http.client.HTTPConnection("127.0.0.1", port2, timeout=60)
c.request("POST", "/v1/chat/completions", json.dumps(dict(cb, stream=True)), KEY)
events = [e[6:] for e in c.getresponse().read().decode().split("\n\n") if e.startswith("data: ")]
c.close()
chunks = [json.loads(e) for e in events[:-1]]
ok(events[-1] == "[DONE]" and all(ch["object"] == "chat.completion.chunk" for ch in chunks)
   and "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks).encode() == chat_ref
   and chunks[-1]["choices"][0]["finish_reason"] == "length", "streamed chat deltas join to the same bytes")

# The bundle chooses the adapters of scene requests that name none, as decode --bundle.
bref = [open("bref%d.txt" % i, "rb").read() for i in range(2)]
st, js, raw, _ = req(port1, "POST", "/v1/scenes/decode", {"scenes": [{"scene": "Δ21", "form": "symbols", "max_tokens": 30},
                     {"scene": "Δ22 Δ35", "form": "text", "temperature": 0.5, "seed": 9, "max_tokens": 30}]})
ok(st == 200 and [r["text"].encode() for r in js["results"]] == bref and bref[0] != bref[1],
   "scenes decoded through the server's --bundle give decode --bundle's bytes")
st, js, raw, _ = req(port1, "POST", "/v1/scenes/decode", {"scene": "Δ21", "form": "symbols", "bundle": False, "max_tokens": 30})
ok(st == 400 and "Δ21" in js["error"]["message"], "\"bundle\": false uses no adapters (and so no carried lexicon)")

# Endpoints.
st, js, _, _ = req(port2, "GET", "/health", headers={})
ok(st == 200 and js == {"status": "ok", "chat_template": "plain"}, "/health without a key (stories260K has no chat template)")
st, js, _, _ = req(port2, "GET", "/v1/models")
ok(st == 200 and [m["id"] for m in js["data"]] == ["stories260K-f32.gguf", "r4", "dec"], "/v1/models lists base and adapters")
st, js, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0, "model": "r4"})
import re
ok(st == 200 and js["choices"][0]["text"].encode() == refs[1] and js["model"] == "r4"
   and re.fullmatch(r"hyperlora-[0-9.]+-(avx512|avx2|scalar)-(packed|rows)-[0-9a-f]{16}\+r4", js["system_fingerprint"])
   and js["usage"]["completion_tokens"] == 30, "\"model\" chooses an adapter; fingerprint and usage")
st, js, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 0})
ok(st == 200 and js["choices"][0]["text"] == "" and js["usage"]["completion_tokens"] == 0
   and js["choices"][0]["finish_reason"] == "length", "max_tokens 0 answers at once with nothing")
c = http.client.HTTPConnection("127.0.0.1", port2, timeout=60)
c.request("POST", "/v1/completions", json.dumps({"prompt": "Once upon a time", "max_tokens": 0, "stream": True}), KEY)
raw0 = c.getresponse().read().decode()
c.close()
ok(raw0.endswith("data: [DONE]\n\n"), "... streamed too")
st, js, _, _ = req(port2, "GET", "/lora-adapters")
ok(st == 200 and [(a["id"], a["name"], a["scale"]) for a in js] == [(0, "r4", 0), (1, "dec", 0)], "GET /lora-adapters")
st, js, _, _ = req(port2, "POST", "/lora-adapters", [{"id": 0, "scale": 1}])
st2, js2, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})
ok(st == 200 and st2 == 200 and js2["choices"][0]["text"].encode() == refs[1], "POST /lora-adapters sets the global scales")
req(port2, "POST", "/lora-adapters", [])
st2, js2, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0})
ok(js2["choices"][0]["text"].encode() == refs[0], "... and an empty list sets them back to 0")

# Run-time loading; the adapter cap; a request in flight keeps an unloaded adapter.
st, js, _, _ = req(port2, "POST", "/adapters/load", {"name": "bad", "path": "/nonexistent.gguf"})
ok(st == 400 and "error" in js, "loading a missing file is a 400")
st, js, _, _ = req(port2, "POST", "/adapters/load", {"name": "r4", "path": r4path})
ok(st == 400 and "already loaded" in js["error"]["message"], "a name already loaded is a 400")
st, js, _, _ = req(port2, "POST", "/adapters/load", {"name": "r4b", "path": r4path})
ok(st == 200, "/adapters/load")
st, js, raw, _ = req(port2, "POST", "/adapters/load", {"name": "r4c", "path": r4path})
ok(st == 503 and "unload one" in js["error"]["message"], "the adapter cap refuses a fourth adapter (503)")
c = http.client.HTTPConnection("127.0.0.1", port2, timeout=60)
c.request("POST", "/v1/completions", json.dumps({"prompt": "Once upon a time", "max_tokens": 300, "temperature": 0,
          "model": "r4b", "stream": True, "ignore_eos": True}), KEY)
r = c.getresponse()
first = r.read1(200)
st, js, _, _ = req(port2, "POST", "/adapters/unload", {"name": "r4b"})
ok(st == 200, "/adapters/unload while a request uses it")
rest = r.read().decode()
c.close()
events = [e[6:] for e in (first.decode() + rest).split("\n\n") if e.startswith("data: ")]
text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]).encode()
st, js, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 300, "temperature": 0,
                   "lora": [{"name": "r4"}], "ignore_eos": True})
ok(events[-1] == "[DONE]" and text == js["choices"][0]["text"].encode() and len(text) > 200,
   "the request in flight finished with its adapter, byte for byte")
st, js, _, _ = req(port2, "POST", "/v1/completions", {"prompt": "x", "model": "r4b"})
ok(st == 404 and "r4b" in js["error"]["message"], "an unloaded adapter is gone (404)")
st, js, _, _ = req(port2, "POST", "/adapters/unload", {"name": "r4b"})
ok(st == 404, "unloading an unknown adapter is a 404")

# Hostile requests: each a JSON error with a 4xx code.
def err(status, what, path="/v1/completions", body=None, raw=None, headers=KEY, method="POST", needle=None):
    st, js, out, ctype = req(port2, method, path, body, headers=headers, raw=raw)
    good = st == status and js is not None and js.get("error", {}).get("code") == status and ctype == "application/json"
    if needle: good = good and needle in js["error"]["message"]
    ok(good, "%s -> %d (%s)" % (what, status, out[:100]))
err(400, "malformed JSON", raw=b'{"prompt": "a",', needle="not valid JSON")
err(400, "a JSON array body", raw=b'[1, 2]', needle="JSON object")
err(400, "prompt of the wrong type", body={"prompt": 5}, needle="prompt")
err(400, "max_tokens of the wrong type", body={"prompt": "a", "max_tokens": "many"}, needle="max_tokens")
err(400, "a fractional max_tokens", body={"prompt": "a", "max_tokens": 1.5}, needle="integer")
err(400, "too many tokens asked", body={"prompt": "a", "max_tokens": 100000}, needle="max_tokens")
err(400, "a temperature out of range", body={"prompt": "a", "temperature": -1}, needle="temperature")
err(400, "lora not an array", body={"prompt": "a", "lora": {"name": "r4"}}, needle="lora")
err(404, "an unknown adapter", body={"prompt": "a", "lora": [{"name": "nope"}]}, needle="nope")
err(404, "an unknown adapter id", body={"prompt": "a", "lora": [{"id": 99}]}, needle="99")
err(404, "an unknown model", body={"prompt": "a", "model": "nope"}, needle="nope")
err(400, "invalid UTF-8", raw=b'{"prompt": "\xff\xfe"}', needle="UTF-8")
err(400, "a \\u0000 escape", raw=b'{"prompt": "a\\u0000b"}', needle="u0000")
err(413, "an oversized body", raw=b'{"prompt": "' + b"a" * 5000 + b'"}', needle="larger")
err(400, "a prompt longer than the context", body={"prompt": "Once upon a time " * 200, "max_tokens": 1}, needle="context")
err(400, "an unknown scene", path="/v1/scenes/decode", body={"scene": "Δ99", "adapters": [{"name": "dec"}]}, needle="Δ99")
err(400, "an unknown form", path="/v1/scenes/decode", body={"scene": "Δ21", "form": "poem"}, needle="poem")
err(400, "scene and scene_vector both", path="/v1/scenes/decode", body={"scene": "Δ21", "scene_vector": [0.0] * 64}, needle="exactly one")
err(400, "a scene vector of the wrong size", path="/v1/scenes/decode", body={"scene_vector": [0.0] * 63}, needle="dimension")
err(400, "adapters and bundle both", path="/v1/scenes/decode", body={"scene": "Δ21", "bundle": True, "adapters": []}, needle="not both")
err(400, "a bad entry in a scene batch", path="/v1/scenes/decode", body={"scenes": [sc[0], {"scene": 3}]}, needle="scenes[1]")
err(401, "no API key", body={"prompt": "a"}, headers={})
err(401, "a wrong API key", body={"prompt": "a"}, headers={"Authorization": "Bearer sekriT"})
err(401, "a longer API key", body={"prompt": "a"}, headers={"Authorization": "Bearer sekrit2"})
err(404, "an unknown route", path="/v2/nothing")
err(400, "a chat without messages", path="/v1/chat/completions", body={"messages": []}, needle="messages")
err(400, "a chat message of the wrong shape", path="/v1/chat/completions", body={"messages": [{"role": "user", "content": 3}]}, needle="content")
err(400, "a chat role that does not exist", path="/v1/chat/completions", body={"messages": [{"role": "wizard", "content": "hi"}]}, needle="wizard")
err(405, "a GET on a POST endpoint", path="/v1/completions", method="GET")
err(503, "a request the KV cap cannot take", body={"prompt": "Once upon a time", "max_tokens": 400}, needle="KV cache")
st, js, _, _ = req(port2, "POST", "/v1/scenes/decode", {"scene_vector": [0.01] * 64, "adapters": [{"name": "dec"}], "max_tokens": 8})
ok(st == 200 and js["scene_vectors"] == 1 and js["tokens"] >= 1, "a mute scene (scene_vector) decodes")

# A client that leaves before a plain (not streamed) answer: its job is cancelled.
def metrics(port):
    st, _, out, _ = req(port, "GET", "/metrics")
    return dict(l.rsplit(" ", 1) for l in out.decode().splitlines() if l and not l.startswith("#"))
m0 = metrics(port1)
s = socket.create_connection(("127.0.0.1", port1))
body = json.dumps({"prompt": "Once upon a time", "max_tokens": 500, "ignore_eos": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\nContent-Type: application/json\r\n"
          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
for _ in range(2000):
    if int(metrics(port1)["hyperlora_jobs_running"]) > 0: break
s.close()
for _ in range(100):
    m1 = metrics(port1)
    if int(m1["hyperlora_jobs_running"]) == 0 and int(m1["hyperlora_jobs_pending"]) == 0: break
    time.sleep(0.05)
ok(int(m1["hyperlora_jobs_cancelled_total"]) == int(m0["hyperlora_jobs_cancelled_total"]) + 1
   and int(m1["hyperlora_client_disconnects_total"]) == int(m0["hyperlora_client_disconnects_total"]) + 1
   and int(m1["hyperlora_generated_tokens_total"]) - int(m0["hyperlora_generated_tokens_total"]) < 500,
   "a client that leaves before a plain answer has its job cancelled (%s tokens made)"
   % (int(m1["hyperlora_generated_tokens_total"]) - int(m0["hyperlora_generated_tokens_total"])))

# Garbage and mutated bodies on every POST endpoint: always a JSON answer, never a 5xx, and the server lives on.
import random
rng = random.Random(19)
seeds = [json.dumps(body_of(c)).encode() for c in cases] + [json.dumps({"scenes": sc}).encode(),
         json.dumps({"name": "x", "path": "/nonexistent"}).encode(), json.dumps([{"id": 0, "scale": 1}]).encode(),
         json.dumps(cb).encode()]
posts = ["/v1/completions", "/v1/chat/completions", "/v1/scenes/decode", "/lora-adapters", "/adapters/load",
         "/adapters/unload"]
bad = []
for k in range(300):
    b = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 6)):
        op = rng.randint(0, 3)
        at = rng.randrange(len(b))
        if op == 0: b[at] = rng.randrange(256)
        elif op == 1: del b[at:at + rng.randint(1, 8)]
        elif op == 2: b[at:at] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b"null", b"-1e999", b"\\u0000", b"\xc3"])
        else: b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    path = rng.choice(posts)
    if path == "/adapters/unload" and b"dec" in b: continue   # keep the decoder loaded
    st, js, out, _ = req(port2, "POST", path, raw=bytes(b))
    if st >= 500 and st != 503 or js is None: bad.append((path, st, bytes(b)[:80], out[:80]))
ok(not bad, "300 mutated bodies each get a JSON answer and no 500 (%s)" % bad[:2])
st, js, _, _ = req(port2, "POST", "/lora-adapters", [])

# A slow client is dropped after the timeout; a client that leaves mid-stream cancels its job.
s = socket.create_connection(("127.0.0.1", port2))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
t0 = time.time()
s.settimeout(10)
try: closed = s.recv(4096) is not None
except Exception: closed = False
ok(closed and time.time() - t0 < 8, "a slow client is dropped after --timeout (%.1f s)" % (time.time() - t0))
s.close()
s = socket.create_connection(("127.0.0.1", port2))
body = json.dumps({"prompt": "Once upon a time", "max_tokens": 300, "ignore_eos": True, "stream": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\nContent-Type: application/json\r\n"
          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
s.recv(100)
s.close()
for _ in range(100):
    st, _, out, _ = req(port2, "GET", "/metrics")
    m = dict(l.rsplit(" ", 1) for l in out.decode().splitlines() if l and not l.startswith("#"))
    if int(m["hyperlora_jobs_running"]) == 0: break
    time.sleep(0.1)
ok(int(m["hyperlora_jobs_running"]) == 0 and int(m["hyperlora_kv_cache_bytes"]) == 0,
   "a client that leaves mid-stream leaves nothing running and no KV cache held")
ok(st == 200 and int(m["hyperlora_jobs_done_total"]) > 30 and int(m["hyperlora_generated_tokens_total"]) > 500
   and int(m['hyperlora_http_responses_total{class="4xx"}']) >= 25 and int(m["hyperlora_adapters_loaded"]) == 2,
   "/metrics counts requests, jobs, tokens and adapters")
st, js, _, _ = req(port2, "POST", "/v1/completions", body_of(cases[2]))
ok(st == 200 and js["choices"][0]["text"].encode() == refs[2], "after all that the server serves the same bytes")
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
rc=$?
ok_listen=$(grep -c "listening on http://127.0.0.1:" two.log)
[ "$ok_listen" = 1 ] || { echo "FAIL: the server listens on 127.0.0.1 by default"; rc=1; }
# SIGTERM stops both servers cleanly (under the sanitizers: no errors, no leaks).
for p in "${PIDS[@]}"; do kill -TERM "$p"; wait "$p" || { echo "FAIL: server $p exited with $?"; rc=1; }; done
PIDS=()
if grep -E "Sanitizer|runtime error" one.log two.log; then echo "FAIL: sanitizer reports"; rc=1; fi
grep -q "SIGTERM, stopping" two.log || { echo "FAIL: the server did not stop on SIGTERM"; rc=1; }
exit $rc
