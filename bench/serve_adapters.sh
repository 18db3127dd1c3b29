#!/usr/bin/env bash
# bench/serve_adapters.sh BUILD_DIR [OUT_DIR]: serving throughput against the
# number of distinct adapters. A random base (SERVE_PRESET, default s15M;
# init-model, llama2 tokenizer) and 32 rank-8 adapters (q,v,o,gate,up,down,
# each trained one step from its own seed, so every B is non-zero) behind one
# `hyperlora serve --threads SERVE_THREADS` (default 2). A round sends
# SERVE_CLIENTS (default 32) concurrent streamed completions of SERVE_TOKENS
# tokens (default 64, ignore_eos), request i using adapter i mod k, for
# k = 1 (one shared adapter), 8 and 32 distinct adapters, and with no adapter;
# SERVE_ROUNDS rounds (default 3) alternate the k. Per run: aggregate
# generated tokens per second, time to first token (median over requests) and
# the p50 / p99 gap between streamed tokens. Also the same 32 requests one at
# a time (the one-request-at-a-time baseline). Table: OUT_DIR/serve_adapters.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OUT=${2:-$ROOT/bench/out}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
HL="$BUILD/hyperlora"
PRESET=${SERVE_PRESET:-s15M}
mkdir -p "$OUT"
T=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$T"' EXIT
"$HL" init-model --preset "$PRESET" --tokenizer "$SHARED/models/llama2-tokenizer/tokenizer.bin" --seed 1 \
  -o "$T/base.gguf" >/dev/null 2>&1
printf '{"text": "Once upon a time there was a little cat who liked to play."}\n' > "$T/d.jsonl"
args=()
for i in $(seq 0 31); do
  "$HL" train -m "$T/base.gguf" --data "$T/d.jsonl" --rank 8 --alpha 16 --targets q,v,o,gate,up,down --steps 1 \
    --batch 1 --ctx 32 --seed "$((i + 1))" --lr 1e-2 --val-fraction 0 --checkpoint-every 0 --plain \
    -o "$T/a$i.gguf" >/dev/null 2>&1
  args+=(--lora "a$i=$T/a$i.gguf")
done
"$HL" serve -m "$T/base.gguf" --port 0 --threads "${SERVE_THREADS:-2}" --max-seqs 64 --max-adapters 64 \
  "${args[@]}" 2> "$T/log" &
PID=$!
for _ in $(seq 300); do grep -q "listening on" "$T/log" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$T/log" | cut -d: -f2)
lscpu | sed -n 's/^Model name: *//p' | head -1 > "$T/cpu"
python3 - "$PORT" "${SERVE_CLIENTS:-32}" "${SERVE_TOKENS:-64}" "${SERVE_ROUNDS:-3}" "$OUT/serve_adapters.md" \
  "$PRESET" "$(cat "$T/cpu")" "${SERVE_THREADS:-2}" <<'PY'
import http.client, json, statistics, sys, threading, time
port, clients, tokens, rounds, out, preset, cpu, threads = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
    int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8])
prompts = ["Once upon a time", "The little dog", "Lily and Tom", "One day"]

def one(i, k):
    """One streamed request: (tokens, seconds to the first token, gaps between tokens)."""
    body = {"prompt": prompts[i % 4], "max_tokens": tokens, "ignore_eos": True, "temperature": 0, "stream": True}
    if k:
        body["lora"] = [{"name": "a%d" % (i % k), "scale": 1.0}]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps(body))
    r = c.getresponse()
    stamps, buf = [], b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if ev.startswith(b"data: ") and ev != b"data: [DONE]":
                e = json.loads(ev[6:])
                if e["choices"][0]["text"]:
                    stamps.append(time.perf_counter())
                if e["choices"][0].get("finish_reason"):
                    n = e["usage"]["completion_tokens"]
    c.close()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return n, (stamps[0] - t0) if stamps else float("nan"), gaps

def run(k, concurrent=True):
    res = [None] * clients
    def w(i):
        res[i] = one(i, k)
    t0 = time.perf_counter()
    if concurrent:
        ts = [threading.Thread(target=w, args=(i,)) for i in range(clients)]
        for t in ts: t.start()
        for t in ts: t.join()
    else:
        for i in range(clients): w(i)
    dt = time.perf_counter() - t0
    toks = sum(r[0] for r in res)
    gaps = sorted(g for r in res for g in r[2])
    pct = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))] * 1000 if gaps else float("nan")
    return {"tok_s": toks / dt, "ttft": statistics.median(r[1] for r in res) * 1000, "p50": pct(0.5), "p99": pct(0.99)}

run(1)  # warm up (packs the weights, loads every code path)
configs = [("no adapter", 0), ("1 shared adapter", 1), ("8 distinct adapters", 8), ("32 distinct adapters", 32)]
got = {name: [] for name, _ in configs}
for r in range(rounds):
    order = configs if r % 2 == 0 else configs[::-1]
    for name, k in order:
        got[name].append(run(k))
alone = run(1, concurrent=False)
med = lambda name, key: statistics.median(x[key] for x in got[name])
base = med("1 shared adapter", "tok_s")
lines = ["%s base, %d concurrent streamed requests of %d tokens, server --threads %s, %s; median of %d alternating rounds"
         % (preset, clients, tokens, threads, cpu, rounds), "",
         "| adapters | aggregate tok/s | vs 1 shared | TTFT median (ms) | token gap p50 (ms) | p99 (ms) |",
         "|---|---|---|---|---|---|"]
for name, _ in configs:
    lines.append("| %s | %.0f | %.2f | %.0f | %.1f | %.1f |" % (name, med(name, "tok_s"), med(name, "tok_s") / base,
                 med(name, "ttft"), med(name, "p50"), med(name, "p99")))
lines.append("| one request at a time (1 shared) | %.0f | %.2f | %.0f | %.1f | %.1f |"
             % (alone["tok_s"], alone["tok_s"] / base, alone["ttft"], alone["p50"], alone["p99"]))
print("\n".join(lines))
open(out, "w").write("\n".join(lines) + "\n")
PY
