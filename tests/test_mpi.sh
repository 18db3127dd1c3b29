#!/usr/bin/env bash
# test_mpi.sh: data-parallel training through mpirun (docs/distributed.md).
#   - N = 1, 2, 3 and 4 processes (oversubscribed on this machine), at 1 and
#     2 threads, give the adapter and checkpoint bytes of a run with no MPI
#     at all, and its metrics but the two wall-clock fields; the same when
#     the gradient goes by allgather instead of up the tree, and for
#     pretrain (the model file);
#   - a checkpoint written by 3 processes resumes under 2 and ends with the
#     uninterrupted bytes;
#   - SIGKILL on one rank mid-run ends the job non-zero within a bound, the
#     last checkpoint stays valid, and resuming it with fewer ranks ends with
#     the uninterrupted bytes;
#   - a rank that reads other data stops the job before it trains, named;
#   - a build without MPI started as several processes refuses to run.
# Needs mpirun and the MPI build of the CLI (hyperlora_mpi beside the CLI, or
# the CLI itself when configured with -DHL_MPI=ON); skips (77) without them,
# unless HL_REQUIRE_ALL=1 (CI), where that is a failure.
# Usage: bash test_mpi.sh HYPERLORA SHARED_DIR
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
skip() {
  if [ "${HL_REQUIRE_ALL:-0}" = 1 ]; then echo "FAIL: $1"; exit 1; fi
  echo "SKIP: $1 (scripts/deps.sh test installs Open MPI)"; exit 77
}
command -v mpirun >/dev/null || skip "mpirun is missing"
MPI_HL=$(dirname "$HL")/hyperlora_mpi
[ -x "$MPI_HL" ] || MPI_HL=$HL
"$MPI_HL" --version | grep -q 'data-parallel training: MPI' || skip "no MPI build of the CLI (libopenmpi-dev was missing at configure time)"

# Open MPI refuses root unless told, and a 2-core machine needs oversubscription for 3-4 ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_hwloc_base_binding_policy=none
export OMPI_MCA_btl_vader_single_copy_mechanism=none # containers often forbid cross-process memory access
# In a sanitized build, Open MPI's own allocations at exit (from plugins it
# has unloaded, so no suppression can name them) would fail every run: leak
# checks stay off for the MPI processes, the memory-error checks stay on.
# test_train_ranks runs the same training code in one process with leak
# checks on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
run() { mpirun -np "$1" "${@:2}"; }

M=$S/models/stories260K/stories260K-f32.gguf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
cd "$T"
# The metrics without their wall-clock fields.
metrics() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); r.pop("tokens_per_s"); r.pop("elapsed_s"); print(json.dumps(r, sort_keys=True))' "$1"; }
same_run() { # NAME REF: adapter, checkpoint and metrics bytes
  cmp -s "$1" "$2" && cmp -s "$1.ckpt" "$2.ckpt" && [ "$(metrics "$1.metrics.jsonl")" = "$(metrics "$2.metrics.jsonl")" ]
}

# 4 rows a step (batch 2 x accum 2), dropout on: every row's masks must land where they would alone.
A="-m $M --data $ROOT/examples/stories/train.jsonl --rank 4 --alpha 8 --lr 3e-3 --steps 12 --batch 2 --accum 2 --ctx 48 --val-fraction 0.2 --eval-every 4 --checkpoint-every 4 --dropout 0.1 --seed 3 --plain"
"$HL" train $A -o ref.gguf 2>ref.log || { cat ref.log; echo "FAIL: the reference run"; exit 1; }
for n in 1 2 3 4; do
  run "$n" "$MPI_HL" train $A -o n$n.gguf 2>n$n.log
  ok '[ $? -eq 0 ] && same_run n$n.gguf ref.gguf' "$n process(es): the adapter, checkpoint and metrics of a run without MPI"
done
run 3 "$MPI_HL" train $A --threads 2 -o t2.gguf 2>t2.log
ok 'same_run t2.gguf ref.gguf' "3 processes x 2 threads: the same bytes"
HYPERLORA_DP_EXCHANGE=allgather run 3 "$MPI_HL" train $A -o ag.gguf 2>ag.log
ok 'same_run ag.gguf ref.gguf' "3 processes exchanging by allgather instead of up the tree: the same bytes"
HYPERLORA_DP_EXCHANGE=ring run 2 "$MPI_HL" train $A -o bad.gguf 2>bad.log
ok '[ ! -e bad.gguf ] && grep -q "HYPERLORA_DP_EXCHANGE must be tree or allgather" bad.log' "an unknown exchange is refused"
ok '[ "$(grep -c "wrote n3.gguf" n3.log)" = 1 ] && grep -q "3 processes share each step.s 4 rows" n3.log' \
   "one rank reports, and says how the rows are shared"
