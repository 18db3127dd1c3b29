#!/usr/bin/env bash
# test_layers.sh: the source folders point one way. Reads the layer order
# from docs/ARCHITECTURE.md (its "layer N: folder ..." lines), then every
# #include "folder/..." line under src/: an include of a higher layer, of
# another folder of the same layer, or of a folder the order does not list
# fails, naming file, line and both folders (public headers under include/
# are outside the layers); so does a folder of src/ the order misses, or one
# it lists that does not exist. When the library's objects are in the build
# folder, their symbol tables (nm) are checked the same way, catching calls
# that cross layers through the public headers.
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

# Few processes: this runs beside the whole suite on a busy machine.
n_inc=0
inc_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)"'
while IFS=: read -r file line text; do
  [[ $text =~ $inc_re ]] || continue
  path=${BASH_REMATCH[1]}
  [[ $path == */* ]] || continue # hyperlora.h, or a header of the same folder
  [ -e "$ROOT/include/$path" ] && continue # a public header (include/): outside the layers
  rel=${file#"$ROOT"/}
  from=${rel#src/}; from=${from%%/*}
  n_inc=$((n_inc + 1))
  check_edge "$from" "${path%%/*}" "$rel:$line: #include \"$path\""
done < <(grep -rnE "$inc_re" "$ROOT/src" --include='*.c' --include='*.h')
[ "$n_inc" -gt 0 ] || bad "no folder includes found under src/"
echo "checked $n_inc includes across ${#rank[@]} folders"

# Symbols: what each object of src/ needs from another folder's objects.
BUILD=
[ -n "$HL" ] && BUILD=$(dirname "$HL")
objs=()
if [ -n "$BUILD" ] && [ -d "$BUILD/CMakeFiles" ] && command -v nm > /dev/null; then
  # Objects of the build's current targets (TargetDirectories.txt; a renamed
  # target leaves its old objects behind) whose sources still exist (so does
  # a moved file),
  dirs=()
  if [ -f "$BUILD/CMakeFiles/TargetDirectories.txt" ]; then
    while read -r d; do [ -d "$d" ] && dirs+=("$d"); done < "$BUILD/CMakeFiles/TargetDirectories.txt"
  else
    dirs=("$BUILD/CMakeFiles")
  fi
  while read -r o; do
    src=src/${o##*/src/}
    # and that are not older than their source (left over from another layout of the build).
    [ -f "$ROOT/${src%.o}" ] && ! [ "$o" -ot "$ROOT/${src%.o}" ] && objs+=("$o")
  done < <(find "${dirs[@]}" -path '*/src/*' -name '*.c.o')
fi
if [ ${#objs[@]} -gt 0 ]; then
  n_sym=0
  # nm -A: "OBJECT:ADDRESS TYPE SYMBOL" (defined) and "OBJECT: U SYMBOL" (used);
  # each becomes "SYMBOL SOURCE" with SOURCE as src/FOLDER/FILE.c.
  while read -r from to src sym def; do
    n_sym=$((n_sym + 1))
    check_edge "$from" "$to" "$src (calls $sym of $def)"
  done < <(
    { nm -A -g --defined-only "${objs[@]}" 2> /dev/null | awk '$(NF-1) ~ /^[TDBRCVW]$/ {print "D", $1, $NF}'
      nm -A -u "${objs[@]}" 2> /dev/null | awk '{print "U", $1, $NF}'; } |
      awk '{ o = $2; sub(/:.*/, "", o); sub(/.*\/src\//, "src/", o); sub(/\.o$/, "", o)
             f = o; sub(/^src\//, "", f); sub(/\/.*/, "", f)
             if ($1 == "D") { if (!($3 in d)) { d[$3] = f; s[$3] = o } } else { n++; us[n] = $3; uf[n] = f; uo[n] = o } }
           END { for (i = 1; i <= n; i++) if ((us[i] in d) && d[us[i]] != uf[i])
                   print uf[i], d[us[i]], uo[i], us[i], s[us[i]] }' | sort -u)
  echo "checked $n_sym cross-folder symbol uses"
else
  echo "skip symbols: no objects of src/ in the build folder, or no nm"
fi

[ $fail -eq 0 ] && echo "ok   layers point one way"
exit $fail
