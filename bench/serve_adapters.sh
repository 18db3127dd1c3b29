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
#
# BENCH_LLAMACPP=DIR (a llama.cpp checkout built by the user; never fetched
# here): llama.cpp's llama-server (DIR/build/bin, DIR/bin or DIR) serves the
# same base and the same 32 adapter files (`--lora` each,
# `--lora-init-without-apply`, `-np SERVE_CLIENTS`, the same threads) and gets
# the same requests on its own /completion endpoint (per-request
# `"lora": [{"id", "scale"}]`, `[]` for no adapter, `cache_prompt` off); each
# configuration runs on ours and then on it, inside the same rounds; the
# table adds its figures and the ratio ours / llama.cpp.
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
PEER_PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; [ -n "$PEER_PID" ] && kill $PEER_PID 2>/dev/null; rm -rf "$T"' EXIT
"$HL" init-model --preset "$PRESET" --tokenizer "$SHARED/models/llama2-tokenizer/tokenizer.bin" --seed 1 \
  -o "$T/base.gguf" >/dev/null 2>&1
printf '{"text": "Once upon a time there was a little cat who liked to play."}\n' > "$T/d.jsonl"
args=()
peer_args=()
for i in $(seq 0 31); do
  "$HL" train -m "$T/base.gguf" --data "$T/d.jsonl" --rank 8 --alpha 16 --targets q,v,o,gate,up,down --steps 1 \
    --batch 1 --ctx 32 --seed "$((i + 1))" --lr 1e-2 --val-fraction 0 --checkpoint-every 0 --plain \
    -o "$T/a$i.gguf" >/dev/null 2>&1
  args+=(--lora "a$i=$T/a$i.gguf")
  peer_args+=(--lora "$T/a$i.gguf")
done
PEER_PORT=0
if [ -n "${BENCH_LLAMACPP:-}" ]; then
  LS=
  for c in "$BENCH_LLAMACPP/build/bin/llama-server" "$BENCH_LLAMACPP/bin/llama-server" "$BENCH_LLAMACPP/llama-server"; do
    [ -x "$c" ] && { LS=$c; break; }
  done
  if [ -z "$LS" ]; then
    echo "serve_adapters: BENCH_LLAMACPP=$BENCH_LLAMACPP has no llama-server (looked in build/bin, bin and the folder itself); running without the peer" >&2
  else
    PEER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    clients=${SERVE_CLIENTS:-32}
    "$LS" -m "$T/base.gguf" "${peer_args[@]}" --lora-init-without-apply -np "$clients" \
      -c $((clients * 256)) -t "${SERVE_THREADS:-2}" -tb "${SERVE_THREADS:-2}" --host 127.0.0.1 --port "$PEER_PORT" \
      > "$T/peer.log" 2>&1 &
    PEER_PID=$!
    disown "$PEER_PID" # no job-control line when it is stopped at exit
    for _ in $(seq 600); do
      curl -sf "http://127.0.0.1:$PEER_PORT/health" >/dev/null 2>&1 && break
      kill -0 $PEER_PID 2>/dev/null || { echo "serve_adapters: llama-server exited:" >&2; tail -5 "$T/peer.log" >&2; PEER_PORT=0; break; }
      sleep 0.1
    done
    if [ "$PEER_PORT" != 0 ]; then # name the peer: its git commit, else what --version says
      { git -C "$BENCH_LLAMACPP" rev-parse --short HEAD 2>/dev/null || "$LS" --version 2>&1 | grep -m1 version || true; } \
        > "$T/peer_version"
    fi
  fi
fi
"$HL" serve -m "$T/base.gguf" --port 0 --threads "${SERVE_THREADS:-2}" --max-seqs 64 --max-adapters 64 \
  "${args[@]}" 2> "$T/log" &
PID=$!
for _ in $(seq 300); do grep -q "listening on" "$T/log" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$T/log" | cut -d: -f2)
lscpu | sed -n 's/^Model name: *//p' | head -1 > "$T/cpu"
python3 - "$PORT" "${SERVE_CLIENTS:-32}" "${SERVE_TOKENS:-64}" "${SERVE_ROUNDS:-3}" "$OUT/serve_adapters.md" \
  "$PRESET" "$(cat "$T/cpu")" "${SERVE_THREADS:-2}" "$PEER_PORT" "$(cat "$T/peer_version" 2>/dev/null || true)" <<'PY'
import http.client, json, statistics, sys, threading, time
port, clients, tokens, rounds, out, preset, cpu, threads = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
    int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8])
peer_port, peer_version = int(sys.argv[9]), sys.argv[10]
prompts = ["Once upon a time", "The little dog", "Lily and Tom", "One day"]

