# serve_common.sh: what the shell tests of `hyperlora serve` share. Source it
# with the test's two arguments (the CLI and the shared folder):
#   . "$(dirname "$0")/serve_common.sh" "$@"
# It sets HL, S (shared), ROOT, BUILD, M (stories260K), a scratch folder T
# (the working directory, removed at exit with the server), and defines:
#   train_decoder OUT.gguf LEXICON STEPS  a small scene decoder on the example scenes
#   start_server ARGS...                  `serve -m $M --port 0 ARGS`: PID, PORT, U (its URL)
#   skip WHY                              exit 0 with SKIP, or 1 under HL_REQUIRE_ALL=1 (CI)
#   npm_packages DIR PACKAGE_DIR          `npm ci` of PACKAGE_DIR's lock file into $BUILD/DIR, once
HL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
S=$(cd "$2" && pwd)
BUILD=$(dirname "$HL")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
M=$S/models/stories260K/stories260K-f32.gguf
T=$(mktemp -d)
PID=
serve_cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$T"; }
trap serve_cleanup EXIT
cd "$T" || exit 1

train_decoder() { # OUT LEXICON STEPS
  grep -h '"scene": "Δ2[0-2]"' "$ROOT/examples/scenes/train.jsonl" > tr.jsonl
  $HL train -m "$M" --lexicon "$2" --compose parts+facets --data tr.jsonl --steps "$3" --rank 4 --ctx 144 \
    --val-fraction 0 --threads 2 -o "$1" --plain >/dev/null 2>&1 || { echo "FAIL: training the decoder"; exit 1; }
}

start_server() { # ARGS...
  $HL serve -m "$M" --port 0 "$@" 2> serve.log &
  PID=$!
  for _ in $(seq 200); do grep -q "listening on" serve.log 2>/dev/null && break; sleep 0.1; done
  PORT=$(grep -o '127.0.0.1:[0-9]*' serve.log | cut -d: -f2)
  [ -n "$PORT" ] || { cat serve.log; echo "FAIL: the server did not start"; exit 1; }
  U=http://127.0.0.1:$PORT
}

skip() {
  if [ "${HL_REQUIRE_ALL:-0}" = 1 ]; then echo "FAIL: $1"; exit 1; fi
  echo "SKIP: $1 (scripts/deps.sh test installs it)"; exit 0
}

npm_packages() { # DIR PACKAGE_DIR
  command -v node >/dev/null || skip "node is missing"
  command -v npm >/dev/null || skip "npm is missing"
  local w=$BUILD/$1
  if [ ! -d "$w/node_modules" ] || ! cmp -s "$2/package-lock.json" "$w/package-lock.json"; then
    mkdir -p "$w" && cp "$2/package.json" "$2/package-lock.json" "$w/" &&
      (cd "$w" && npm ci --no-audit --no-fund >npm.log 2>&1) || { cat "$w/npm.log"; echo "FAIL: npm ci"; exit 1; }
  fi
}
