#!/usr/bin/env bash
# bench_infer (bench/bench_infer.c) on a small random model: a prompt run
# shorter than the decode run's prompt (pp1 with --prompt 8, which once read
# past the prompt array and failed on a token id outside the vocabulary),
# 1 and 2 threads, and a JSON line per measurement that parses with a
# positive tok/s. Usage: test_bench_infer.sh HYPERLORA SHARED (bench_infer is
# looked for beside HYPERLORA; the test is skipped when it was not built).
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
B=$(dirname "$HL")/bench_infer
[ -x "$B" ] || { echo "skip: no bench_infer beside $HL"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

$HL init-model --preset s260K --tokenizer "$S/models/stories260K/tok512.bin" --seed 0 -o m.gguf > /dev/null 2>&1
ok '[ -s m.gguf ]' "init-model writes a small model"
ok '"$B" -m m.gguf --runs 1 --threads 1,2 --pp 1 --tg 2 --prompt 8 --json r.jsonl > out.txt 2> err.txt' \
  "pp1 with an 8-token decode prompt runs"
sed 's/^/  bench_infer: /' err.txt | head -3
ok 'grep -q "^pp1 " out.txt && grep -q "^tg2 " out.txt' "the table has the pp1 and tg2 rows"
ok 'python3 -c "
import json, sys
rows = [json.loads(l) for l in open(\"r.jsonl\") if l.strip()]
infer = [r for r in rows if r.get(\"bench\") == \"infer\"]
tests = {(r[\"test\"], r[\"threads\"]) for r in infer}
assert {(\"pp1\", 1), (\"pp1\", 2), (\"tg2\", 1), (\"tg2\", 2)} <= tests, tests
assert all(r[\"tok_s\"] > 0 for r in infer)
"' "every JSON line parses; pp1 and tg2 at 1 and 2 threads, each with a positive tok/s"
ok '! "$B" -m m.gguf --runs 1 --pp 0 > /dev/null 2> e0.txt && grep -q "pp, tg" e0.txt' "--pp 0 is refused with a message"

echo "test_bench_infer: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
