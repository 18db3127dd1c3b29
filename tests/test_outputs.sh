#!/usr/bin/env bash
# test_outputs.sh: data safety of every command that writes (train, pretrain,
# merge, combine, convert, init-model, plot): no command may lose a user's file.
#   - an output that is an input (by path, a second hard link, a symlink, a
#     relative path, a symlinked directory) or another output is refused
#     before any work, naming both flags;
#   - an output that is a FIFO, a character device (root only), a directory
#     or a symlink is refused; --metrics never replaces a file that is not a
#     metrics log;
#   - symlinks planted at the temp names (the old OUT.tmp.<pid> of the very
#     process, and other OUT.tmp.* names) are never followed;
#   - a read-only directory and a full disk give a clear error, keep the old
#     output and leave no temp file;
#   - a base model truncated by another process while train or generate runs
#     stops the command with a message and exit status 1, not a crash.
# Refused cases check that the whole work directory is unchanged (listing,
# modes, link counts, link targets, sha256 of every file): no input touched,
# nothing created, no temp file left.
# Usage: test_outputs.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
SM=$S/models/stories260K
T=$(mktemp -d /tmp/hl_outputs_XXXXXX)
MOUNTS=()
cleanup() {
  local m
  for m in "${MOUNTS[@]}"; do umount "$m" 2> /dev/null; done
  chmod -R u+w "$T" 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM # so that a killed run still unmounts and cleans up
trap 'exit 130' INT
W=$T/w # the files under test
L=$T/log # command output and side files, outside W
mkdir -p "$W" "$L"
cd "$W"
pass=0; fail=0; skipped=0
good() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); echo "skip: $*"; }
ROOT=0; [ "$(id -u)" -eq 0 ] && ROOT=1

# ---------------------------------------------------------------- fixtures
cp "$SM/stories260K-f32.gguf" base.gguf
cp "$SM/stories260K.bin" model.bin
cp "$SM/tok512.bin" tok.bin
for i in 1 2 3 4 5 6; do
  echo '{"text": "Once upon a time there was a little dog named Max. He liked to run in the park."}'
  echo '{"prompt": "The sun was", "completion": " warm and the birds sang."}'
done > data.jsonl
cp data.jsonl cfg.gguf.metrics.jsonl # data whose name is another run's default metrics log
for i in $(seq 40); do printf 'The cat sat on the mat, number %d, and looked at the dog.\n\n' "$i"; done > corpus.txt
cp corpus.txt corpus2.txt
echo '{"id": "x"}' > lex.jsonl
echo "precious notes, not a metrics log" > notes.txt
echo "the victim of a planted link" > victim.txt
cp base.gguf other.gguf # a model that is no input of the commands below
TRAIN=(train -m base.gguf --data data.jsonl --steps 2 --ctx 16 --batch 2 --rank 2 --alpha 4 --eval-every 0
       --val-fraction 0 --plain)
PRETRAIN=(pretrain --corpus corpus.txt --preset nano --ctx 32 --vocab 300 --steps 2 --batch 2 --eval-every 0 --plain)
"$HL" "${TRAIN[@]}" -o adapter.gguf --peft-out peft --metrics run.metrics.jsonl --checkpoint "$L/fixture.ckpt" \
  > /dev/null 2> "$L/fixture.log" || { echo "FAIL: fixture adapter: $(tail -n 2 "$L/fixture.log")"; exit 1; }
mkdir -p sub adir
ln -s . loop
mkfifo fifo
ln -s victim.txt link.gguf
for f in base.gguf model.bin tok.bin data.jsonl corpus.txt lex.jsonl adapter.gguf run.metrics.jsonl \
         peft/adapter_model.safetensors; do
  ln "$f" "$f.hard"
  ln -s "$(basename "$f")" "$f.sym"
done
CHR=
if [ $ROOT -eq 1 ] && mknod chardev c 1 3 2> /dev/null; then CHR=chardev; fi
chmod -R u+w . 2> /dev/null

# Everything under W (or under W but outside $1): type, mode, links, path, link target; then the sha256 of every file.
state() {
  local prune=${1:-./.none}
  find . -path "$prune" -prune -o -printf '%y %m %n %p -> %l\n' | sort
  find . -path "$prune" -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
}

