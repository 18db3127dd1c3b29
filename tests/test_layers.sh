#!/usr/bin/env bash
# test_layers.sh: the source folders point one way. Reads the layer order
# from docs/ARCHITECTURE.md (its "layer N: folder ..." lines), then every
# #include "folder/..." line under src/: an include of a higher layer, of
# another folder of the same layer, or of a folder the order does not list
# fails, naming file, line and both folders; so does a folder of src/ the
# order misses, or one it lists that does not exist. When the library's
# objects are in the build folder, their symbol tables (nm) are checked the
# same way, catching calls that cross layers through include/hyperlora.h.
# Usage: test_layers.sh HYPERLORA SHARED (the CLI's folder is the build
# folder; SHARED is not used)
set -uo pipefail
HL=${1:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC=$ROOT/docs/ARCHITECTURE.md
fail=0
bad() { echo "FAIL $*"; fail=1; }

declare -A rank=()
while read -r _ n rest; do
  n=${n%:}
  for f in $rest; do
    [ -n "${rank[$f]:-}" ] && bad "$DOC: $f is listed twice"
    rank[$f]=$n
  done
done < <(grep -E '^layer [0-9]+: ' "$DOC")
[ ${#rank[@]} -gt 0 ] || { echo "FAIL $DOC: no 'layer N: folder ...' lines"; exit 1; }

for d in "$ROOT"/src/*/; do
  f=$(basename "$d")
  [ -n "${rank[$f]:-}" ] || bad "src/$f/ is not in the layer order of docs/ARCHITECTURE.md"
done
for f in "${!rank[@]}"; do
  [ -d "$ROOT/src/$f" ] || bad "docs/ARCHITECTURE.md lists $f, but src/$f/ does not exist"
done

# One (from, to, where) check; where names the file and line or the symbol.
check_edge() { # FROM TO WHERE
  local from=$1 to=$2 where=$3
  [ "$from" = "$to" ] && return
  [ -n "${rank[$from]:-}" ] || return # reported above
  if [ -z "${rank[$to]:-}" ]; then
    bad "$where: $from/ uses $to/, which is not in the layer order"
  elif [ "${rank[$to]}" -ge "${rank[$from]}" ]; then
    local how="a higher layer"
    [ "${rank[$to]}" -eq "${rank[$from]}" ] && how="the same layer"
    bad "$where: $from/ (layer ${rank[$from]}) uses $to/ (layer ${rank[$to]}, $how)"
  fi
}

n_inc=0
while IFS=: read -r file line text; do
  rel=${file#"$ROOT"/}
  from=${rel#src/}; from=${from%%/*}
  to=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/' <<< "$text")
  case $to in */*) ;; *) continue ;; esac # hyperlora.h, or a header of the same folder
  to=${to%%/*}
  n_inc=$((n_inc + 1))
  check_edge "$from" "$to" "$rel:$line: #include \"${text#*\"}"
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$ROOT/src" --include='*.c' --include='*.h')
[ "$n_inc" -gt 0 ] || bad "no folder includes found under src/"
echo "checked $n_inc includes across ${#rank[@]} folders"

# Symbols: what each object of src/ needs from another folder's objects.
BUILD=
[ -n "$HL" ] && BUILD=$(dirname "$HL")
if [ -n "$BUILD" ] && [ -d "$BUILD/CMakeFiles" ] && command -v nm > /dev/null; then
  T=$(mktemp -d /tmp/hl_layers_XXXXXX)
  trap 'rm -rf "$T"' EXIT
  # Objects of sources that still exist (a moved file leaves its old object behind).
  while read -r o; do
    src=src/${o##*/src/}; src=${src%.o}
    [ -f "$ROOT/$src" ] || continue
    folder=${src#src/}; folder=${folder%%/*}
    nm -g --defined-only "$o" 2> /dev/null | awk -v f="$folder" -v s="$src" 'NF == 3 && $2 ~ /[TDBRCVW]/ {print $3, f, s}' >> "$T/defs"
    nm -u "$o" 2> /dev/null | awk -v f="$folder" -v s="$src" '{print $NF, f, s}' >> "$T/uses"
  done < <(find "$BUILD/CMakeFiles" -path '*/src/*' -name '*.c.o')
  if [ -s "$T/defs" ]; then
    n_sym=0
    while read -r from to src sym def; do
      n_sym=$((n_sym + 1))
      check_edge "$from" "$to" "$src (calls $sym of $def)"
    done < <(awk 'NR == FNR {if (!($1 in d)) {d[$1] = $2; s[$1] = $3}; next}
                 ($1 in d) && d[$1] != $2 {print $2, d[$1], $3, $1, s[$1]}' "$T/defs" "$T/uses" | sort -u)
    echo "checked $n_sym cross-folder symbol uses"
  else
    echo "skip symbols: no objects of src/ under $BUILD"
  fi
else
  echo "skip symbols: no build folder or no nm"
fi

[ $fail -eq 0 ] && echo "ok   layers point one way"
exit $fail