def one(i, k, peer=False):
    """One streamed request: (tokens, seconds to the first token, gaps between tokens).
    Ours on /v1/completions; llama.cpp's server (peer) on its native
    /completion, whose streamed events carry `content` and, last, `stop` with
    `tokens_predicted`."""
    if peer:
        body = {"prompt": prompts[i % 4], "n_predict": tokens, "ignore_eos": True, "temperature": 0,
                "stream": True, "cache_prompt": False}
        # always a list: this llama.cpp applies every loaded adapter at scale 1
        # to a request without one, even with --lora-init-without-apply
        body["lora"] = [{"id": i % k, "scale": 1.0}] if k else []
    else:
        body = {"prompt": prompts[i % 4], "max_tokens": tokens, "ignore_eos": True, "temperature": 0, "stream": True}
        if k:
            body["lora"] = [{"name": "a%d" % (i % k), "scale": 1.0}]
    c = http.client.HTTPConnection("127.0.0.1", peer_port if peer else port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/completion" if peer else "/v1/completions", json.dumps(body))
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
                if peer:
                    if e.get("content"):
                        stamps.append(time.perf_counter())
                    if e.get("stop"):
                        n = e["tokens_predicted"]
                    continue
                if e["choices"][0]["text"]:
                    stamps.append(time.perf_counter())
                if e["choices"][0].get("finish_reason"):
                    n = e["usage"]["completion_tokens"]
    c.close()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return n, (stamps[0] - t0) if stamps else float("nan"), gaps

def run(k, concurrent=True, peer=False):
    res = [None] * clients
    def w(i):
        res[i] = one(i, k, peer)
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
if peer_port:
    run(1, peer=True)
configs = [("no adapter", 0), ("1 shared adapter", 1), ("8 distinct adapters", 8), ("32 distinct adapters", 32)]
got = {name: [] for name, _ in configs}
peer_got = {name: [] for name, _ in configs}
for r in range(rounds):
    order = configs if r % 2 == 0 else configs[::-1]
    for name, k in order:
        got[name].append(run(k))
        if peer_port:
            peer_got[name].append(run(k, peer=True))
alone = run(1, concurrent=False)
peer_alone = run(1, concurrent=False, peer=True) if peer_port else None
med = lambda name, key: statistics.median(x[key] for x in got[name])
pmed = lambda name, key: statistics.median(x[key] for x in peer_got[name])
base = med("1 shared adapter", "tok_s")
lines = ["%s base, %d concurrent streamed requests of %d tokens, server --threads %s, %s; median of %d alternating rounds"
         % (preset, clients, tokens, threads, cpu, rounds), ""]
if peer_port:
    pbase = pmed("1 shared adapter", "tok_s")
    lines[0] += "; llama.cpp's llama-server (%s) in the same rounds" % (peer_version or "version unknown")
    lines += ["| adapters | aggregate tok/s | vs 1 shared | TTFT median (ms) | token gap p50 (ms) | p99 (ms) "
              "| llama.cpp tok/s | llama.cpp vs 1 shared | llama.cpp TTFT (ms) | llama.cpp gap p50 / p99 (ms) | ours / llama.cpp |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, _ in configs:
        lines.append("| %s | %.0f | %.2f | %.0f | %.1f | %.1f | %.0f | %.2f | %.0f | %.1f / %.1f | **%.2f** |" % (
            name, med(name, "tok_s"), med(name, "tok_s") / base, med(name, "ttft"), med(name, "p50"), med(name, "p99"),
            pmed(name, "tok_s"), pmed(name, "tok_s") / pbase, pmed(name, "ttft"), pmed(name, "p50"), pmed(name, "p99"),
            med(name, "tok_s") / pmed(name, "tok_s")))
    lines.append("| one request at a time (1 shared) | %.0f | %.2f | %.0f | %.1f | %.1f | %.0f | %.2f | %.0f | %.1f / %.1f | %.2f |" % (
        alone["tok_s"], alone["tok_s"] / base, alone["ttft"], alone["p50"], alone["p99"],
        peer_alone["tok_s"], peer_alone["tok_s"] / pbase, peer_alone["ttft"], peer_alone["p50"], peer_alone["p99"],
        alone["tok_s"] / peer_alone["tok_s"]))
else:
    lines += ["| adapters | aggregate tok/s | vs 1 shared | TTFT median (ms) | token gap p50 (ms) | p99 (ms) |",
              "|---|---|---|---|---|---|"]
    for name, _ in configs:
        lines.append("| %s | %.0f | %.2f | %.0f | %.1f | %.1f |" % (name, med(name, "tok_s"), med(name, "tok_s") / base,
                     med(name, "ttft"), med(name, "p50"), med(name, "p99")))
    lines.append("| one request at a time (1 shared) | %.0f | %.2f | %.0f | %.1f | %.1f |"
                 % (alone["tok_s"], alone["tok_s"] / base, alone["ttft"], alone["p50"], alone["p99"]))
print("\n".join(lines))
open(out, "w").write("\n".join(lines) + "\n")
PY
