#!/usr/bin/env bash
# bench/llamacpp.sh BUILD_DIR [OUT_DIR]: inference against llama.cpp in the
# same run, on the same GGUF files, f32 and quantized; and LoRA training over
# a quantized base against f32 (speed, peak RSS).
#
# BENCH_LLAMACPP=DIR names a llama.cpp checkout the user has built (its
# llama-bench in DIR/build/bin, DIR/bin or DIR); nothing is downloaded or
# built here. Without it only our side runs.
#
# Models (random weights, llama2 tokenizer, made by init-model here):
# LLAMACPP_PRESETS (default "s15M s110M") in f32, and the last preset also
# quantized by our `quantize` to LLAMACPP_TYPES (default "q8_0 q4_K_M
# q6_K"; set it empty for f32 only). For each model and each of
# LLAMACPP_ROUNDS rounds (default 3): build/bench_infer (pp128 and tg64 at
# 2 threads, LLAMACPP_RUNS runs (default 1), each tg run paired with a
# read-bandwidth sample), and llama-bench -p 128 -n 64 -t 2 -r LLAMACPP_RUNS;
# the two alternate which goes first. With more than one run, a round's figure
# is each side's median over its runs (bench_infer's own; llama-bench's
# samples_ts): on a host whose neighbours come and go, more runs per round
# keep one slow moment from deciding a round.
# The table gives medians over the rounds, min–max, the ratio ours /
# llama.cpp, and each decode's weight stream as a share of the read
# bandwidth measured next to our run (llama.cpp's uses the same sample and
# the same bytes per token).
#
# Training (LLAMACPP_TRAIN=1, default on): `hyperlora train` rank 8 on
# q,v,o,gate,up,down, 1 x 256 tokens, LLAMACPP_TRAIN_STEPS steps (default 6),
# 2 threads, over the last preset in f32 and in q4_K_M, alternating, rounds as
# above: the median of the tok/s the trainer reports after its first step, and
# peak RSS (/usr/bin/time -v).
#
# Output: OUT_DIR/llamacpp.md (tables) and OUT_DIR/llamacpp.jsonl (every run).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
OUT=${2:-$ROOT/bench/out}
SHARED=${HL_SHARED_DIR:-$ROOT/../shared}
HL="$BUILD/hyperlora"
TOK="$SHARED/models/llama2-tokenizer/tokenizer.bin"
PRESETS=${LLAMACPP_PRESETS:-"s15M s110M"}
TYPES=${LLAMACPP_TYPES-"q8_0 q4_K_M q6_K"} # set and empty: f32 only
ROUNDS=${LLAMACPP_ROUNDS:-3}
RUNS=${LLAMACPP_RUNS:-1}
THREADS=${LLAMACPP_THREADS:-2}
TRAIN=${LLAMACPP_TRAIN:-1}
TRAIN_STEPS=${LLAMACPP_TRAIN_STEPS:-6}
mkdir -p "$OUT/models"
J="$OUT/llamacpp.jsonl"
: > "$J"
for t in hyperlora bench_infer; do
  [ -x "$BUILD/$t" ] || { echo "llamacpp.sh: $BUILD/$t is missing: build it first (cmake --build $BUILD)" >&2; exit 1; }
done

LB=
if [ -n "${BENCH_LLAMACPP:-}" ]; then
  for c in "$BENCH_LLAMACPP/build/bin/llama-bench" "$BENCH_LLAMACPP/bin/llama-bench" "$BENCH_LLAMACPP/llama-bench"; do
    [ -x "$c" ] && { LB=$c; break; }
  done
  [ -n "$LB" ] || echo "llamacpp.sh: BENCH_LLAMACPP=$BENCH_LLAMACPP has no llama-bench (looked in build/bin, bin and the folder itself); our side only" >&2
fi

# ---- models: made once, reused while the CLI is older than them
models=()
last=
for p in $PRESETS; do
  f="$OUT/models/$p-f32.gguf"
  if [ ! -s "$f" ] || [ "$HL" -nt "$f" ]; then
    "$HL" init-model --preset "$p" --tokenizer "$TOK" --seed 0 -o "$f.tmp" >/dev/null 2>&1
    mv "$f.tmp" "$f"
  fi
  models+=("$p f32 $f")
  last=$p
