#!/usr/bin/env bash
# test_kill.sh: crash safety of every command that writes a file we keep.
# `kill -9` lands on train, merge and convert at random moments (before,
# during and after their writes), HL_KILL_RUNS times each (default 20); then:
#   - the final output either does not exist or is complete: byte-identical to
#     an uninterrupted run's and `hyperlora inspect` reads it;
#   - a leftover temp file never sits under the final name (only as one
#     NAME.tmp.<12 random characters> of the killed process, a name the next
#     run never reuses: it creates its temp with O_EXCL);
#   - train (--checkpoint-every 1): an existing checkpoint loads and
#     `--resume` finishes with exactly the uninterrupted run's adapter.
# Also SIGINT on train: it checkpoints and exits 130 without writing the
# adapter, and --resume then gives the uninterrupted run's adapter bytes.
# Usage: bash test_kill.sh HYPERLORA SHARED_DIR
# The kill times come from a fixed seed, so every run tries the same ones;
# HL_KILL_SEED=N tries others.
set -u
HL=$1
SHARED=$2
MODEL=$SHARED/models/stories260K/stories260K-f32.gguf
BIN=$SHARED/models/stories260K/stories260K.bin
TOK=$SHARED/models/stories260K/tok512.bin
LORA=$SHARED/oracle/llamacpp/random_lora_r4.gguf
RUNS=${HL_KILL_RUNS:-20}
SEED=${HL_KILL_SEED:-20261202}
RANDOM=$SEED
for f in "$MODEL" "$BIN" "$TOK" "$LORA"; do
  [ -f "$f" ] || { echo "test_kill: missing $f"; exit 1; }
done
W=$(mktemp -d /tmp/hl_kill_XXXXXX)
trap 'rm -rf "$W"' EXIT
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }
now_ms() { date +%s%3N; }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
echo "test_kill: seed $SEED, $RUNS runs per command (HL_KILL_SEED=$SEED reproduces)"

# Training data: a few short stories the stories260K tokenizer knows.
for i in 1 2 3 4 5 6; do
  echo '{"text": "Once upon a time there was a little dog named Max. He liked to run in the park."}'
  echo '{"text": "Lily had a red ball. She played with her mom and they were happy."}'
  echo '{"prompt": "The sun was", "completion": " warm and the birds sang."}'
done > "$W/data.jsonl"
TRAIN_ARGS=(-m "$MODEL" --data "$W/data.jsonl" --ctx 32 --batch 2 --rank 2 --alpha 4 --eval-every 0
            --checkpoint-every 1 --seed 7 --plain)

# A delay in [0, T): half spread over the whole run and past its end, half
# within the run (where merge/convert write and train checkpoints).
pick_delay() { # $1 = uninterrupted duration in ms
  local d=$(( $1 > 4 ? $1 : 4 ))
  if (( RANDOM % 2 )); then echo $(( RANDOM % (d * 3 / 2) )); else echo $(( RANDOM % d )); fi
}

# The fastest of 3 uninterrupted runs (ms), which must all give the same bytes
# (kept as $W/$1.ref). $2 = output path, then the command.
reference() {
  local name=$1 out=$2 best=1000000 k t0 dt
  shift 2
  for k in 1 2 3; do
    rm -f "$out"
    t0=$(now_ms)
    "$@" > "$W/$name.log" 2>&1 || { fail "$name: uninterrupted run failed: $(tail -n 2 "$W/$name.log")"; return 1; }
    dt=$(( $(now_ms) - t0 ))
    (( dt < best )) && best=$dt
    if [ $k -eq 1 ]; then mv "$out" "$W/$name.ref"
    else cmp -s "$out" "$W/$name.ref" || fail "$name: two uninterrupted runs give different bytes"; fi
  done
  rm -f "$out"
  DUR=$best
}

# Leftover temp files of the killed run: at most one OUT.tmp.XXXXXXXXXXXX (12
# random characters) per output; removed.
check_temps() { # $1 = final path, $2 = pid
  local f n=0
  for f in "$1".tmp*; do
    [ -e "$f" ] || continue
    [[ "$f" == "$1".tmp.???????????? ]] || fail "unexpected temp file $f"
    n=$((n + 1))
    rm -f "$f"
    TEMPS=$((TEMPS + 1))
  done
  [ $n -le 1 ] || fail "$n temp files of $1 left by one killed process (pid $2)"
}

# Final output: absent, or identical to the reference and inspectable.
check_output() { # $1 = path, $2 = reference, $3 = label
  [ -e "$1" ] || { ABSENT=$((ABSENT + 1)); return; }
  COMPLETE=$((COMPLETE + 1))
  cmp -s "$1" "$2" || fail "$3: $1 exists but differs from the uninterrupted output"
  "$HL" inspect "$1" > /dev/null 2>&1 || fail "$3: hyperlora inspect cannot read $1"
}

