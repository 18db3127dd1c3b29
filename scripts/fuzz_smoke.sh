#!/usr/bin/env bash
# fuzz_smoke.sh: builds the fuzz targets (`make fuzz`: clang, libFuzzer,
# ASan+UBSan) and runs EVERY fuzz/fuzz_*.c target for FUZZ_SECONDS (default
# 20) over a temp copy of its seed corpus fuzz/corpus/<name>/, with its
# dictionary when there is one. Fails if any target crashes, leaks, hangs
# (an input over FUZZ_TIMEOUT s, default 10) or runs out of memory; the input
# that did it is kept under $FUZZ_BUILD/fuzz-artifacts/. Prints execs,
# coverage and corpus size per target. The tree's corpus is never modified.
#
#   FUZZ_SECONDS=60 scripts/fuzz_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-20}
TIMEOUT=${FUZZ_TIMEOUT:-10}
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${JOBS:-$(nproc)}

t_build=$(date +%s)
make --no-print-directory fuzz FUZZ_BUILD="$BUILD" JOBS="$JOBS"
t_build=$(( $(date +%s) - t_build ))

ART=$BUILD/fuzz-artifacts
mkdir -p "$ART"
TMP=$(mktemp -d /tmp/hl_fuzz_smoke_XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# A target's dictionary: fuzz/<name>.dict, or the one named here.
dict_for() {
  case $1 in
    adapter) echo fuzz/peft.dict ;;
    model | checkpoint) echo fuzz/gguf.dict ;;
    *) [ -f "fuzz/$1.dict" ] && echo "fuzz/$1.dict" || true ;;
  esac
}

failed=()
printf '%-16s %6s %10s %8s %6s %6s %8s  %s\n' target secs execs exec/s cov ft corpus status
t_all=$(date +%s)
for src in fuzz/fuzz_*.c; do
  target=$(basename "$src" .c)
  name=${target#fuzz_}
  bin=$BUILD/$target
  if [ ! -x "$bin" ]; then
    failed+=("$target (not built)")
    continue
  fi
  corpus=$TMP/$name
  mkdir -p "$corpus"
  [ -d "fuzz/corpus/$name" ] && cp -R "fuzz/corpus/$name/." "$corpus/"
  args=(-max_total_time="$SECS" -timeout="$TIMEOUT" -max_len=4096 -print_final_stats=1
        -artifact_prefix="$ART/$name-")
  d=$(dict_for "$name")
  [ -n "$d" ] && args+=(-dict="$d")
  log=$TMP/$name.log
  t0=$(date +%s)
  rc=0
  "$bin" "${args[@]}" "$corpus" > "$log" 2>&1 || rc=$?
  dt=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<< "$last")
  status=ok
  if [ $rc -ne 0 ]; then
    status="FAILED (exit $rc)"
    failed+=("$target")
    echo "---- $target: last lines of its log" >&2
    tail -n 40 "$log" >&2
    cp "$log" "$ART/$name.log"
  fi
  printf '%-16s %6s %10s %8s %6s %6s %8s  %s\n' "$name" "$dt" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$status"
done
echo "fuzz-smoke: build ${t_build} s, fuzzing $(( $(date +%s) - t_all )) s (${SECS} s per target)"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in $ART/)" >&2
  exit 1
fi
echo "fuzz-smoke: all targets clean"
