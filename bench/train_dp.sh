#!/usr/bin/env bash
# bench/train_dp.sh BUILD_DIR [OUT_DIR]: data-parallel LoRA training on one
# machine. Three ways to use two cores are compared on the same run: one
# process with 1 thread, 2 processes x 1 thread (mpirun, the MPI build of the
# CLI), and 1 process with 2 threads. The run is rank 8 on
# q,v,o,gate,up,down over a random base (init-model, llama2 tokenizer): s15M
# at 4 x 256 and, with DP_FULL=1, s110M at 2 x 256, on the shipped example
# texts streamed into full rows. Per run: the median over steps 3.. of the
# metrics' tokens_per_s, and (2 processes) the share of the step time the
# gradient exchange took and the bytes it moved. DP_ROUNDS rounds (default 3)
# alternate the three configurations; the table gives medians and min-max.
# Table: OUT_DIR/train_dp.md. Needs mpirun and BUILD_DIR/hyperlora_mpi (or
# an -DHL_MPI=ON build); says so and exits 0 without them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OUT=${2:-$ROOT/bench/out}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
HL="$BUILD/hyperlora"
MPI_HL="$BUILD/hyperlora_mpi"
[ -x "$MPI_HL" ] || MPI_HL=$HL
if ! command -v mpirun >/dev/null || ! "$MPI_HL" --version | grep -q 'data-parallel training: MPI'; then
  echo "train_dp: no mpirun or no MPI build of the CLI; skipped (scripts/deps.sh mpi, then rebuild)"
  exit 0
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_hwloc_base_binding_policy=none
ROUNDS=${DP_ROUNDS:-3}
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# The example texts, repeated: streamed into rows they fill every slot.
python3 - "$ROOT" "$T/data.jsonl" <<'EOF'
import glob, json, sys
root, out = sys.argv[1], sys.argv[2]
texts = []
for f in sorted(glob.glob(root + "/examples/*/*.jsonl")):
    for line in open(f, encoding="utf-8"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        t = r.get("text") or ((r.get("prompt") or "") + (r.get("completion") or ""))
        if isinstance(t, str) and t.strip():
            texts.append(t)
with open(out, "w", encoding="utf-8") as f:
    for _ in range(20):
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
EOF

shapes=("s15M 4 12")
[ "${DP_FULL:-0}" = 1 ] && shapes+=("s110M 2 6")
printf '| base, rows | 1 process x 1 thread | 2 processes x 1 thread | 1 process x 2 threads | 2 procs / 2 threads | exchange share (2 procs) | exchanged per step |\n|---|---|---|---|---|---|---|\n' > "$T/table"
for shape in "${shapes[@]}"; do
  set -- $shape
  preset=$1 batch=$2 steps=$3
  base="$T/$preset.gguf"
  "$HL" init-model --preset "$preset" --tokenizer "$SHARED/models/llama2-tokenizer/tokenizer.bin" --seed 0 -o "$base" >/dev/null 2>&1
  A="-m $base --data $T/data.jsonl --pack stream --ctx 256 --batch $batch --steps $steps --rank 8 --alpha 16
     --targets q,v,o,gate,up,down --val-fraction 0 --checkpoint-every 0 --seed 1 --plain"
  : > "$T/$preset.runs"
  for r in $(seq "$ROUNDS"); do
    for cfg in p1t1 p2t1 p1t2; do
      rm -f "$T/o.gguf"*
      case $cfg in
        p1t1) "$HL" train $A --threads 1 -o "$T/o.gguf" 2> "$T/log" ;;
        p2t1) mpirun -np 2 "$MPI_HL" train $A --threads 1 -o "$T/o.gguf" 2> "$T/log" ;;
        p1t2) "$HL" train $A --threads 2 -o "$T/o.gguf" 2> "$T/log" ;;
      esac
      tps=$(python3 -c '
import json, statistics, sys
v = [r["tokens_per_s"] for r in map(json.loads, open(sys.argv[1])) if r["step"] >= 3 and r["tokens_per_s"]]
print("%.1f" % statistics.median(v))' "$T/o.gguf.metrics.jsonl")
      share=$(sed -n 's/.*exchange took \([0-9.]*\)%.*/\1/p' "$T/log")
      kib=$(sed -n 's/.* \([0-9.]*\) KiB exchanged per step.*/\1/p' "$T/log")
      echo "$cfg $tps ${share:-0} ${kib:-0}" >> "$T/$preset.runs"
      echo "train_dp: $preset round $r $cfg: $tps tok/s${share:+, exchange $share% of the step time, $kib KiB a step}"
    done
  done
  python3 - "$T/$preset.runs" "$preset ${batch}x256" >> "$T/table" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    cfg, tps, share, kib = line.split()
    runs.setdefault(cfg, []).append((float(tps), float(share), float(kib)))
def cell(cfg):
    v = [x[0] for x in runs[cfg]]
    return "%.0f tok/s (%.0f–%.0f)" % (statistics.median(v), min(v), max(v))
m = {c: statistics.median(x[0] for x in runs[c]) for c in runs}
sh = [x[1] for x in runs["p2t1"]]
print("| %s | %s | %s | %s | %.2f× | %.1f%% (%.1f–%.1f) | %.0f KiB |" % (
    sys.argv[2], cell("p1t1"), cell("p2t1"), cell("p1t2"), m["p2t1"] / m["p1t2"],
    statistics.median(sh), min(sh), max(sh), runs["p2t1"][0][2]))
EOF
done
{
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(mpirun --version | head -n 1); $ROUNDS rounds"
  echo
  cat "$T/table"
} | tee "$OUT/train_dp.md"