# ---------------------------------------------------------------- merge / convert
kill_loop() { # $1 = name, $2 = output path, then the command
  local name=$1 out=$2
  shift 2
  reference "$name" "$out" "$@" || return
  ABSENT=0 COMPLETE=0 TEMPS=0
  local before=0 during=0 after=0 finished=0 r
  for ((r = 0; r < RUNS; r++)); do
    rm -f "$out"
    local delay=$(pick_delay $DUR)
    "$@" > /dev/null 2>&1 &
    local pid=$!
    sleep_ms "$delay"
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    local rc=$?
    if [ $rc -ne 137 ]; then finished=$((finished + 1))
    elif [ -e "$out" ]; then after=$((after + 1))
    elif compgen -G "$out.tmp.*" > /dev/null; then during=$((during + 1))
    else before=$((before + 1)); fi
    check_output "$out" "$W/$name.ref" "$name run $r (kill at ${delay} ms)"
    check_temps "$out" "$pid"
  done
  echo "$name: uninterrupted ${DUR} ms; $RUNS kills: $before before the write, $during during it" \
       "(temp file left, final name absent), $after after the rename, $finished after exit;" \
       "output $ABSENT absent, $COMPLETE complete and identical"
}

kill_loop merge "$W/merged.gguf" "$HL" merge -m "$MODEL" --lora "$LORA" -o "$W/merged.gguf"
kill_loop convert "$W/converted.gguf" "$HL" convert "$BIN" --tokenizer "$TOK" -o "$W/converted.gguf"

# ---------------------------------------------------------------- train
STEPS=6
train_clean() { rm -f "$1" "$1.ckpt" "$1.metrics.jsonl" "$1".tmp* "$1.ckpt".tmp*; }
OUT=$W/adapter.gguf
train_clean "$OUT"
reference train "$OUT" "$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT"
ABSENT=0 COMPLETE=0 TEMPS=0
before=0 midrun=0 after=0 finished=0
for ((r = 0; r < RUNS; r++)); do
  train_clean "$OUT"
  delay=$(pick_delay $DUR)
  "$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT" > /dev/null 2>&1 &
  pid=$!
  sleep_ms "$delay"
  kill -9 "$pid" 2> /dev/null
  wait "$pid" 2> /dev/null
  rc=$?
  if [ $rc -ne 137 ]; then finished=$((finished + 1))
  elif [ -e "$OUT" ]; then after=$((after + 1))
  elif [ -e "$OUT.ckpt" ]; then midrun=$((midrun + 1))
  else before=$((before + 1)); fi
  label="train run $r (kill at ${delay} ms)"
  check_output "$OUT" "$W/train.ref" "$label"
  check_temps "$OUT" "$pid"
  check_temps "$OUT.ckpt" "$pid"
  if [ -e "$OUT.ckpt" ]; then
    "$HL" inspect "$OUT.ckpt" > /dev/null 2>&1 || fail "$label: hyperlora inspect cannot read the checkpoint"
    rm -f "$OUT"
    if "$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT" --resume > "$W/resume.log" 2>&1; then
      cmp -s "$OUT" "$W/train.ref" || fail "$label: the resumed run's adapter differs from the uninterrupted one"
    else
      fail "$label: --resume from the checkpoint failed: $(tail -n 2 "$W/resume.log")"
    fi
  else
    [ -e "$OUT" ] && fail "$label: an adapter without a checkpoint"
  fi
done
echo "train: uninterrupted ${DUR} ms ($STEPS steps); $RUNS kills: $before before the first checkpoint," \
     "$midrun mid-run (checkpoint, no adapter), $after after the adapter, $finished after exit;" \
     "every checkpoint resumed to the identical adapter; $TEMPS temp files left by killed writers"

# ---------------------------------------------------------------- SIGINT
# Long enough that the interrupt lands mid-run: sent once the first checkpoint exists.
STEPS=40
train_clean "$OUT"
"$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT" > /dev/null 2>&1 || fail "train (SIGINT reference) failed"
mv "$OUT" "$W/sigint.ref"
train_clean "$OUT"
"$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT" > "$W/int.log" 2>&1 &
pid=$!
for ((i = 0; i < 3000; i++)); do [ -e "$OUT.ckpt" ] && break; sleep 0.01; done
kill -INT "$pid"
wait "$pid"
rc=$?
if [ $rc -ne 130 ]; then
  fail "SIGINT: train exited $rc, want 130: $(tail -n 2 "$W/int.log")"
else
  grep -q "interrupted at step" "$W/int.log" || fail "SIGINT: no 'interrupted at step' message"
  [ -e "$OUT" ] && fail "SIGINT: the adapter was written although the run was interrupted"
  at=$(sed -n 's/.*interrupted at step \([0-9]*\).*/\1/p' "$W/int.log")
  "$HL" inspect "$OUT.ckpt" > /dev/null 2>&1 || fail "SIGINT: hyperlora inspect cannot read the checkpoint"
  if "$HL" train "${TRAIN_ARGS[@]}" --steps $STEPS -o "$OUT" --resume > "$W/resume.log" 2>&1; then
    cmp -s "$OUT" "$W/sigint.ref" || fail "SIGINT: the resumed adapter differs from the uninterrupted run's"
    echo "SIGINT: exit 130 at step $at of $STEPS, checkpointed; --resume gave the identical adapter"
  else
    fail "SIGINT: --resume failed: $(tail -n 2 "$W/resume.log")"
  fi
fi

[ $FAIL -eq 0 ] && echo "test_kill: OK" || echo "test_kill: FAILED (seed $SEED)"
exit $FAIL
