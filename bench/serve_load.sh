#!/usr/bin/env bash
# bench/serve_load.sh BUILD_DIR [OUT_DIR]: `hyperlora serve` under load.
# A random s15M base (init-model, llama2 tokenizer) and four adapters
# (rank 8, trained SERVE_TRAIN_STEPS steps each from different seeds) behind
# one server at 2 threads. SERVE_REQUESTS requests (default 16) of
# SERVE_TOKENS tokens (default 64, ignore_eos), each with its own adapter,
# scale and seed, are sent one at a time, then SERVE_CLIENTS at a time
# (default 8). It prints the generated tokens per second of each and checks
# that every request got the same bytes both ways (batch invariance); the
# table goes to OUT_DIR/serve_load.md. SERVE_FLAGS adds server options
# (--separate: each request its own forward pass, for comparison).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OUT=${2:-$ROOT/bench/out}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
HL="$BUILD/hyperlora"
REQUESTS=${SERVE_REQUESTS:-16}
TOKENS=${SERVE_TOKENS:-64}
CLIENTS=${SERVE_CLIENTS:-8}
TRAIN_STEPS=${SERVE_TRAIN_STEPS:-2}
mkdir -p "$OUT"
T=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
"$HL" init-model --preset s15M --tokenizer "$SHARED/models/llama2-tokenizer/tokenizer.bin" --seed 1 -o "$T/base.gguf" >/dev/null 2>&1
for i in 0 1 2 3; do
  printf '{"text": "Once upon a time there was a little %s who liked to play."}\n' cat dog bird fox > "$T/d.jsonl"
  "$HL" train -m "$T/base.gguf" --data "$T/d.jsonl" --rank 8 --alpha 16 --steps "$TRAIN_STEPS" --batch 1 --ctx 32 \
    --seed "$((i + 1))" --lr 1e-2 --val-fraction 0 --checkpoint-every 0 --plain -o "$T/a$i.gguf" >/dev/null 2>&1
done
"$HL" serve -m "$T/base.gguf" --port 0 --threads 2 ${SERVE_FLAGS:-} --lora a0="$T/a0.gguf" --lora a1="$T/a1.gguf" \
  --lora a2="$T/a2.gguf" --lora a3="$T/a3.gguf" 2> "$T/log" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$T/log" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$T/log" | cut -d: -f2)
python3 - "$PORT" "$REQUESTS" "$TOKENS" "$CLIENTS" "$OUT/serve_load.md" <<'PY'
import http.client, json, sys, threading, time
port, n, tokens, clients, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
prompts = ["Once upon a time", "The little dog", "Lily and Tom", "One day"]
def body(i):
    return {"prompt": prompts[i % 4], "max_tokens": tokens, "ignore_eos": True, "temperature": 0.8, "seed": i,
            "lora": [{"name": "a%d" % (i % 4), "scale": 0.5 + 0.25 * (i % 3)}]}
def one(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(body(i)))
    js = json.loads(c.getresponse().read())
    c.close()
    return js["choices"][0]["text"], js["usage"]["completion_tokens"]
one(0)  # warm up: packs the weights
t0 = time.time(); alone = [one(i) for i in range(n)]; t_alone = time.time() - t0
got = [None] * n
def worker(k):
    for i in range(k, n, clients): got[i] = one(i)
t0 = time.time()
ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
t_batch = time.time() - t0
total = sum(c for _, c in alone)
same = got == alone
lines = ["| clients | requests | tokens | seconds | generated tok/s |", "|---|---|---|---|---|",
         "| 1 | %d | %d | %.2f | %.0f |" % (n, total, t_alone, total / t_alone),
         "| %d | %d | %d | %.2f | %.0f |" % (clients, n, total, t_batch, total / t_batch),
         "", "Every request's text the same alone and among %d clients: %s" % (clients, "yes" if same else "NO")]
print("\n".join(lines))
open(out, "w").write("\n".join(lines) + "\n")
sys.exit(0 if same else 1)
PY