# refuse LABEL REGEX CMD...: exit status 1, a message on stderr matching the
# extended regex, and W exactly as it was.
refuse() {
  local label=$1 want=$2 before after rc
  shift 2
  before=$(state)
  "$HL" "$@" > "$L/out" 2> "$L/err"
  rc=$?
  after=$(state)
  if [ $rc -eq 1 ] && grep -Eq -- "$want" "$L/err" && [ "$before" = "$after" ]; then
    good "$label: $(head -n 1 "$L/err")"
  else
    bad "$label: exit $rc, stderr: $(head -c 400 "$L/err")"
    diff <(echo "$before") <(echo "$after") | head -n 8
  fi
}

# same_file CMD OFLAG IFLAG INPUT ARGS...: OFLAG naming INPUT five ways (the
# path, a hard link, a symlink, sub/../INPUT, loop/INPUT) is refused with
# "OFLAG ... is the same file as IFLAG ...".
same_file() {
  local cmd=$1 oflag=$2 iflag=$3 in=$4 how out
  shift 4
  for how in path hard sym relative dirlink; do
    case $how in
      path) out=$in ;; hard) out=$in.hard ;; sym) out=$in.sym ;;
      relative) out=sub/../$in ;; dirlink) out=loop/$in ;;
    esac
    refuse "$cmd: $oflag = $iflag ($how)" "$oflag [^ ]+ is the same file as $iflag " "$@" "$oflag" "$out"
  done
}

# ---------------------------------------------------------------- output = input
echo "== output = input"
same_file train -o -m base.gguf "${TRAIN[@]}"
same_file train -o --data data.jsonl "${TRAIN[@]}"
same_file train --checkpoint -m base.gguf "${TRAIN[@]}" -o new.gguf
same_file train --metrics -m base.gguf "${TRAIN[@]}" -o new.gguf
same_file train --metrics --data data.jsonl "${TRAIN[@]}" -o new.gguf
same_file train -o --lexicon lex.jsonl "${TRAIN[@]}" --lexicon lex.jsonl
same_file train -o --tokenizer tok.bin train -m model.bin --tokenizer tok.bin --data data.jsonl --steps 2
same_file train -o -m model.bin train -m model.bin --tokenizer tok.bin --data data.jsonl --steps 2
refuse "train: the default --metrics = --data" "the default --metrics cfg.gguf.metrics.jsonl is the same file as --data" \
  "${TRAIN[@]/data.jsonl/cfg.gguf.metrics.jsonl}" -o cfg.gguf
refuse "train: -o in an --init-from PEFT directory" "-o peft/adapter_model.safetensors is the same file as --init-from peft/adapter_model.safetensors" \
  "${TRAIN[@]}" --init-from peft -o peft/adapter_model.safetensors
refuse "train: -o over an --init-from PEFT directory's config" "-o peft/adapter_config.json is the same file as --init-from peft/adapter_config.json" \
  "${TRAIN[@]}" --init-from peft -o peft/adapter_config.json
refuse "train: --peft-out = --init-from (a PEFT directory)" "--peft-out peft/adapter_model.safetensors is the same file as --init-from peft/adapter_model.safetensors" \
  "${TRAIN[@]}" --init-from peft -o new.gguf --peft-out peft
refuse "train: --peft-out = the directory of an --init-from PEFT file" "--peft-out peft/adapter_model.safetensors is the same file as --init-from peft/adapter_model.safetensors" \
  "${TRAIN[@]}" --init-from peft/adapter_model.safetensors -o new.gguf --peft-out peft
refuse "train: --peft-out holding an input's file" "--peft-out peft/adapter_model.safetensors is the same file as --data" \
  train -m base.gguf --data peft/adapter_model.safetensors -o new.gguf --peft-out peft
