#!/usr/bin/env python3
"""JSON-lines plumbing for bench/run.sh (standard library only).

  jsonl.py meta KEY=VALUE...                 one "meta" record (counts as numbers, the rest as strings)
  jsonl.py peer ROUND < bench.py-output      the PyTorch peer's record, reshaped; a summary line on stderr
  jsonl.py tag FILE KEY=VALUE...             FILE's records with extra fields (values parsed as JSON)
  jsonl.py worst FILE FIELD                  the largest FIELD over FILE's records (missing/null = 0)
  jsonl.py median FILE FIELD|inv:FIELD K=V...  median FIELD (or 1/FIELD) over the clean records matching
                                              every K=V (V parsed as JSON; K^=V: string prefix), or 0
"""
import json
import statistics
import sys


NUMERIC_META = {"ncpu", "full", "peer", "runs", "rounds", "steps", "dirty_files"}


def parse(v):
    try:
        return json.loads(v)
    except ValueError:
        return v


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def kv(args):
    return [(a.split("=", 1)[0], parse(a.split("=", 1)[1])) for a in args]


def main(argv):
    cmd = argv[1]
    if cmd == "meta":
        rec = {"bench": "meta"}
        for a in argv[2:]:
            k, v = a.split("=", 1)
            rec[k] = parse(v) if k in NUMERIC_META else v
        print(json.dumps(rec))
    elif cmd == "peer":
        r = json.loads(sys.stdin.read().strip().splitlines()[-1])
        other = r.get("other_procs_cpu_cores_during_steps") or [0]
        out = {"bench": "train", "impl": "pytorch", "round": int(argv[2]), "model": r["shape"], "batch": r["batch"],
               "seq": r["seq"], "threads": r["threads"], "tokens_per_s": r["tokens_per_s"],
               "median_step_s": r["median_step_s"], "median_forward_s": r["median_forward_s"],
               "median_backward_s": r["median_backward_s"], "median_optimizer_s": r["median_optimizer_s"],
               "step_times_s": r["step_times_s"], "losses": r["losses"], "trainable_params": r["trainable_params"],
               "peak_rss_MiB": r["peak_rss_MiB"], "blas_libs": r["blas_libs"], "torch": r["torch"],
               "other_cores_max": max(other), "loadavg1_start": r["loadavg_before"][0],
               "loadavg1_end": r["loadavg_after"][0]}
        print(json.dumps(out))
        print(f"pytorch {r['shape']} LoRA b{r['batch']}x{r['seq']}: {r['tokens_per_s']:.1f} tok/s (median step "
              f"{r['median_step_s']:.3f} s: fwd {r['median_forward_s']:.3f}, bwd {r['median_backward_s']:.3f}, adamw "
              f"{r['median_optimizer_s']:.4f}), peak RSS {r['peak_rss_MiB']:.0f} MiB, other cores max {max(other):.2f}, "
              f"BLAS {','.join(p.split('/')[-1] for p in r['blas_libs'])}", file=sys.stderr)
    elif cmd == "tag":
        extra = kv(argv[3:])
        for r in records(argv[2]):
            r.update(extra)
            print(json.dumps(r))
    elif cmd == "worst":
        print(max([r.get(argv[3]) or 0 for r in records(argv[2])] or [0]))
    elif cmd == "median":
        field = argv[3]
        inv = field.startswith("inv:")
        field = field[4:] if inv else field
        vals = []
        for r in records(argv[2]):
            ok = r.get("clean", True)
            for k, v in kv(argv[4:]):
                if k.endswith("^"):
                    ok = ok and str(r.get(k[:-1], "")).startswith(str(v))
                else:
                    ok = ok and r.get(k) == v
            if ok and r.get(field):
                vals.append(1.0 / r[field] if inv else r[field])
        print(statistics.median_low(vals) if vals else 0)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
