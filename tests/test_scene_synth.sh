#!/usr/bin/env bash
# `hyperlora scene synth`: seeded and byte-stable, splits that do not leak
# (no held-out scene or unseen word in training), every (form, register)
# pair trained, 2-5 parts, both languages, every part named in order in its
# outputs, and a lexicon the loader takes. The base is a 1-step pretrain on a
# made-up English+Russian corpus: only its tokenizer matters here.
# Usage: test_scene_synth.sh HYPERLORA SHARED
set -uo pipefail
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SHARED=$(cd "${2:-.}" 2>/dev/null && pwd || echo "${2:-}")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
pass=0; fail=0
ok() { if eval "$1"; then pass=$((pass + 1)); echo "ok: $2"; else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

python3 - <<'PY'
import random
random.seed(5)
en = ("river stone light shadow garden window silver mountain forest ocean winter summer candle mirror bridge valley "
      "thunder feather whisper harbor lantern meadow castle orchard desert island planet comet ember glacier canyon "
      "village market temple tower engine signal anchor compass rocket violin painter sailor farmer doctor").split()
ru = ("река камень свет тень сад окно серебро гора лес океан зима лето свеча зеркало мост долина гром перо шёпот "
      "гавань фонарь луг замок пустыня остров планета комета уголь ледник каньон деревня рынок храм башня мотор "
      "сигнал якорь компас ракета скрипка художник моряк фермер доктор").split()
with open("corpus.txt", "w") as f:
    for d in range(400):
        f.write(" ".join(random.choice(en if d % 2 else ru) for _ in range(30)) + "\n\n")
PY
$HL pretrain --corpus corpus.txt --vocab 600 --preset nano --steps 1 --batch 1 -o base.gguf --plain 2>/dev/null
ok '[ -s base.gguf ]' "a base for the tokenizer"
S="-m base.gguf --words 60 --unseen-words 5 --scenes 200 --unseen-scenes 20"
$HL scene synth $S --seed 3 -o a 2> a.log
$HL scene synth $S --seed 3 -o b 2>/dev/null
$HL scene synth $S --seed 4 -o c 2>/dev/null
same=1
for f in lexicon.jsonl train.jsonl heldout_scenes.jsonl heldout_pairs.jsonl unseen_words.jsonl words.json; do
  cmp -s "a/$f" "b/$f" || same=0
done
ok '[ $same = 1 ]' "the same seed gives the same bytes in every file"
ok '! cmp -s a/train.jsonl c/train.jsonl' "another seed gives another corpus"
ok 'grep -q "160 train, 40 held out (en [0-9]*, ru [0-9]*), 20 with unseen words" a.log' "the counts are reported"
ok '! $HL scene synth -m base.gguf --scenes 0 -o nothing 2>/dev/null && [ ! -e nothing ]' \
  "a refused synth leaves no empty directory behind"
# Languages in proportion to their seen words (the default), so that a word of the larger pool is a
# part as often as one of the smaller; --balance scenes: half the scenes each.
$HL scene synth $S --seed 3 --balance scenes -o h 2>/dev/null
ok '! $HL scene synth $S -o x --balance half 2>err.txt && grep -q "expects words or scenes" err.txt' "a bad --balance is refused"
python3 - a h > balance.txt <<'PY'
import json, re, sys
for d in sys.argv[1:]:
    w = json.load(open(d + "/words.json"))
    seen = {l: set(w[l]["seen"]) for l in ("en", "ru")}
    scenes = {"en": 0, "ru": 0}; uses = {"en": 0, "ru": 0}
    for j in map(json.loads, open(d + "/lexicon.jsonl")):
        if set(j["parts"]) - seen["en"] - seen["ru"]: continue  # an unseen-word scene
        l = "ru" if re.search("[а-яё]", j["parts"][0]) else "en"
        scenes[l] += 1; uses[l] += len(j["parts"])
    share = len(seen["en"]) / (len(seen["en"]) + len(seen["ru"]))
    per_word = {l: uses[l] / len(seen[l]) for l in uses}
    print(d, len(seen["en"]), len(seen["ru"]), scenes["en"], scenes["ru"], round(share * 200, 2),
          round(per_word["en"] / per_word["ru"], 3), w["counts"]["en_scenes"], w["counts"]["ru_scenes"])
PY
cat balance.txt
ok 'awk "\$1 == \"a\" { exit !(\$2 != \$3 && \$4 + 0 >= \$6 - 1 && \$4 + 0 <= \$6 + 1 && \$7 > 0.85 && \$7 < 1.15 && \$4 == \$8 && \$5 == \$9) }" balance.txt' \
   "unequal pools: each language's share of the scenes is its share of the seen words, so a word is a part about equally often"
ok 'awk "\$1 == \"h\" { exit !(\$4 == 100 && \$5 == 100) }" balance.txt' "--balance scenes: half the scenes in each language"
python3 - a > check.txt <<'PY'
import json, re, sys
d = sys.argv[1]
lex = {j["lexeme"]: j for j in map(json.loads, open(d + "/lexicon.jsonl"))}
words = json.load(open(d + "/words.json"))
unseen = set(words["en"]["unseen"]) | set(words["ru"]["unseen"])
def load(name): return [json.loads(l) for l in open(d + "/" + name)]
train, hs, hp, uw = load("train.jsonl"), load("heldout_scenes.jsonl"), load("heldout_pairs.jsonl"), load("unseen_words.jsonl")
problems = []
train_scenes = {e["scene"] for e in train}
train_parts = {tuple(lex[s]["parts"]) for s in train_scenes}
for s in train_scenes:
    if unseen & set(lex[s]["parts"]): problems.append("unseen word in training scene " + s)
for e in hs:
    if e["scene"] in train_scenes: problems.append("held-out scene in training: " + e["scene"])
    if tuple(lex[e["scene"]]["parts"]) in train_parts: problems.append("held-out parts equal a training scene's")
for e in uw:
    if e["scene"] in train_scenes or not (unseen & set(lex[e["scene"]]["parts"])): problems.append("bad unseen scene " + e["scene"])
trained = {(e["scene"], e["form"], e["register"]) for e in train}
for e in hp:
    if (e["scene"], e["form"], e["register"]) in trained: problems.append("held-out pair trained: " + e["scene"])
pairs = {(e["form"], e["register"]) for e in train}
if len(pairs) != 15: problems.append("%d pairs trained" % len(pairs))
if {len(lex[s]["parts"]) for s in lex} != {2, 3, 4, 5}: problems.append("part counts %s" % sorted({len(lex[s]["parts"]) for s in lex}))
if {e["lang"] for e in train} != {"en", "ru"}: problems.append("languages")
for e in train + hs + hp + uw:
    parts, out = lex[e["scene"]]["parts"], e["output"]
    toks = re.findall(r"\w+", out)
    pos = [toks.index(p) if p in toks else -1 for p in parts]
    if -1 in pos: problems.append("part missing in " + json.dumps(e, ensure_ascii=False)); continue
    if pos != sorted(pos): problems.append("parts out of order in " + json.dumps(e, ensure_ascii=False))
    if e["form"] == "symbols" and out.split(" ")[0] != parts[0]: problems.append("symbols open with no part: " + out)
# the glyph (one per archetype) follows the parts
glyph_of = {}
for e in train + hs + hp + uw:
    if e["form"] == "symbols":
        g = e["output"].split(" ")[len(lex[e["scene"]]["parts"]) * 2 - 1]
        if glyph_of.setdefault(lex[e["scene"]]["facets"]["archetype"], g) != g or re.match(r"\w", g):
            problems.append("glyph not after the parts, or not one per archetype: " + e["output"])
if len(set(glyph_of.values())) != 8: problems.append("glyphs %s" % glyph_of)
# a base spells glyphs byte by byte: two glyphs that open alike differ only late, and readers swap them
if len({g.encode()[:2] for g in glyph_of.values()}) != len(glyph_of): problems.append("glyphs share their first two bytes: %s" % glyph_of)
print("problems:", len(problems))
for p in problems[:10]: print(p)
PY
cat check.txt
ok 'grep -q "^problems: 0$" check.txt' "no leaks; 15 pairs; 2-5 parts; both languages; parts named in the scene's order in every form, a symbols line opening with its first part and putting its archetype's glyph after the parts"
ok '$HL scene explain Σ0000 -m base.gguf --lexicon a/lexicon.jsonl > explain.txt 2>&1 && grep -q "parts:" explain.txt' "the lexicon loads"
ok '! $HL scene synth -m base.gguf -o d --words 60 --unseen-words 70 2>err.txt && grep -q "out of range" err.txt' "bad parameters are refused"
# A part stays its own piece when a template writes a mark after it. A base whose corpus puts commas
# and full stops after English words learns merges such as "e," that would spell "same," as
# "▁s am e,"; such words are not drawn (here 17 of the 26 English words the pool took before).
python3 - <<'PY'
import random
random.seed(6)
en = ("same some time life one has river stone light shadow garden window silver mountain forest ocean "
      "winter summer candle mirror bridge valley thunder feather whisper harbor lantern meadow castle").split()
ru = "река камень свет тень сад окно серебро гора лес океан зима лето свеча зеркало мост долина".split()
with open("commas.txt", "w") as f:
    for d in range(400):
        f.write(" ".join(random.choice(en) + random.choice(["", "", ",", "."]) if d % 2 else random.choice(ru)
                         for _ in range(30)) + "\n\n")
PY
$HL pretrain --corpus commas.txt --vocab 500 --preset nano --steps 1 --batch 1 -o commas.gguf --plain 2>/dev/null
$HL scene synth -m commas.gguf -o m --seed 1 --scenes 100 --words 40 --unseen-words 2 > m.txt 2>&1
# each drawn word, then the word with each mark: the first id must not change
split_words() {
  python3 -c 'import json; d = json.load(open("m/words.json")); [print(w) for l in ("en", "ru") for k in ("seen", "unseen") for w in d[l][k]]' \
    > m_words.txt || return 1
  [ "$(wc -l < m_words.txt)" -ge 10 ] || return 1
  local w one first mark bad=0
  while read -r w; do
    one=$($HL tokenize -m commas.gguf -p "$w" --ids --no-bos 2>/dev/null)
    for mark in , . ";" :; do
      first=$($HL tokenize -m commas.gguf -p "$w$mark" --ids --no-bos 2>/dev/null | tr -d "[]" | cut -d, -f1)
      [ "$one" = "[$first]" ] || bad=$((bad + 1))
    done
  done < m_words.txt
  echo "words split before a mark: $bad"
  [ $bad -eq 0 ]
}
ok 'split_words' "every drawn word is still its own piece before , . ; and : (a base that merges \"e,\")"
# A byte-level BPE base (Qwen's vocabulary): the words are " word" pieces ("Ġword"), each one token
# when encoded after a space, as a part is composed; the lexicon loads on that base.
QWEN=$SHARED/oracle/llamacpp/arch/qwen2_tiny.gguf
if [ -f "$QWEN" ]; then
  ok '$HL scene synth -m "$QWEN" -o q --seed 1 --scenes 200 --words 60 --unseen-words 5 > q.txt 2>&1 && grep -q "words en 60 (5 unseen), ru 60 (5 unseen)" q.txt' \
     "byte-level BPE base: 60 one-token words per language"
  ok 'for w in $(python3 -c "import json; d = json.load(open(\"q/words.json\")); print(\" \".join(d[\"en\"][\"seen\"][:5]))"); do
        [ "$($HL tokenize -m "$QWEN" -p " $w" --ids --no-bos 2>/dev/null | wc -w)" -eq 1 ] || exit 1; done' \
     "byte-level BPE base: each word is one token after a space"
  ok '$HL scene explain Σ0000 -m "$QWEN" --lexicon q/lexicon.jsonl > qe.txt 2>&1 && grep -q "parts:" qe.txt' \
     "byte-level BPE base: the lexicon loads"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
