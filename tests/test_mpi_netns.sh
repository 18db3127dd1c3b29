#!/usr/bin/env bash
# test_mpi_netns.sh: two "hosts" on one machine. Two network namespaces are
# joined by a veth pair on a private /24 that the test creates and removes.
# mpirun runs in the first namespace and starts its daemon in the second
# through an rsh agent that enters that namespace instead of calling ssh.
# So each rank sees only its own interface, and Open MPI's TCP transport
# carries every byte over the link. The job must write the adapter and
# checkpoint bytes of a run without MPI, and the link's byte counters must
# show the step exchanges crossing it.
# Needs root (ip netns), ip, mpirun and the MPI build of the CLI; skips (77)
# saying which is missing. Usage: bash test_mpi_netns.sh HYPERLORA SHARED_DIR
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
skip() { echo "SKIP: $1"; exit 77; }
command -v mpirun >/dev/null || skip "mpirun is missing"
command -v ip >/dev/null || skip "ip (iproute2) is missing"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
MPI_HL=$(dirname "$HL")/hyperlora_mpi
[ -x "$MPI_HL" ] || MPI_HL=$HL
"$MPI_HL" --version | grep -q 'data-parallel training: MPI' || skip "no MPI build of the CLI"

# Names and a subnet of this run's own, so parallel runs never meet.
id=$(( $$ % 200 + 20 ))
NS0=hlns${$}a; NS1=hlns${$}b; V0=hlv${$}a; V1=hlv${$}b
A0=10.$id.77.1; A1=10.$id.77.2; NET=10.$id.77.0/24
T=$(mktemp -d)
cleanup() { ip netns del "$NS0" 2>/dev/null; ip netns del "$NS1" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
ip netns add "$NS0" 2>/dev/null || skip "cannot create network namespaces here (no CAP_SYS_ADMIN?)"
ip netns add "$NS1" || exit 1
ip link add "$V0" type veth peer name "$V1" || skip "cannot create a veth pair here"
ip link set "$V0" netns "$NS0" && ip link set "$V1" netns "$NS1" &&
  ip -n "$NS0" addr add "$A0/24" dev "$V0" && ip -n "$NS1" addr add "$A1/24" dev "$V1" &&
  ip -n "$NS0" link set "$V0" up && ip -n "$NS1" link set "$V1" up &&
  ip -n "$NS0" link set lo up && ip -n "$NS1" link set lo up || { echo "FAIL: setting up the link"; exit 1; }
cd "$T"
cat >agent.sh <<EOF
#!/bin/sh
# The rsh agent of this test: "host" $A1 is namespace $NS1.
shift
exec ip netns exec $NS1 sh -c "\$*"
EOF
chmod +x agent.sh
printf '%s slots=1\n%s slots=1\n' "$A0" "$A1" >hosts
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# In a sanitized build, Open MPI's own allocations at exit (from plugins it
# has unloaded, so no suppression can name them) would fail every run: leak
# checks stay off for the MPI processes, the memory-error checks stay on.
# test_train_ranks runs the same training code in one process with leak
# checks on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

M=$S/models/stories260K/stories260K-f32.gguf
A="-m $M --data $ROOT/examples/stories/train.jsonl --rank 8 --alpha 16 --lr 3e-3 --steps 10 --batch 4 --ctx 64 --val-fraction 0.2 --eval-every 5 --dropout 0.1 --seed 3 --plain"
"$HL" train $A -o ref.gguf 2>ref.log || { cat ref.log; echo "FAIL: the reference run"; exit 1; }
tx() { ip netns exec "$NS0" cat "/sys/class/net/$V0/statistics/tx_bytes"; }
before=$(tx)
timeout 120 ip netns exec "$NS0" mpirun --hostfile hosts -np 2 --map-by node --bind-to none \
  --mca plm_rsh_agent "$T/agent.sh" --mca btl self,tcp --mca btl_tcp_if_include "$NET" \
  --mca oob_tcp_if_include "$NET" "$MPI_HL" train $A -o two.gguf >job.log 2>&1
rc=$?
sent=$(( $(tx) - before ))
per_step=$(sed -n 's/.* \([0-9.]*\) KiB exchanged per step.*/\1/p' job.log)
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
ok '[ $rc -eq 0 ] && [ -s two.gguf ]' "two ranks in two namespaces train (rc $rc)" || tail -20 job.log
ok 'cmp -s two.gguf ref.gguf && cmp -s two.gguf.ckpt ref.gguf.ckpt' "their adapter and checkpoint are the bytes of a run without MPI"
# Each of the 10 steps sends this side's half of the exchange at least.
ok '[ -n "$per_step" ] && python3 -c "import sys; sys.exit(0 if $sent >= 10 * $per_step * 1024 / 2 * 0.9 else 1)"' \
   "the exchanges crossed the veth link ($sent bytes sent by $A0; $per_step KiB exchanged per step)"
echo "test_mpi_netns: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
