#!/usr/bin/env bash
# Training through the CLI: a real fit on stories260K with the shipped
# examples/stories data (validation loss falls, the adapter changes what
# generate says), resume and thread-count determinism byte for byte, PEFT
# output, metrics and plot, clear errors for bad data; and the scene decoder
# commands (decode, mute scenes, bundles, scene explain).
# Usage: test_train_cli.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); S=$(cd "$2" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=$S/models/stories260K/stories260K-f32.gguf
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
cd "$T"

# A real fit.
A="-m $M --data $ROOT/examples/stories/train.jsonl --rank 8 --alpha 16 --lr 3e-3 --steps 60 --batch 4 --ctx 64 --val-fraction 0.2 --eval-every 20 --seed 3 --plain"
$HL train $A --threads 2 -o zork.gguf --peft-out zork_peft 2> train.log
ok '[ -s zork.gguf ]' "train writes the adapter"
first=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open("zork.gguf.metrics.jsonl")]; print(r[0]["eval_loss"])')
last=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open("zork.gguf.metrics.jsonl")]; print([x["eval_loss"] for x in r if x["eval_loss"] is not None][-1])')
echo "validation loss: $first -> $last"
ok "python3 -c 'import sys; sys.exit(0 if float(\"$last\") < 0.5 * float(\"$first\") else 1)'" "validation loss at least halves ($first -> $last)"
ok '[ "$(wc -l < zork.gguf.metrics.jsonl)" -eq 61 ]' "one metrics record per step, plus the step-0 eval"
$HL generate -m $M --lora zork.gguf -p "Once upon a time" -n 30 > gen_lora.txt 2>/dev/null
$HL generate -m $M -p "Once upon a time" -n 30 > gen_base.txt 2>/dev/null
ok 'grep -q "dragon named Zork" gen_lora.txt && ! grep -q "Zork" gen_base.txt' "the adapter changes generate as trained: $(head -c 80 gen_lora.txt)"
ok '$HL generate -m $M --lora zork_peft -p "Once upon a time" -n 30 2>/dev/null | cmp -s - gen_lora.txt' "the PEFT copy generates the same text"
ok '$HL inspect zork_peft > insp.txt && grep -q "zork_peft/adapter_model.safetensors: safetensors" insp.txt && grep -q "hyperlora.base.fingerprint" insp.txt && grep -Eq "layers\.0\.self_attn\.q_proj\.lora_A\.weight +F32 +\[8, 64\]" insp.txt && $HL inspect zork_peft/adapter_model.safetensors | cmp -s - insp.txt' \
  "inspect reads the PEFT files it writes (the directory or its safetensors)"
$HL inspect zork.gguf > inspect.txt 2>&1
ok 'grep -q "rank 8" inspect.txt' "inspect shows the adapter"
ok '$HL plot zork.gguf.metrics.jsonl -o loss.svg 2>/dev/null && grep -q "<polyline" loss.svg' "plot draws the curves"