done
for t in $TYPES; do
  f="$OUT/models/$last-$t.gguf"
  if [ ! -s "$f" ] || [ "$OUT/models/$last-f32.gguf" -nt "$f" ]; then
    "$HL" quantize "$OUT/models/$last-f32.gguf" -o "$f.tmp" --type "$t" >/dev/null 2>&1
    mv "$f.tmp" "$f"
  fi
  models+=("$last $t $f")
done

CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "llamacpp.sh: $CPU, $(nproc) CPUs; ours: $("$HL" --version | tail -n 1); peer: ${LB:-none}"

ours() { # preset type file round
  local tmp
  tmp=$(mktemp)
  "$BUILD/bench_infer" -m "$3" --name "$1-$2" --runs "$RUNS" --threads "$THREADS" --pp 128 --tg 64 --json "$tmp" >/dev/null
  python3 - "$tmp" "$1" "$2" "$4" >> "$J" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    # "base" only: bench_infer's "all logits" pp128 also runs the LM head on
    # every prompt token, and llama-bench's pp128 outputs the last token's.
    if r.get("section") != "speed" or r.get("variant", "base") != "base":
        continue
    print(json.dumps({"who": "ours", "preset": sys.argv[2], "type": sys.argv[3], "round": int(sys.argv[4]),
                      "test": r["test"], "variant": "base", "tok_s": r["tok_s"], "weight_bytes_per_token": r["weight_bytes_per_token"],
                      "read_GBps": r["read_GBps_adjacent"]}))
PY
  rm -f "$tmp"
}
peer() { # preset type file round
  [ -n "$LB" ] || return 0
  "$LB" -m "$3" -p 128 -n 64 -t "$THREADS" -r "$RUNS" -o jsonl 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    test = "pp%d" % r["n_prompt"] if r["n_prompt"] else "tg%d" % r["n_gen"]
    runs = sorted(r.get("samples_ts") or [r["avg_ts"]])
    mid = len(runs) // 2
    tok_s = runs[mid] if len(runs) % 2 else (runs[mid - 1] + runs[mid]) / 2
    print(json.dumps({"who": "llama.cpp", "preset": sys.argv[1], "type": sys.argv[2], "round": int(sys.argv[3]),
                      "test": test, "tok_s": tok_s, "runs": len(runs), "build": r.get("build_commit", "")}))
' "$1" "$2" "$4" >> "$J"
}

for r in $(seq 1 "$ROUNDS"); do
  for m in "${models[@]}"; do
    set -- $m
    echo "round $r/$ROUNDS: $1 $2"
    if [ $((r % 2)) = 1 ]; then ours "$1" "$2" "$3" "$r"; peer "$1" "$2" "$3" "$r"
    else peer "$1" "$2" "$3" "$r"; ours "$1" "$2" "$3" "$r"; fi
  done
done

if [ "$TRAIN" = 1 ]; then
  q="$OUT/models/$last-q4_K_M.gguf"
  if [ ! -s "$q" ]; then
    "$HL" quantize "$OUT/models/$last-f32.gguf" -o "$q" --type q4_K_M >/dev/null 2>&1
  fi
  for r in $(seq 1 "$ROUNDS"); do
    for t in f32 q4_K_M; do
      f="$OUT/models/$last-$t.gguf"
      w=$(mktemp -d)
      echo "training round $r/$ROUNDS: $last $t"
      /usr/bin/time -v "$HL" train -m "$f" --data "$ROOT/examples/stories/train.jsonl" --rank 8 --alpha 16 \
        --targets q,v,o,gate,up,down --ctx 256 --batch 1 --steps "$TRAIN_STEPS" --eval-every 0 --val-fraction 0 \
        --checkpoint-every 0 --threads "$THREADS" --plain -o "$w/a.gguf" > "$w/log" 2>&1 || { tail -5 "$w/log"; exit 1; }
      python3 - "$w/log" "$last" "$t" "$r" >> "$J" <<'PY'
