#!/usr/bin/env python3
"""word_rows_fit.py: how well a decoder's trained output-adapter rows follow
from the words' frozen head rows, the premise of composed word rows
(src/hyperlexeme/word_rows.h).

For a decoder adapter with an output-projection LoRA, the rows of B (Vb, r)
of the words it was trained to name (the seen words of a `scene synth`
corpus, DIR/words.json) are regressed on f(e) = [e, e/|e|, 1, |e|], e the
word's head row, by ridge regression with lambda = L * trace(F F^T) / (2C+2)
(the engine's L is 0.01). Prints the rows' mean norms (trained words,
unseen words, every other token) and the 5-fold cross-validated R^2 of the
fit for several L: how much of a held-out trained word's row the map
predicts from its head row alone.

usage: word_rows_fit.py BASE.gguf DECODER.gguf SYNTH_DIR
Needs numpy (Debian: python3-numpy).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_read  # noqa: E402


def gguf_f32(path, names):
    """The named f32 tensors of a GGUF file as arrays, and its tokens."""
    data, kv, tensors = gguf_read.read(path)
    out = {}
    for name in names:
        if name not in tensors:
            sys.exit(f"{path}: no tensor {name}")
        dims = tensors[name][0]
        out[name] = np.array(gguf_read.f32(path, data, tensors, name), dtype=np.float64).reshape(dims[::-1])
    return out, kv.get("tokenizer.ggml.tokens", [])


def features(E):
    n = np.linalg.norm(E, axis=1, keepdims=True)
    return np.hstack([E, E / np.where(n > 0, n, 1), np.ones_like(n), n])


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().split("\n\n")[-1])
    base_path, dec_path, synth = sys.argv[1:]
    base, tokens = gguf_f32(base_path, ["token_embd.weight"])
    head_name = "token_embd.weight"
    try:  # an untied base: its own head rows
        base, tokens = gguf_f32(base_path, ["token_embd.weight", "output.weight"])
        head_name = "output.weight"
    except SystemExit:
        pass
    E = base[head_name]
    B = gguf_f32(dec_path, ["output.weight.lora_b"])[0]["output.weight.lora_b"]
    index = {t: i for i, t in enumerate(tokens)}
    words = json.load(open(f"{synth}/words.json", encoding="utf-8"))

    def ids(kind):
        out = []
        for lang in ("en", "ru"):
            for w in words[lang][kind]:
                for t in ("\u2581" + w, "\u0120" + w):  # SentencePiece, byte-level BPE
                    if t in index:
                        out.append(index[t])
                        break
        return np.array(out, dtype=int)

    seen, unseen = ids("seen"), ids("unseen")
    other = np.setdiff1d(np.arange(B.shape[0]), np.concatenate([seen, unseen]))
    norm = np.linalg.norm(B, axis=1)
    print(f"{dec_path}: rank {B.shape[1]}, {len(seen)} trained words, {len(unseen)} unseen")
    print(f"mean |B row|: trained words {norm[seen].mean():.3f}, unseen words {norm[unseen].mean():.3f}, "
          f"other tokens {norm[other].mean():.3f}")
    folds = np.array_split(np.random.default_rng(0).permutation(seen), 5)
    P = 2 * E.shape[1] + 2
    for L in (0.001, 0.003, 0.01, 0.03, 0.1):
        r2 = []
        for f in folds:
            tr = np.setdiff1d(seen, f)
            X = features(E[tr])
            lam = L * np.trace(X @ X.T) / P
            W = np.linalg.solve(X.T @ X + lam * np.eye(P), X.T @ B[tr])
            pred = features(E[f]) @ W
            r2.append(1 - ((pred - B[f]) ** 2).sum() / ((B[f] - B[tr].mean(0)) ** 2).sum())
        print(f"lambda {L:<6} 5-fold cross-validated R^2 {np.mean(r2):.3f}")


if __name__ == "__main__":
    main()