# Determinism: threads, resume (with dropout), and reruns.
$HL train $A --dropout 0.1 --threads 1 -o t1.gguf 2>/dev/null
$HL train $A --dropout 0.1 --threads 2 -o t2.gguf 2>/dev/null
ok 'cmp -s t1.gguf t2.gguf' "threads 1 and 2 give identical adapter bytes"
$HL train $A --dropout 0.1 --threads 2 --stop-at 25 -o r.gguf 2>/dev/null
ok '[ ! -e r.gguf ] && [ -s r.gguf.ckpt ]' "--stop-at leaves a checkpoint and no adapter"
$HL train $A --dropout 0.1 --threads 1 --resume -o r.gguf 2>/dev/null
ok 'cmp -s t1.gguf r.gguf' "a stopped and resumed run ends with the same bytes"
ok '! $HL train $A --dropout 0.2 --resume -o r.gguf 2>err.txt && grep -q "other settings" err.txt' "resume with other settings is refused"
# The weight layout rounds differently: a resume under the other one is refused, naming both.
# Which layout trains by default depends on the CPU (packed on zen5/avx512, rows on zen4), so the
# other one is read off what the run reports.
$HL train $A --dropout 0.1 --threads 2 --stop-at 2 -o k.gguf > k.log 2>&1
ok 'grep -q "kernels [a-z0-9]*/\(packed\|rows\)" k.log && [ -s k.gguf.ckpt ]' "train names the kernels it runs on"
ran=$(grep -o "kernels [a-z0-9]*/[a-z]*" k.log | head -n 1 | sed 's#.*/##')
other=packed; [ "$ran" = packed ] && other=rows
ok '! HYPERLORA_WEIGHTS=$other $HL train $A --dropout 0.1 --resume -o k.gguf 2>err.txt && grep -q "other settings" err.txt && grep -q "kernels=[a-z0-9]*/$other" err.txt' "resume under HYPERLORA_WEIGHTS=$other is refused and names the kernels"
# --init-from: a run starts from a trained adapter's A and B and computes what it did.
Z0="${A/--lr 3e-3/--lr 0} --steps 1 --threads 2"
$HL train $Z0 --init-from zork.gguf -o z0.gguf > z0.log 2>&1
ok 'grep -q "start from zork.gguf (31 weights; 0 start fresh)" z0.log' "--init-from says what it copied"
ok '[ "$(python3 -c "import json; print(json.loads(open(\"z0.gguf.metrics.jsonl\").readline())[\"eval_loss\"])")" = "$last" ]' "--init-from starts at the adapter's final validation loss ($last)"
$HL train $Z0 --alpha 32 --rslora --init-from zork.gguf -o z1.gguf 2>/dev/null
ok '$HL generate -m $M --lora z0.gguf -p "Once upon a time" -n 30 2>/dev/null | cmp -s - gen_lora.txt && $HL generate -m $M --lora z1.gguf -p "Once upon a time" -n 30 2>/dev/null | cmp -s - gen_lora.txt' "an --init-from adapter not trained further generates what its source did (B rescaled under another --alpha/--rslora)"
$HL train $A --lr 1e-3 --steps 20 --init-from zork.gguf --threads 1 -o c1.gguf 2>/dev/null
$HL train $A --lr 1e-3 --steps 20 --init-from zork.gguf --threads 2 --stop-at 7 -o c2.gguf 2>/dev/null
$HL train $A --lr 1e-3 --steps 20 --init-from zork.gguf --threads 2 --resume -o c2.gguf 2>/dev/null
ok 'cmp -s c1.gguf c2.gguf && ! cmp -s c1.gguf zork.gguf' "continued training: threads 1 and 2, stopped and resumed, give the same bytes"
ok '! $HL train $A --lr 1e-3 --steps 20 --init-from t1.gguf --resume -o c2.gguf 2>err.txt && grep -q "init_from=" err.txt' "resume with another --init-from is refused"
ok '! $HL train $A --rank 4 --init-from zork.gguf -o x.gguf 2>err.txt && grep -q "rank 8 there and 4 here" err.txt' "--init-from at another rank is refused, naming both"
ok '! $HL train $A --targets q,v --init-from zork.gguf -o x.gguf 2>err.txt && grep -q "zork.gguf: it adapts o of layer 0" err.txt' "--init-from that would drop trained weights is refused, naming one"
ok '! $HL train $A --targets "" -o x.gguf 2>err.txt && grep -q -- "--targets is empty" err.txt && [ ! -e x.gguf ]' "an empty --targets is refused, not read as the default"
ok '! $HL train $A --layers "" -o x.gguf 2>err.txt && grep -q -- "--layers is empty" err.txt' "an empty --layers is refused, not read as all layers"
ok '! $HL train $A --layers 3-1 -o x.gguf 2>err.txt && grep -q "the range 3-1 is reversed (write 1-3)" err.txt' "a reversed --layers range is named as reversed"
ok '! $HL train $A --init-from zork.gguf -o zork.gguf 2>err.txt && [ -s zork.gguf ] && grep -q "zork.gguf" err.txt' "--init-from cannot be overwritten by -o"
ok '! $HL train $A --init-from nosuch.gguf -o x.gguf 2>err.txt && grep -q "nosuch.gguf" err.txt && [ ! -e x.gguf ]' "a missing --init-from file is named"
# another base: stories260K's shapes with other weights
$HL init-model --preset s260K --tokenizer $S/models/stories260K/tok512.bin --seed 5 -o other.gguf 2>/dev/null
ok '! $HL train ${A/-m $M/-m other.gguf} --init-from zork.gguf -o x.gguf 2>err.txt && grep -q "another base model" err.txt && grep -q -- "--force" err.txt' "--init-from an adapter of another base is refused"
ok '$HL train ${Z0/-m $M/-m other.gguf} --init-from zork.gguf --force -o xf.gguf 2>/dev/null && [ -s xf.gguf ]' "--force lets --init-from take an adapter of another base"
$HL train $A --targets q,k,v,o,gate,up,down,output --steps 1 --init-from zork.gguf -o z3.gguf > z3.log 2>&1
ok 'grep -q "(31 weights, 5 start fresh)" z3.log' "--init-from with more targets starts the new ones fresh"