import json, re, statistics, sys
text = open(sys.argv[1]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
# progress lines ("step i/n ... <n> tok/s") carry the rate; the first step
# pays the start-up. Only those lines: the header's kernel basis quotes tok/s too.
rates = [float(x) for x in re.findall(r"^step \d+/\d+ .*?([0-9.]+) tok/s", text, re.M)]
tok_s = statistics.median(rates[1:] or rates) if rates else None
print(json.dumps({"who": "ours", "preset": sys.argv[2], "type": sys.argv[3], "round": int(sys.argv[4]),
                  "test": "train1x256", "tok_s": tok_s, "peak_rss_mib": rss / 1024}))
PY
      rm -rf "$w"
    done
  done
fi

python3 - "$J" "$OUT/llamacpp.md" "$CPU" "$ROUNDS" "$THREADS" "$RUNS" <<'PY'
import json, statistics, sys, os
rows = [json.loads(l) for l in open(sys.argv[1])]
cpu, rounds, threads, runs = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
def sel(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
def fmt(xs, key="tok_s"):
    v = [x[key] for x in xs if x.get(key) is not None]
    if not v:
        return None, "-"
    m = statistics.median(v)
    return m, ("%.1f (%.1f–%.1f)" % (m, min(v), max(v)) if len(v) > 1 else "%.1f" % m)
order = []
for r in rows:
    k = (r["preset"], r["type"])
    if r["test"] != "train1x256" and k not in order:
        order.append(k)
build = next((r["build"] for r in rows if r.get("build")), "")
each = " of each side's median of %d runs" % runs if runs > 1 else ""
out = ["Same-run inference against llama.cpp%s: %s, %s threads, median of %s alternating rounds%s (min–max)."
       % (" (llama-bench, build %s)" % build if build else "", cpu, threads, rounds, each), "",
       "| model | type | MiB | pp128 ours | pp128 llama.cpp | ratio | tg64 ours | tg64 llama.cpp | ratio "
       "| read GB/s | ours of read BW | llama.cpp of read BW |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for p, t in order:
    cells = [p, t]
    o_pp = sel(who="ours", preset=p, type=t, test="pp128"); l_pp = sel(who="llama.cpp", preset=p, type=t, test="pp128")
    o_tg = sel(who="ours", preset=p, type=t, test="tg64"); l_tg = sel(who="llama.cpp", preset=p, type=t, test="tg64")
    wb = o_tg[0]["weight_bytes_per_token"] if o_tg else None
    cells.append("%.0f" % (wb / 2**20) if wb else "-")
    for o, l in ((o_pp, l_pp), (o_tg, l_tg)):
        om, os_ = fmt(o); lm, ls = fmt(l)
        cells += [os_, ls, "**%.2f**" % (om / lm) if om and lm else "-"]
    rd, rds = fmt(o_tg, "read_GBps")
    cells.append(rds)
    shares_o = [x["tok_s"] * wb / 1e9 / x["read_GBps"] for x in o_tg if x.get("read_GBps")]
    # llama.cpp's run of a round against our sample of the same round
    bw = {x["round"]: x["read_GBps"] for x in o_tg if x.get("read_GBps")}
    shares_l = [x["tok_s"] * wb / 1e9 / bw[x["round"]] for x in l_tg if x["round"] in bw] if wb else []
    cells.append("%.0f%%" % (100 * statistics.median(shares_o)) if shares_o else "-")
    cells.append("%.0f%%" % (100 * statistics.median(shares_l)) if shares_l else "-")
    out.append("| " + " | ".join(cells) + " |")
tr = sel(test="train1x256")
if tr:
    out += ["", "LoRA training over a quantized base (rank 8 on q,v,o,gate,up,down, 1 x 256 tokens, %s threads, "
            "median of %s alternating rounds):" % (threads, rounds), "",
            "| base | tok/s | peak RSS (MiB) | RSS vs f32 |", "|---|---|---|---|"]
    f32_rss = statistics.median([x["peak_rss_mib"] for x in tr if x["type"] == "f32"] or [float("nan")])
    for t in ("f32", "q4_K_M"):
        xs = [x for x in tr if x["type"] == t]
        if not xs:
            continue
        m, s = fmt(xs)
        rss = statistics.median(x["peak_rss_mib"] for x in xs)
        out.append("| %s %s | %s | %.0f | %.2f |" % (xs[0]["preset"], t, s, rss, rss / f32_rss))
print("\n".join(out))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
