#!/usr/bin/env python3
"""reader_split.py: what a reader trains with and is judged on, from the
corpus `hyperlora scene synth` wrote, for scripts/demo.sh and scripts/reader.sh.

    reader_split.py SYNTH_DIR OUT_DIR N COMPOSE

writes
  OUT_DIR/reader_lexicon.jsonl  the rule COMPOSE and the training scenes: the
                                lexicon the reader trains with and carries;
  OUT_DIR/later_lexicon.jsonl   the other scenes (held out, or holding unseen
                                words), declared only at decode time;
  OUT_DIR/eval_{train,heldout_scenes,heldout_pairs,unseen_words}.jsonl
      at most N examples each: as many from each (form, register, language)
      group of the split, spread over the group, a scene judged in one group
      only while the group has scenes no other group took, the groups dealt
      in turn. (Every k-th line is not enough: held-out scenes come 15 pairs
      at a time, and one stride can land on one pair only.)"""
import json
import sys

SPLITS = ("train", "heldout_scenes", "heldout_pairs", "unseen_words")


def spread(lines, n):
    groups = {}
    for line in lines:
        e = json.loads(line)
        groups.setdefault((e["form"], e["register"], e.get("lang")), []).append((e["scene"], line))
    if not groups or n <= 0:
        return []
    per, count = -(-n // len(groups)), len(groups)
    used, picked = set(), []
    for j, g in enumerate(groups.values()):
        k = max(1, len(g) // per)
        start = j * k // count  # group j starts j/count of a stride in
        cand = g[start:] + g[:start]
        cand = cand[::k] + [x for i, x in enumerate(cand) if i % k]
        fresh = [x for x in cand if x[0] not in used][:per]
        pick = fresh + [x for x in cand if x[0] in used][: per - len(fresh)]
        used.update(scene for scene, _ in pick)
        picked.append([line for _, line in pick])
    return [g[i] for i in range(per) for g in picked if i < len(g)][:n]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: reader_split.py SYNTH_DIR OUT_DIR N COMPOSE")
    syn, out, n, compose = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    trained = {json.loads(line)["scene"] for line in read_lines(f"{syn}/train.jsonl")}
    with open(f"{out}/reader_lexicon.jsonl", "w", encoding="utf-8") as f, \
         open(f"{out}/later_lexicon.jsonl", "w", encoding="utf-8") as later:
        f.write(json.dumps({"compose": compose}) + "\n")
        for line in read_lines(f"{syn}/lexicon.jsonl"):
            (f if json.loads(line)["lexeme"] in trained else later).write(line)
    for name in SPLITS:
        with open(f"{out}/eval_{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(spread(read_lines(f"{syn}/{name}.jsonl"), n))


if __name__ == "__main__":
    main()
