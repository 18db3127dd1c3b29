#!/usr/bin/env python3
"""readout_ceiling.py: how much of a composed scene row a perfect linear
reader could name, per composition rule, on a base's own embeddings.

A decoder reads a scene from one frozen row. Before training anything, this
asks what the row still holds: it composes random scenes from the word pool
of `hyperlora scene synth` (DIR/words.json) with the base's input embeddings
(each word unit-normed), and reads them back with the best simple readout
each rule allows:

  slots   undo slot k's signed permutation, take the nearest pool word;
  parts   the n pool words scoring highest against the mean (a bag: no order);
  decay   peel: name the strongest pool word, subtract it at its weight,
          repeat n times (weights 0.6^k), and score the order as well.

With --facets, four facet values (the English words of scene synth's facet
pools, each the mean of its tokens' rows) join the slots and decay rows
under their own signed permutations at the weight given, as slots+facets
and decay+facets compose them, and the readout of each facet (the nearest of its key's eight values
after undoing the key's permutation) is scored too.

With --facet-words W ..., the four facet values join a decay row as the
words they are, unturned, at weight W (what decay+facet-words composes),
and each facet is read as the nearest of its key's eight values twice:
from the whole row, as a reader must that writes the facet before any
part, and from the row with the scene's parts taken off, as one that
writes it after the parts.

The permutations here are drawn by Python's RNG, not the engine's, so the
figures are those of the rule's kind, not of its exact bits. A trained
decoder can only come near these figures, never above them: they say which
rule and base width leave a scene readable at all.

usage: readout_ceiling.py BASE.gguf SYNTH_DIR [--hyperlora BIN] [--scenes N]
                          [--facets W ...] [--facet-words W ...] [--seed S]
Pure Python (no numpy); a 64-wide base and 250 words take a few seconds.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_read  # noqa: E402

FACETS = {
    "archetype": ["threshold", "passage", "storm", "garden", "mirror", "tower", "river", "road"],
    "action": ["enter", "flee", "wait", "search", "rise", "fall", "hide", "return"],
    "field": ["home", "mind", "city", "sea", "forest", "sky", "body", "night"],
    "tone": ["fear", "hope", "calm", "joy", "grief", "awe", "anger", "longing"],
}
DECAY = 0.6


def gguf_tables(path):
    """The tokens and the f32 token_embd rows of a GGUF file (exits naming the file if it is malformed)."""
    data, kv, tensors = gguf_read.read(path)
    if "token_embd.weight" not in tensors:
        sys.exit(f"{path}: no token_embd.weight")
    C, V = tensors["token_embd.weight"][0][:2]
    rows = gguf_read.f32(path, data, tensors, "token_embd.weight")
    return kv.get("tokenizer.ggml.tokens", []), [rows[i * C:(i + 1) * C] for i in range(V)]


def unit(v):
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def signed_permutation(rng, C):
    p = list(range(C))
    rng.shuffle(p)
    return p, [rng.choice((-1.0, 1.0)) for _ in range(C)]


def apply(code, v, w, acc):
    p, s = code
    for d in range(len(v)):
        acc[p[d]] += w * s[d] * v[d]


def undo(code, v):
    p, s = code
    return [s[d] * v[p[d]] for d in range(len(v))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("synth_dir")
    ap.add_argument("--hyperlora", default="build/hyperlora", help="for tokenizing the facet words")
    ap.add_argument("--scenes", type=int, default=200, help="scenes per part count")
    ap.add_argument("--facets", type=float, nargs="*", default=[], help="facet weights to try")
    ap.add_argument("--facet-words", type=float, nargs="*", default=[],
                    help="decay+facet-words weights: facets read before and after the parts")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    tokens, E = gguf_tables(a.base)
    C = len(E[0])
    index = {t: i for i, t in enumerate(tokens)}
    words = json.load(open(f"{a.synth_dir}/words.json", encoding="utf-8"))
    pool = [w for lang in ("en", "ru") for w in words[lang]["seen"]]
    rows = [unit(E[index[t]]) for t in (("\u2581" + w) for w in pool) if t in index]
    if len(rows) < 10:
        sys.exit(f"{a.base}: fewer than 10 of the pool's words are one SentencePiece token here")
    facet_rows = {}
    if a.facets or a.facet_words:
        for key, values in FACETS.items():
            facet_rows[key] = []
            for v in values:
                out = subprocess.run([a.hyperlora, "tokenize", "-m", a.base, "-p", v, "--ids", "--no-bos"],
                                     capture_output=True, text=True, check=True).stdout
                ids = json.loads(out)
                facet_rows[key].append(unit([sum(E[i][d] for i in ids) / len(ids) for d in range(C)]))
    rng = random.Random(a.seed)
    slot_codes = [signed_permutation(rng, C) for _ in range(5)]
    slot_codes[0] = (list(range(C)), [1.0] * C)
    facet_codes = {k: signed_permutation(rng, C) for k in FACETS}
    print(f"{a.base}: width {C}, {len(rows)} pool words, {a.scenes} scenes per part count")

    for fw in [0.0] + a.facets:
        for n in (2, 3, 4, 5):
            hit = {"slots": 0, "parts": 0, "decay": 0}
            order_ok = facet_ok = facet_n = 0
            for _ in range(a.scenes):
                parts = rng.sample(range(len(rows)), n)
                chosen = {k: rng.randrange(8) for k in facet_rows} if fw else {}
                # slots
                acc = [0.0] * C
                for k, p in enumerate(parts):
                    apply(slot_codes[k], rows[p], 1.0, acc)
                for k, j in chosen.items():
                    apply(facet_codes[k], facet_rows[k][j], fw, acc)
                for k, p in enumerate(parts):
                    r = undo(slot_codes[k], acc)
                    hit["slots"] += max(range(len(rows)), key=lambda j: dot(rows[j], r)) == p
                # parts: the mean, without facets (parts+facets adds them unturned, in the bag)
                acc = [0.0] * C
                for p in parts:
                    apply(slot_codes[0], rows[p], 1.0, acc)
                top = sorted(range(len(rows)), key=lambda j: -dot(rows[j], acc))[:n]
                hit["parts"] += len(set(top) & set(parts))
                # decay: peel the strongest, in order
                acc = [0.0] * C
                for k, p in enumerate(parts):
                    apply(slot_codes[0], rows[p], DECAY ** k, acc)
                for k, j in chosen.items():
                    apply(facet_codes[k], facet_rows[k][j], fw, acc)
                for k, j in chosen.items():
                    r = undo(facet_codes[k], acc)
                    facet_ok += max(range(8), key=lambda i: dot(facet_rows[k][i], r)) == j
                    facet_n += 1
                named = []
                for k in range(n):
                    best = max((j for j in range(len(rows)) if j not in named), key=lambda j: dot(rows[j], acc))
                    named.append(best)
                    acc = [x - DECAY ** k * y for x, y in zip(acc, rows[best])]
                hit["decay"] += sum(x == y for x, y in zip(named, parts))
                order_ok += named == parts
            total = a.scenes * n
            line = (f"  facets {fw:<4} n={n}:  slots {hit['slots'] / total:.3f}   parts (bag) {hit['parts'] / total:.3f}"
                    f"   decay {hit['decay'] / total:.3f} (whole order {order_ok / a.scenes:.3f})")
            if fw:
                line += f"   facets read under decay {facet_ok / facet_n:.3f}"
            print(line)

    for fw in a.facet_words:
        before = {k: 0 for k in FACETS}
        after = {k: 0 for k in FACETS}
        for _ in range(a.scenes):
            n = rng.randint(2, 5)
            parts = rng.sample(range(len(rows)), n)
            chosen = {k: rng.randrange(8) for k in FACETS}
            facets_only = [0.0] * C
            for k, j in chosen.items():
                apply(slot_codes[0], facet_rows[k][j], fw, facets_only)
            whole = facets_only[:]
            for k, p in enumerate(parts):
                apply(slot_codes[0], rows[p], DECAY ** k, whole)
            for k, j in chosen.items():
                before[k] += max(range(8), key=lambda i: dot(facet_rows[k][i], whole)) == j
                after[k] += max(range(8), key=lambda i: dot(facet_rows[k][i], facets_only)) == j
        fmt = lambda d: "  ".join(f"{k} {v / a.scenes:.3f}" for k, v in d.items())
        print(f"  facet words {fw:<4} (2-5 parts):  read before the parts: {fmt(before)}")
        print(f"  {'':<22}         read after the parts:  {fmt(after)}")


if __name__ == "__main__":
    main()