# Row modes: docs is the default; stream and none stay, deterministic too; a bad one is refused.
$HL train $A --pack stream --threads 1 -o s1.gguf 2>/dev/null
$HL train $A --pack stream --threads 2 -o s2.gguf 2>/dev/null
ok 'cmp -s s1.gguf s2.gguf && ! cmp -s s1.gguf t1.gguf' "--pack stream: threads 1 and 2 identical, and not the docs adapter"
$HL train $A --pack docs --dropout 0.1 --threads 2 -o d2.gguf 2>/dev/null
ok 'cmp -s d2.gguf t2.gguf' "--pack docs is the default"
ok '! $HL train $A --pack rows -o x.gguf 2>err.txt && grep -q "docs, none or stream" err.txt' "an unknown --pack mode is refused"
ok 'grep -q "rows: docs packing" train.log && grep -q "held out for validation" train.log' "train reports its row mode and the validation hold-out"
# (the help goes to a file first: grep -q stops reading early, and pipefail would count the writer's SIGPIPE)
$HL train --help > train_help.txt; $HL pretrain --help > pretrain_help.txt
ok 'grep -q "stream: examples concatenated" train_help.txt && grep -q "default stream" pretrain_help.txt' "--help describes the row modes"
head -n 1 "$ROOT/examples/stories/train.jsonl" > one.jsonl
ok '$HL train -m $M --data one.jsonl --steps 1 --ctx 32 -o one.gguf --plain 2>err.txt && grep -q "no validation split: --val-fraction 0.1 of 1 examples holds none" err.txt' \
  "one example: the note says the default fraction held none, not that it was 0"
for i in $(seq 30); do printf 'The cat sat on the mat, number %d, and looked at the dog.\n\n' "$i"; done > pc.txt
printf 'hello wor\377ld\n' > pbad.txt
P="pretrain --preset nano --ctx 32 --steps 1 --batch 2 --eval-every 0 --plain"
ok '! $HL $P --corpus pc.txt --corpus pbad.txt --vocab 300 -o p.gguf 2>err.txt && grep -q -- "--corpus pbad.txt: invalid UTF-8 at byte offset 9" err.txt && [ ! -e p.gguf ]' \
  "pretrain names the corpus file with invalid UTF-8 and the offset in it"
ok '$HL $P --corpus pc.txt --vocab 100000 -o p.gguf 2>err.txt && grep -q "the corpus gave [0-9]* tokens, not the 100000 asked for" err.txt' \
  "pretrain says when the corpus gives fewer tokens than --vocab"
ok 'grep -q "init-from ADAPTER" train_help.txt' "--help describes --init-from"

