#!/usr/bin/env python3
"""Summarise a bench/run.sh results file (JSON lines) as Markdown tables.

usage: report.py RESULTS.jsonl [MORE.jsonl ...]

Only the Python standard library is used. Every number printed comes from
the files, and every comparison with a peer (the PyTorch trainer, llama.cpp)
is with that peer's records from the same run. bench/reports/ keeps one
results file per machine class measured."""
import json
import statistics
import sys



def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def fmt(x, nd=1):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def rng(v, nd=1):
    return f"{fmt(min(v), nd)}–{fmt(max(v), nd)}" if len(v) > 1 else fmt(v[0], nd)


def prefer_clean(recs):
    """The clean attempts of a measurement, or all of them (flagged) when none was clean."""
    clean = [r for r in recs if r.get("clean", True)]
    return (clean, "") if clean or not recs else (recs, " †")


def main(paths):
    rows = load(paths)
    disturbed = False
    meta = [r for r in rows if r.get("bench") == "meta"]
    out = []
    p = out.append
    if meta:
        m = meta[-1]
        p(f"Run {m['stamp']} on {m['cpu']} ({m['ncpu']} CPUs), kernel {m['kernel']}, commit {m['commit']}"
          f" (+{m['dirty_files']} modified tracked files); {'full' if m['full'] else 'quick'} mode, "
          f"{m['runs']} inference runs, {m['rounds']} training round(s) of {m['steps']} timed steps.")
        p("")
    mach = [r for r in rows if r.get("bench") == "machine"]
    if mach:
        m = mach[-1]
        c, w = m["cpu"], m["weights"]
        p(f"Machine: {c['vendor']} family {c['family']:#x} model {c['model']:#x} ({c['uarch']}, \"{c['brand']}\"); "
          f"kernels at {m['level']} ({', '.join(m['levels_available'])} available); {m['blas']}; "
          f"weights: inference {w['inference']}, LoRA training {w['training']}"
          f"{' (pinned by HYPERLORA_WEIGHTS)' if w.get('pinned_by') else ''}. Basis: {w['basis']}.")
        p("")

    # ------------------------------------------------------------ sgemm
    sg = [r for r in rows if r.get("bench") == "sgemm"]
    peak = None
    if sg:
        p("### Matrix-multiply reference (2 threads)")
        p("")
        p("| M×K×N | kernel | library | GFLOP/s |")
        p("|---|---|---|---|")
        for r in sg:
            lib = "hyperlora"
            if r["kernel"].startswith("openblas"):
                b = r.get("blas", "")
                lib = "OpenBLAS " + ("openmp" if "openmp" in b else "pthread" if "pthread" in b else b.split(" ")[0])
            p(f"| {r['M']}×{r['K']}×{r['N']} | {r['kernel']} | {lib} | {fmt(r['gflops'])} |")
            if r["kernel"].startswith("openblas") and r["M"] == 2048:
                peak = max(peak or 0, r["gflops"])
        p("")
    bw = [r for r in rows if r.get("bench") == "read_bandwidth"]
    if bw:
        p("Read bandwidth (sum over 1 GiB): " + ", ".join(
            f"{r['threads']} thread(s) x {r.get('streams', 1)} stream(s) {fmt(r['GBps'])} GB/s" for r in bw))
        p("")

    # ------------------------------------------------------------ inference
    inf = [r for r in rows if r.get("bench") == "infer"]
    if inf:
        p("### Inference: prompt processing and decode (tokens/s, median of runs, min–max)")
        p("")
        p("| model | weights | threads | pp128 (last logits) | pp128 (all logits) | tg64 | tg64 weight stream GB/s | "
          "of the read bandwidth measured beside each run |")
        p("|---|---|---|---|---|---|---|---|")
        models = []
        for r in inf:
            if r["model"] not in models:
                models.append(r["model"])
        for mname in models:
            for wl in sorted({r.get("weights", "rows") for r in inf if r["model"] == mname and r["section"] == "speed"}):
                sp = [r for r in inf if r["model"] == mname and r["section"] == "speed" and r.get("weights", "rows") == wl]
                for th in sorted({r["threads"] for r in sp}):
                    pp, f1 = prefer_clean([r for r in sp if r["threads"] == th and r["test"].startswith("pp")
                                           and r["variant"] == "base"])
                    pa, f3 = prefer_clean([r for r in sp if r["threads"] == th and r["test"].startswith("pp")
                                           and r["variant"] == "all logits"])
                    tg, f2 = prefer_clean([r for r in sp if r["threads"] == th and r["test"].startswith("tg")])
                    disturbed |= bool(f1 or f2)
                    def gfl(r):
                        return f"; {fmt(r['gflops'])} GFLOP/s" if r.get("gflops") else ""
                    pps = f"{fmt(pp[-1]['tok_s'])} ({rng(pp[-1]['run_tok_s'])}{gfl(pp[-1])}){f1}" if pp else "-"
                    tgs = f"{fmt(tg[-1]['tok_s'])} ({rng(tg[-1]['run_tok_s'])}){f2}" if tg else "-"
                    pas = f"{fmt(pa[-1]['tok_s'])} ({rng(pa[-1]['run_tok_s'])}{gfl(pa[-1])}){f3}" if pa else "-"
                    gb = fmt(tg[-1]["weight_GBps"]) if tg else "-"
                    sf = tg[-1].get("stream_fraction") if tg else None
                    fr = f"{100 * sf:.0f}% of {fmt(tg[-1]['read_GBps_adjacent'])} GB/s" if sf else "-"
                    p(f"| {mname} | {wl} | {th} | {pps} | {pas} | {tgs} | {gb} | {fr} |")
        p("")
        ad = [r for r in inf if r["section"] == "adapter"]
        if ad:
            p("### Decode with LoRA adapters (rank 16 on q,v,o,gate,up,down; tg64 tokens/s, 2 threads)")
            p("")
            p("| model | variant | tg64 tok/s (min–max) | time per token vs no adapter |")
            p("|---|---|---|---|")
            seen = []
            for r in ad:
                if (r["model"], r["variant"]) not in seen:
                    seen.append((r["model"], r["variant"]))
            for mname, variant in seen:
                recs, flag = prefer_clean([r for r in ad if r["model"] == mname and r["variant"] == variant])
                disturbed |= bool(flag)
                r = recs[-1]
                ov = r.get("decode_overhead")
                p(f"| {r['model']} | {r['variant']} | {fmt(r['tok_s'])} ({rng(r['run_tok_s'])}){flag} | "
                  f"{'-' if ov is None or r['variant'] == 'no adapter' else f'{100 * ov:+.1f}%'} |")
            p("")

    # ------------------------------------------------------------ training
    tr = [r for r in rows if r.get("bench") == "train"]
    if tr:
        p("### LoRA training (r 8, alpha 16, q,v,o,gate,up,down, fp32, 2 threads; tokens/s)")
        p("")
        p("| shape | ours tok/s: median of rounds (min–max) | PyTorch peer tok/s | ours / peer | "
          "ours GFLOP/s (% of sgemm peak) | peer GFLOP/s | peak RSS ours / peer MiB | rounds |")
        p("|---|---|---|---|---|---|---|---|")
        keys = []
        for r in tr:
            k = (r["model"], r["batch"])
            if k not in keys:
                keys.append(k)
        for k in keys:
            ours, fo = prefer_clean([r for r in tr if (r["model"], r["batch"]) == k and r["impl"] == "hyperlora"])
            peer, fp = prefer_clean([r for r in tr if (r["model"], r["batch"]) == k and r["impl"] == "pytorch"])
            disturbed |= bool(fo or fp)
            o_t = [r["tokens_per_s"] for r in ours]
            p_t = [r["tokens_per_s"] for r in peer]
            om = statistics.median(o_t) if o_t else None
            pm = statistics.median(p_t) if p_t else None
            mflop = ours[0]["mflop_per_token"] if ours else None
            og = om * mflop / 1e3 if om and mflop else None
            pg = pm * mflop / 1e3 if pm and mflop else None
            ratio = f"{om / pm:.2f}×" if om and pm else "-"
            pct = f" ({100 * og / peak:.0f}%)" if og and peak else ""
            orss = max(r["peak_rss_MiB"] for r in ours) if ours else None
            prss = max(r["peak_rss_MiB"] for r in peer) if peer else None
            p(f"| {k[0]} {k[1]}×256 | {fmt(om)} ({rng(o_t)}){fo} | "
              f"{(fmt(pm) + ' (' + rng(p_t) + ')' + fp) if p_t else '-'} | {ratio} | {fmt(og)}{pct} | {fmt(pg)} | "
              f"{fmt(orss, 0)} / {fmt(prss, 0)} | {len(o_t)} / {len(p_t)} |")
        p("")
        p("Per-round detail (ours: fwd+bwd / AdamW / forward-only seconds; peer: fwd / bwd / AdamW seconds; "
          "'other' = CPU cores used by other processes during the timed steps, max):")
        p("")
        p("| shape | round | impl | attempt | tok/s | median step s | split | peak RSS MiB | other | clean |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        for k in keys:
            for r in sorted([r for r in tr if (r["model"], r["batch"]) == k],
                            key=lambda r: (r.get("round", 0), r["impl"], r.get("attempt", 1))):
                if r["impl"] == "hyperlora":
                    split = f"{r['median_fwd_bwd_s']:.3f} / {r['median_adamw_s']:.4f} / {fmt(r.get('forward_only_s'), 3)}"
                else:
                    split = f"{r['median_forward_s']:.3f} / {r['median_backward_s']:.3f} / {r['median_optimizer_s']:.4f}"
                p(f"| {k[0]} {k[1]}×256 | {r.get('round', '-')} | {r['impl']} | {r.get('attempt', 1)} | "
                  f"{fmt(r['tokens_per_s'])} | {r['median_step_s']:.3f} | {split} | {fmt(r['peak_rss_MiB'], 0)} | "
                  f"{fmt(r.get('other_cores_max'), 2)} | {'yes' if r.get('clean', True) else 'no'} |")
        p("")
    # ------------------------------------------------------------ llama.cpp, same run
    lc = llamacpp_rows(rows)
    if lc:
        p("### Against llama.cpp in the same run (llama-bench and bench_infer alternating; tokens/s, median (min–max))")
        p("")
        p("| model | type | pp128 ours | pp128 llama.cpp | ratio | tg64 ours | tg64 llama.cpp | ratio | "
          "read GB/s beside our tg64 | ours of read | llama.cpp of read |")
        p("|---|---|---|---|---|---|---|---|---|---|---|")
        order = []
        for r in lc:
            if r["test"] != "train1x256" and (r["preset"], r["type"]) not in order:
                order.append((r["preset"], r["type"]))
        for pr, ty in order:
            cells = [pr, ty]
            for test in ("pp128", "tg64"):
                o = [r["tok_s"] for r in lc if r["who"] == "ours" and (r["preset"], r["type"], r["test"]) == (pr, ty, test)]
                l = [r["tok_s"] for r in lc if r["who"] == "llama.cpp" and (r["preset"], r["type"], r["test"]) == (pr, ty, test)]
                om = statistics.median(o) if o else None
                lm = statistics.median(l) if l else None
                cells += [f"{fmt(om)} ({rng(o)})" if o else "-", f"{fmt(lm)} ({rng(l)})" if l else "-",
                          f"**{om / lm:.2f}**" if om and lm else "-"]
            cells += read_shares([r for r in lc if (r["preset"], r["type"], r["test"]) == (pr, ty, "tg64")])
            p("| " + " | ".join(cells) + " |")
        p("")
        tr = [r for r in lc if r["test"] == "train1x256"]
        if tr:
            f32 = [r["peak_rss_mib"] for r in tr if r["type"] == "f32"]
            p("| LoRA training base | tok/s median (min–max) | peak RSS MiB | RSS vs f32 |")
            p("|---|---|---|---|")
            for ty in ("f32", "q4_K_M"):
                xs = [r for r in tr if r["type"] == ty]
                if not xs:
                    continue
                t = [r["tok_s"] for r in xs if r.get("tok_s")]
                rss = statistics.median(r["peak_rss_mib"] for r in xs)
                rel = f"{rss / statistics.median(f32):.3f}" if f32 else "-"
                p(f"| {xs[0]['preset']} {ty} | {fmt(statistics.median(t)) if t else '-'} ({rng(t) if t else '-'}) | "
                  f"{fmt(rss, 0)} | {rel} |")
            p("")
    if disturbed:
        p("† no clean attempt: other processes used more than the allowed CPU during every attempt of this measurement.")
    print("\n".join(out))


def read_shares(tg):
    """A model's decode against the read bandwidth sampled beside our run of
    each round: the sample's median, and the medians over rounds of each
    side's weight stream (tok/s x weight bytes per token) as a share of its
    round's sample, as bench/llamacpp.sh prints them."""
    ours = [r for r in tg if r["who"] == "ours" and r.get("read_GBps")]
    if not ours or not ours[0].get("weight_bytes_per_token"):
        return ["-", "-", "-"]
    wb = ours[0]["weight_bytes_per_token"]
    bw = {r["round"]: r["read_GBps"] for r in ours}
    share_o = [r["tok_s"] * wb / 1e9 / r["read_GBps"] for r in ours]
    share_l = [r["tok_s"] * wb / 1e9 / bw[r["round"]] for r in tg if r["who"] == "llama.cpp" and r.get("round") in bw]
    rd = [r["read_GBps"] for r in ours]
    return [f"{fmt(statistics.median(rd))} ({rng(rd)})", f"{100 * statistics.median(share_o):.0f}%",
            f"{100 * statistics.median(share_l):.0f}%" if share_l else "-"]


def llamacpp_rows(rows):
    """The llama.cpp comparison's rows. Before 2026-12-06 llamacpp.sh kept both of
    bench_infer's pp128 variants, unlabelled and in this order per round: "base"
    (the LM head on the last token, as llama-bench's pp128) and "all logits" (on
    every token). Of unlabelled ours rows only the first per round and test is
    kept, so that old reports give the like-for-like figure too. bench/run.sh
    tags these rows "bench": "llamacpp"; a file written by bench/llamacpp.sh
    run alone has no tag, and its rows are known by "who"."""
    out, seen = [], set()
    for r in rows:
        if r.get("bench", "llamacpp" if r.get("who") in ("ours", "llama.cpp") else None) != "llamacpp":
            continue
        if r.get("who") == "ours" and r.get("test") != "train1x256":
            if r.get("variant", "base") != "base":
                continue
            key = (r["preset"], r["type"], r.get("round"), r["test"])
            if "variant" not in r and key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1:])