same_file pretrain -o --corpus corpus.txt "${PRETRAIN[@]}" --corpus corpus2.txt
same_file pretrain --checkpoint --corpus corpus.txt "${PRETRAIN[@]}" -o new.gguf
same_file pretrain --metrics --corpus corpus.txt "${PRETRAIN[@]}" -o new.gguf
same_file merge -o -m base.gguf merge -m base.gguf --lora adapter.gguf
same_file merge -o --lora adapter.gguf merge -m base.gguf --lora adapter.gguf
same_file merge -o --lora peft/adapter_model.safetensors merge -m base.gguf --lora peft
same_file merge -o --tokenizer tok.bin merge -m model.bin --tokenizer tok.bin --lora adapter.gguf
same_file combine -o -m base.gguf combine -m base.gguf --method cat --lora adapter.gguf
same_file combine -o --lora adapter.gguf combine -m base.gguf --method cat --lora adapter.gguf
refuse "combine: --peft-out = --lora (a PEFT directory)" "--peft-out peft/adapter_model.safetensors is the same file as --lora peft/adapter_model.safetensors" \
  combine -m base.gguf --method cat --lora peft -o new.gguf --peft-out peft
same_file convert -o "the input" model.bin convert model.bin --tokenizer tok.bin
same_file convert -o --tokenizer tok.bin convert model.bin --tokenizer tok.bin
same_file convert -o "the input" base.gguf convert base.gguf
same_file init-model -o --tokenizer tok.bin init-model --preset s260K --tokenizer tok.bin
same_file plot -o "the metrics file" run.metrics.jsonl plot run.metrics.jsonl

# ---------------------------------------------------------------- output = output
echo "== output = another output"
refuse "train: --checkpoint = -o" "--checkpoint new.gguf is the same file as -o new.gguf" "${TRAIN[@]}" -o new.gguf --checkpoint new.gguf
refuse "train: --metrics = -o" "--metrics ./new.gguf is the same file as -o new.gguf" "${TRAIN[@]}" -o new.gguf --metrics ./new.gguf
refuse "train: --metrics = the default --checkpoint" "--metrics new.gguf.ckpt is the same file as the default --checkpoint new.gguf.ckpt" \
  "${TRAIN[@]}" -o new.gguf --metrics new.gguf.ckpt
refuse "train: --metrics = --checkpoint (a symlinked directory)" "--metrics loop/x.ckpt is the same file as --checkpoint x.ckpt" \
  "${TRAIN[@]}" -o new.gguf --checkpoint x.ckpt --metrics loop/x.ckpt
refuse "train: -o = an existing output's hard link" "--checkpoint adapter.gguf.hard is the same file as -o adapter.gguf" \
  "${TRAIN[@]}" -o adapter.gguf --checkpoint adapter.gguf.hard
refuse "train: -o inside --peft-out" "--peft-out newpeft/adapter_config.json is the same file as -o newpeft/adapter_config.json" \
  "${TRAIN[@]}" -o newpeft/adapter_config.json --peft-out newpeft
refuse "pretrain: --metrics = -o" "--metrics new.gguf is the same file as -o new.gguf" "${PRETRAIN[@]}" -o new.gguf --metrics new.gguf
refuse "pretrain: --checkpoint = the default --metrics" "the default --metrics new.gguf.metrics.jsonl is the same file as --checkpoint sub/../new.gguf.metrics.jsonl" \
  "${PRETRAIN[@]}" -o new.gguf --checkpoint sub/../new.gguf.metrics.jsonl
refuse "combine: -o = a file of --peft-out" "--peft-out pd/adapter_model.safetensors is the same file as -o pd/adapter_model.safetensors" \
  combine -m base.gguf --method cat --lora adapter.gguf -o pd/adapter_model.safetensors --peft-out pd
echo "(merge, convert, init-model and plot have one output each)"