# Bad data: line and field named.
printf '{"text": "fine"}\n{"prompt": 3, "completion": "x"}\n' > bad.jsonl
ok '! $HL train -m $M --data bad.jsonl -o x.gguf 2>err.txt && grep -q "bad.jsonl:2" err.txt && grep -q prompt err.txt' "a bad line is reported with its number and field"
ok '! $HL train -m $M --data $ROOT/examples/stories/train.jsonl --targets q,embd -o x.gguf 2>err.txt && grep -q "never adapted" err.txt' "an embedding target is refused"

# Scene decoder commands on a quickly trained decoder.
L=$ROOT/examples/scenes
$HL train -m $M --lexicon $L/lexicon.jsonl --data $L/train.jsonl --no-pack --ctx 144 --batch 8 --rank 4 --alpha 8 \
  --steps 5 --val-fraction 0 --eval-every 0 --threads 2 -o dec.gguf 2>/dev/null
ok '[ -s dec.gguf ]' "a scene decoder trains"
for i in 1 2 3; do $HL decode -m $M --lora dec.gguf --scene "Δ21" --form text --register poetic -n 20 > d$i.txt 2>/dev/null; done
$HL decode -m $M --lora dec.gguf --scene "Δ21" --form text --register poetic -n 20 --threads 2 > d4.txt 2>/dev/null
ok '[ -s d1.txt ] && cmp -s d1.txt d2.txt && cmp -s d1.txt d3.txt && cmp -s d1.txt d4.txt' "decode is byte-identical across 3 runs and at 2 threads"
python3 -c 'import struct; open("vec.f32","wb").write(struct.pack("<128f", *[0.01*i for i in range(128)]))'
ok '$HL decode -m $M --lora dec.gguf --scene-vector vec.f32 --form symbols --register logical -n 10 > /dev/null 2>&1' "a mute scene (two raw vectors) decodes"
python3 -c 'import struct; open("bad.f32","wb").write(struct.pack("<10f", *range(10)))'
ok '! $HL decode -m $M --lora dec.gguf --scene-vector bad.f32 2>err.txt && grep -q "model dimension" err.txt' "a scene vector of the wrong size is refused"
python3 -c 'import struct; open("nan.f32","wb").write(struct.pack("<64f", *([0.0]*63 + [float("nan")])))'
ok '! $HL decode -m $M --lora dec.gguf --scene-vector nan.f32 2>err.txt && grep -q "not finite" err.txt' "a non-finite scene vector is refused"
printf '{"decoders": [{"form": "*", "register": "*", "adapters": [{"path": "dec.gguf", "scale": 1.0}]}]}' > bundle.json
ok '$HL decode -m $M --bundle bundle.json --scene "Δ21" --form text --register poetic -n 20 2>/dev/null | cmp -s - d1.txt' "a bundle gives the same output as --lora"
mkdir -p bdir && printf '{"decoders": [{"form": "*", "register": "*", "adapters": [{"path": "../dec.gguf"}]}]}' > bdir/b.json
ok '! $HL decode -m $M --lora dec.gguf --bundle bdir/b.json --scene "Δ21" -n 4 > out.txt 2>err.txt && [ ! -s out.txt ] && grep -q "dec.gguf is given with --lora and named by the bundle bdir/b.json (.*dec.gguf): it would apply twice" err.txt' \
  "an adapter given with --lora and by the bundle (another path to the same file) is refused, not applied twice"
ok '$HL scene explain Δ21 -m $M --lora dec.gguf > ex.txt 2>&1 && grep -q "nearest base tokens" ex.txt && [ "$(grep -c "^    " ex.txt)" -eq 15 ]' "scene explain shows neighbours and 15 decodings"
ok '! $HL decode -m $M --lora dec.gguf --scene "Δ21" --form poem 2>err.txt && grep -q "unknown form" err.txt' "an unknown form is refused"
ok '! $HL decode -m $M --scene "Δ21" 2>err.txt && grep -q "no lexicon" err.txt' "decode without a lexicon says so"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