ok 'grep -q "KiB exchanged per step" n3.log' "the bytes exchanged per step are reported"

# A rank that reads other data is refused before any step, and named.
cp "$ROOT/examples/stories/train.jsonl" other.jsonl
echo '{"text": "One more story, only on the second node."}' >> other.jsonl
B=${A/--data $ROOT\/examples\/stories\/train.jsonl/--data other.jsonl}
mpirun -np 1 "$MPI_HL" train $A -o odd.gguf : -np 1 "$MPI_HL" train $B -o odd.gguf >odd.log 2>&1
ok '[ $? -ne 0 ] && grep -q "rank 1 of 2 has other inputs or settings" odd.log && [ ! -e odd.gguf ]' \
   "a rank with other data stops the job, named, before it trains"

# Resume across N: paused at step 6 by 3 processes, finished by 2.
run 3 "$MPI_HL" train $A --stop-at 6 -o r.gguf 2>r1.log
ok '[ ! -e r.gguf ] && [ -s r.gguf.ckpt ]' "paused at --stop-at: a checkpoint, no adapter"
run 2 "$MPI_HL" train $A --resume -o r.gguf 2>r2.log
ok 'same_run r.gguf ref.gguf' "3 processes paused, 2 resumed: the uninterrupted bytes"

# Pretraining: the whole model is the gradient.
python3 -c '
import json, sys
with open("corpus.txt", "w") as f:
    for line in open(sys.argv[1]):
        f.write(json.loads(line).get("text", "") + "\n\n")' "$ROOT/examples/stories/train.jsonl"
P="--corpus corpus.txt --vocab 300 --dim 32 --ffn 64 --layers 2 --heads 2 --kv-heads 2 --ctx 32 --steps 6 --batch 3 --eval-every 3 --seed 1 --plain"
"$HL" pretrain $P -o pref.gguf 2>pref.log || { cat pref.log; echo "FAIL: the reference pretrain"; exit 1; }
run 2 "$MPI_HL" pretrain $P -o p2.gguf 2>p2.log
ok 'cmp -s p2.gguf pref.gguf && cmp -s p2.gguf.ckpt pref.gguf.ckpt' "pretrain over 2 processes: the model bytes of one"

# SIGKILL on one rank: the job ends non-zero, soon; the last checkpoint resumes to the uninterrupted end.
K="-m $M --data $ROOT/examples/stories/train.jsonl --rank 4 --alpha 8 --lr 3e-3 --steps 200 --batch 2 --accum 2 --ctx 48 --val-fraction 0.2 --eval-every 50 --checkpoint-every 5 --dropout 0.1 --seed 4 --plain"
"$HL" train $K -o kref.gguf 2>kref.log
run 3 "$MPI_HL" train $K -o k.gguf 2>k.log &
job=$!
for _ in $(seq 600); do [ -s k.gguf.ckpt ] && break; sleep 0.05; done
sleep 0.3
victim=$(pgrep -f "hyperlora_mpi train $K" | while read -r p; do [ "$p" != "$job" ] && [ "$(ps -o comm= -p "$p")" != mpirun ] && echo "$p"; done | tail -n 1)
[ -z "$victim" ] && victim=$(pgrep -P "$job" | tail -n 1)
t0=$(date +%s)
kill -9 "$victim" 2>/dev/null
( sleep 60; kill -9 "$job" 2>/dev/null ) & watchdog=$!
wait "$job"; rc=$?
kill "$watchdog" 2>/dev/null
took=$(( $(date +%s) - t0 ))
ok '[ -n "$victim" ] && [ "$rc" -ne 0 ] && [ "$took" -le 30 ]' "a rank killed with SIGKILL ends the job non-zero within 30 s (rc $rc, $took s)"
ok '[ ! -e k.gguf ]' "the killed job wrote no adapter"
run 2 "$MPI_HL" train $K --resume -o k.gguf 2>k2.log
ok 'grep -q "resumed from" k2.log && cmp -s k.gguf kref.gguf' "its last checkpoint resumes under 2 processes to the uninterrupted adapter"

# A build without MPI as several processes: refused, nothing written.
if [ "$HL" != "$MPI_HL" ]; then
  run 2 "$HL" train $A -o no.gguf 2>no.log
  ok '[ $? -ne 0 ] && grep -q "built without MPI" no.log && [ ! -e no.gguf ]' "a build without MPI refuses to run as 2 processes"
fi

echo "test_mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