# ---------------------------------------------------------------- what an output may be
echo "== outputs that are not regular files"
KINDS=("fifo:is a FIFO" "adir:is a directory" "link.gguf:is a symbolic link")
if [ -n "$CHR" ]; then KINDS+=("chardev:is a character device"); else skip "character device: mknod needs root"; fi
for k in "${KINDS[@]}"; do
  p=${k%%:*} msg=${k#*:}
  refuse "train -o $p" "-o $p $msg" "${TRAIN[@]}" -o $p
  refuse "train --checkpoint $p" "--checkpoint $p $msg" "${TRAIN[@]}" -o new.gguf --checkpoint $p
  refuse "train --metrics $p" "--metrics $p $msg" "${TRAIN[@]}" -o new.gguf --metrics $p
  refuse "pretrain -o $p" "-o $p $msg" "${PRETRAIN[@]}" -o $p
  refuse "merge -o $p" "-o $p $msg" merge -m base.gguf --lora adapter.gguf -o $p
  refuse "combine -o $p" "-o $p $msg" combine -m base.gguf --method cat --lora adapter.gguf -o $p
  refuse "convert -o $p" "-o $p $msg" convert model.bin --tokenizer tok.bin -o $p
  refuse "init-model -o $p" "-o $p $msg" init-model --preset s260K --tokenizer tok.bin -o $p
  refuse "plot -o $p" "-o $p $msg" plot run.metrics.jsonl -o $p
done
refuse "train --peft-out a FIFO" "--peft-out fifo exists and is not a directory" "${TRAIN[@]}" -o new.gguf --peft-out fifo
refuse "combine --peft-out a regular file" "--peft-out notes.txt exists and is not a directory" \
  combine -m base.gguf --method cat --lora adapter.gguf -o new.gguf --peft-out notes.txt
refuse "train --metrics a file that is not a metrics log" "--metrics notes.txt is not a metrics log" \
  "${TRAIN[@]}" -o new.gguf --metrics notes.txt
refuse "train --resume --metrics a model that is no input" "--metrics other.gguf is not a metrics log" \
  "${TRAIN[@]}" -o new.gguf --resume --metrics other.gguf
refuse "pretrain --metrics a model" "--metrics other.gguf is not a metrics log" "${PRETRAIN[@]}" -o new.gguf --metrics other.gguf
cp notes.txt kept.gguf.ckpt # another file that happens to sit at a run's default checkpoint
refuse "train: the default --checkpoint over a file that is no checkpoint" "the default --checkpoint kept.gguf.ckpt is not a checkpoint" \
  "${TRAIN[@]}" -o kept.gguf
refuse "train --checkpoint a file that is no checkpoint" "--checkpoint notes.txt is not a checkpoint" \
  "${TRAIN[@]}" -o new.gguf --checkpoint notes.txt
refuse "pretrain: the default --checkpoint over a file that is no checkpoint" "the default --checkpoint kept.gguf.ckpt is not a checkpoint" \
  "${PRETRAIN[@]}" -o kept.gguf
refuse "init-model: a shape larger than this machine's memory, refused before it is built" \
  "makes a [0-9.]+ GB f32 model, more than this machine's" init-model --dim 65536 --ffn 65536 --layers 1000 --tokenizer tok.bin -o new.gguf
refuse "train -o in a missing directory" "-o nodir/new.gguf: the directory nodir does not exist" "${TRAIN[@]}" -o nodir/new.gguf

# ---------------------------------------------------------------- inputs that are FIFOs
echo "== inputs that are FIFOs"
# Opening a FIFO for reading waits for a writer: every loader must refuse it at once instead.
fifo_input() {
  local label=$1 before after rc
  shift
  before=$(state)
  timeout 20 "$HL" "$@" > "$L/out" 2> "$L/err"
  rc=$?
  after=$(state)
  if [ $rc -eq 1 ] && grep -q "FIFO" "$L/err" && [ "$before" = "$after" ]; then
    good "$label: $(head -n 1 "$L/err")"
  else
    bad "$label: exit $rc (124: it waited on the FIFO), stderr: $(head -c 300 "$L/err")"
  fi
}
fifo_input "generate -m a FIFO" generate -m fifo -n 2
fifo_input "inspect a FIFO" inspect fifo
fifo_input "tokenize -m a FIFO" tokenize -m fifo -f corpus.txt
fifo_input "tokenize -f a FIFO" tokenize -m base.gguf -f fifo
fifo_input "perplexity -f a FIFO" perplexity -m base.gguf -f fifo --ctx 16
fifo_input "generate --lora a FIFO" generate -m base.gguf --lora fifo -n 2
fifo_input "merge --lora a FIFO" merge -m base.gguf --lora fifo -o new.gguf
fifo_input "train -m a FIFO" "${TRAIN[@]/base.gguf/fifo}" -o new.gguf
fifo_input "train --init-from a FIFO" "${TRAIN[@]}" --init-from fifo -o new.gguf
fifo_input "train --tokenizer a FIFO" train -m model.bin --tokenizer fifo --data data.jsonl --steps 2 -o new.gguf

# ---------------------------------------------------------------- planted temp names
echo "== symlinks planted at the temp names"
# planted LABEL "OUT..." CMD...: links to victim.txt at OUT.tmp.<pid> (the
# shell execs the command, which keeps its pid: the old scheme's exact name)
# and at other OUT.tmp.* names; the command succeeds, writes each OUT as a
# regular file, leaves the victim and the links as they were and no temp file.
planted() {
  local label=$1 outs=$2 o v rc ok=1 n
  shift 2
  v=$(sha256sum < victim.txt)
  for o in $outs; do mkdir -p "$(dirname "$o")"; done
  bash -c 'for o in $1; do for s in $$ 000000000000 zzzzzzzzzzzz AAAAAAAAAAAA; do ln -s "$PWD/victim.txt" "$o.tmp.$s"; done; done
           shift; exec "$@"' _ "$outs" "$HL" "$@" > "$L/out" 2> "$L/err"
  rc=$?
  [ $rc -eq 0 ] || { ok=0; echo "  exit $rc: $(head -c 300 "$L/err")"; }
  [ "$(sha256sum < victim.txt)" = "$v" ] || { ok=0; echo "  the victim changed"; }
  for o in $outs; do
    { [ -f "$o" ] && [ ! -L "$o" ]; } || { ok=0; echo "  $o is not a regular file"; }
    n=0
    for f in "$o".tmp.*; do
      if [ -L "$f" ] && [ "$(readlink "$f")" = "$PWD/victim.txt" ]; then n=$((n + 1)); rm -f "$f"
      elif [ -e "$f" ] || [ -L "$f" ]; then ok=0; echo "  left behind: $f"; rm -f "$f"; fi
    done
    [ $n -eq 4 ] || { ok=0; echo "  $o: $n of the 4 planted links are intact"; }
  done
  if [ $ok -eq 1 ]; then good "$label"; else bad "$label"; fi
}
planted "train (-o, checkpoint, metrics)" "t.gguf t.gguf.ckpt t.gguf.metrics.jsonl" "${TRAIN[@]}" -o t.gguf
planted "train --peft-out" "tp/adapter_model.safetensors tp/adapter_config.json" "${TRAIN[@]}" -o t2.gguf --peft-out tp
planted "pretrain (-o, checkpoint, metrics)" "p.gguf p.gguf.ckpt p.gguf.metrics.jsonl" \
  "${PRETRAIN[@]}" -o p.gguf
planted "merge" "m.gguf" merge -m base.gguf --lora adapter.gguf -o m.gguf
planted "combine (-o)" "c.gguf" combine -m base.gguf --method cat --lora adapter.gguf -o c.gguf
planted "convert" "v.gguf" convert model.bin --tokenizer tok.bin -o v.gguf
planted "init-model" "i.gguf" init-model --preset s260K --tokenizer tok.bin -o i.gguf
planted "plot" "l.svg" plot run.metrics.jsonl -o l.svg
for f in t.gguf t.gguf.ckpt p.gguf m.gguf c.gguf v.gguf i.gguf; do
  "$HL" inspect "$f" > /dev/null 2>&1 || bad "inspect cannot read $f after the planted-links run"
done
# A new file gets 0666 & ~umask (it is 0600 while being written); a second
# hard link to the old output keeps the old contents.
cp m.gguf m.old; ln m.gguf m.backup
(umask 027; "$HL" merge -m base.gguf --lora adapter.gguf --lora adapter.gguf -o m.gguf 2> "$L/err")
if [ "$(stat -c %a m.gguf)" = 640 ] && cmp -s m.backup m.old && ! cmp -s m.gguf m.old; then
  good "an output gets the umask's mode (640 under 027), and a hard link to the old output keeps it"
else bad "mode $(stat -c %a m.gguf) under umask 027, or the old output's other link changed"; fi
rm -f t.gguf* t2.gguf* p.gguf* m.gguf m.old m.backup c.gguf v.gguf i.gguf l.svg
rm -rf tp

# ---------------------------------------------------------------- read-only directory
echo "== a read-only directory"
mkdir -p "$T/rosrc" ro
cp adapter.gguf "$T/rosrc/old.gguf"
RO=0
if [ $ROOT -eq 1 ]; then
  if mount --bind "$T/rosrc" ro 2> /dev/null; then
    MOUNTS+=("$W/ro")
    mount -o remount,bind,ro ro 2> /dev/null && RO=1
  fi
else
  cp "$T/rosrc/old.gguf" ro/ && chmod a-w ro && RO=1
fi
if [ $RO -eq 1 ] && ! (: > ro/probe) 2> /dev/null; then
  rx="cannot write in the directory ro"
  refuse "train -o in a read-only directory" "-o ro/old.gguf: $rx" "${TRAIN[@]}" -o ro/old.gguf
  refuse "train --checkpoint in a read-only directory" "--checkpoint ro/x.ckpt: $rx" "${TRAIN[@]}" -o new.gguf --checkpoint ro/x.ckpt
  refuse "train --metrics in a read-only directory" "--metrics ro/x.jsonl: $rx" "${TRAIN[@]}" -o new.gguf --metrics ro/x.jsonl
  refuse "train --peft-out in a read-only directory" "--peft-out ro/pd: $rx" "${TRAIN[@]}" -o new.gguf --peft-out ro/pd
  refuse "train --peft-out a read-only directory" "--peft-out ro: cannot write in it" "${TRAIN[@]}" -o new.gguf --peft-out ro
  refuse "pretrain -o in a read-only directory" "-o ro/old.gguf: $rx" "${PRETRAIN[@]}" -o ro/old.gguf
  refuse "merge -o in a read-only directory" "-o ro/old.gguf: $rx" merge -m base.gguf --lora adapter.gguf -o ro/old.gguf
  refuse "combine -o in a read-only directory" "-o ro/old.gguf: $rx" combine -m base.gguf --method cat --lora adapter.gguf -o ro/old.gguf
  refuse "convert -o in a read-only directory" "-o ro/old.gguf: $rx" convert model.bin --tokenizer tok.bin -o ro/old.gguf
  refuse "init-model -o in a read-only directory" "-o ro/old.gguf: $rx" init-model --preset s260K --tokenizer tok.bin -o ro/old.gguf
  refuse "plot -o in a read-only directory" "-o ro/l.svg: $rx" plot run.metrics.jsonl -o ro/l.svg
else
  skip "read-only directory: no read-only bind mount here (and root writes anywhere)"
fi

# ---------------------------------------------------------------- full disk
echo "== a full disk"
# full_disk LABEL OUT CMD...: OUT (an old output on a full tmpfs) is kept as
# it was, the command fails with exit 1 and a no-space message, every file
# outside the tmpfs is unchanged, and no temp file is left on it.
full_disk() {
  local label=$1 out=$2 before after rc left
  shift 2
  local old; old=$(sha256sum < "$out")
  before=$(state ./full)
  "$HL" "$@" > "$L/out" 2> "$L/err"
  rc=$?
  after=$(state ./full)
  left=$(find full -name '*.tmp.*' | head -n 3)
  if [ $rc -eq 1 ] && grep -q "No space left on device" "$L/err" && [ "$before" = "$after" ] &&
     [ "$(sha256sum < "$out")" = "$old" ] && [ -z "$left" ]; then
    good "$label: $(head -n 1 "$L/err")"
  else
    bad "$label: exit $rc, stderr: $(head -c 300 "$L/err"); temp files: $left"
    diff <(echo "$before") <(echo "$after") | head -n 6
  fi
  find full -name '*.tmp.*' -delete 2> /dev/null
}
mkdir full
if [ $ROOT -eq 1 ] && mount -t tmpfs -o size=512k tmpfs full 2> /dev/null; then
  MOUNTS+=("$W/full")
  echo "old adapter" > full/old.gguf
  printf 'GGUF: an old checkpoint\n' > full/old.ckpt
  echo "old plot" > full/old.svg
  mkdir full/peft
  dd if=/dev/zero of=full/filler bs=4k > /dev/null 2>&1 # until the disk is full
  if (echo x > full/probe) 2> /dev/null; then
    skip "full disk: the tmpfs did not fill up"
  else
    full_disk "train -o on a full disk" full/old.gguf "${TRAIN[@]}" -o full/old.gguf --checkpoint "$L/f.ckpt" \
      --metrics "$L/f.jsonl"
    full_disk "train --checkpoint on a full disk" full/old.ckpt "${TRAIN[@]}" -o "$L/f.gguf" --checkpoint full/old.ckpt \
      --metrics "$L/f.jsonl"
    full_disk "train --metrics on a full disk" full/old.gguf "${TRAIN[@]}" -o "$L/f.gguf" --checkpoint "$L/f.ckpt" \
      --metrics full/m.jsonl
    full_disk "train --peft-out on a full disk" full/old.gguf "${TRAIN[@]}" -o "$L/f.gguf" --checkpoint "$L/f.ckpt" \
      --metrics "$L/f.jsonl" --peft-out full/peft
    full_disk "pretrain -o on a full disk" full/old.gguf "${PRETRAIN[@]}" -o full/old.gguf \
      --checkpoint "$L/p.ckpt" --metrics "$L/p.jsonl"
    full_disk "merge -o on a full disk" full/old.gguf merge -m base.gguf --lora adapter.gguf -o full/old.gguf
    full_disk "combine -o on a full disk" full/old.gguf combine -m base.gguf --method cat --lora adapter.gguf -o full/old.gguf
    full_disk "convert -o on a full disk" full/old.gguf convert model.bin --tokenizer tok.bin -o full/old.gguf
    refuse "init-model -o on a full disk, refused before the model is built" "makes a [0-9.]+ MB f32 model; full/ has [0-9.]+ MB free" \
      init-model --preset s260K --tokenizer tok.bin -o full/old.gguf
    full_disk "plot -o on a full disk" full/old.svg plot run.metrics.jsonl -o full/old.svg
  fi
else
  skip "full disk: mounting a small tmpfs needs root"
fi

# ---------------------------------------------------------------- truncated while mapped
echo "== a base model truncated by another process during a run"
# wait_for FILE MIN_BYTES PID: until FILE holds MIN_BYTES or PID is gone (at most ~20 s).
wait_for() {
  local i
  for ((i = 0; i < 2000; i++)); do
    [ "$(stat -c %s "$1" 2> /dev/null || echo 0)" -ge "$2" ] && return 0
    kill -0 "$3" 2> /dev/null || return 1
    sleep 0.01
  done
  return 1
}
# truncated LABEL LOG RC: exit status 1 (not killed by SIGBUS) and a message.
truncated() {
  if [ "$3" -eq 1 ] && grep -Eq "truncated by another process" "$2"; then good "$1: $(grep -m1 "by another process" "$2")"
  else bad "$1: exit $3 (135 = killed by SIGBUS), stderr: $(tail -c 300 "$2")"; fi
}
cp base.gguf "$L/moving.gguf"
rm -f "$L/tr.gguf.metrics.jsonl" # wait_for watches it grow
"$HL" train -m "$L/moving.gguf" --data data.jsonl --steps 1000000 --ctx 16 --batch 2 --rank 2 --eval-every 0 \
  --val-fraction 0 --checkpoint-every 0 --plain -o "$L/tr.gguf" > /dev/null 2> "$L/tr.log" &
pid=$!
if wait_for "$L/tr.gguf.metrics.jsonl" 400 $pid; then
  truncate -s 1000 "$L/moving.gguf"
  wait $pid
  truncated "train: the base truncated mid-run" "$L/tr.log" $?
else
  kill $pid 2> /dev/null; wait $pid; bad "train: the run did not start: $(tail -c 300 "$L/tr.log")"
fi
# generate on a model big enough that 1000 tokens take about a second.
"$HL" init-model --preset s15M --ctx 1024 --tokenizer tok.bin -o "$L/big.gguf" 2> /dev/null
for layout in packed rows; do
  cp "$L/big.gguf" "$L/moving.gguf"
  : > "$L/gen.txt" # emptied here, not by the child's redirection: wait_for must not see the last run's output
  HYPERLORA_WEIGHTS=$layout "$HL" generate -m "$L/moving.gguf" -n 1000 --ignore-eos > "$L/gen.txt" 2> "$L/gen.log" &
  pid=$!
  if wait_for "$L/gen.txt" 1 $pid; then
    truncate -s 4096 "$L/moving.gguf"
    wait $pid
    truncated "generate ($layout weights): the model truncated mid-run" "$L/gen.log" $?
  else
    wait $pid; bad "generate ($layout): no output before it ended: $(tail -c 300 "$L/gen.log")"
  fi
done
rm -f "$L/moving.gguf" "$L/big.gguf"

echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
