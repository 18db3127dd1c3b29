#!/usr/bin/env bash
# test_serve_load.sh: `hyperlora serve` under bounded load (tests/serve_load.py):
# LOAD_CLIENTS concurrent clients (default 16) for LOAD_SECONDS (default 10)
# with mixed adapters, streams, scenes and clients that leave mid-stream: no
# error, no crash, the same bytes for every repeated request, RSS flat after
# warm-up. test_serve_load_slow.sh runs it at full size (64 clients, 60 s);
# this size also runs under ASan/UBSan (make test-sanitize).
# Usage: test_serve_load.sh HYPERLORA SHARED
set -uo pipefail
. "$(dirname "$0")/serve_common.sh" "$@"
train_decoder dec.gguf "$ROOT/examples/scenes/lexicon.jsonl" 10
for i in 0 1; do
  printf '{"text": "Once upon a time there was a little %s."}\n' cat dog > d.jsonl
  $HL train -m $M --data d.jsonl --rank 4 --steps 3 --batch 1 --ctx 32 --seed $((i + 1)) --lr 1e-2 --val-fraction 0 \
    --plain -o a$i.gguf >/dev/null 2>&1 || { echo "FAIL: training adapter $i"; exit 1; }
done
# Room for every client plus the requests of clients that just walked away
# (a cancelled request holds its slot until the next step drops it); past
# --max-seqs the server answers 503 by design, which this test counts as an error.
CLIENTS=${LOAD_CLIENTS:-16}
start_server --threads 2 --max-seqs $((CLIENTS + 16)) --lora dec=dec.gguf --lora a0=a0.gguf --lora a1=a1.gguf \
  --lora r4="$S/oracle/llamacpp/random_lora_r4.gguf"
# Under the sanitizers RSS is not a leak measure (ASan keeps freed memory in a
# quarantine); LeakSanitizer checks at the server's exit instead (rc below).
rss_check=1
grep -q '^HL_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && rss_check=0
python3 "$ROOT/tests/serve_load.py" "$PORT" "$PID" "${LOAD_SECONDS:-10}" "$CLIENTS" "$rss_check" || {
  tail -20 serve.log; exit 1; }
kill -0 "$PID" 2>/dev/null || { tail -20 serve.log; echo "FAIL: the server died"; exit 1; }
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
[ $rc -eq 0 ] || { tail -20 serve.log; echo "FAIL: the server exited $rc on SIGTERM"; exit 1; }
echo "ok: serve under load"
