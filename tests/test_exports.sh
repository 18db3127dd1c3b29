#!/usr/bin/env bash
# test_exports.sh: libhyperlora.so exports exactly the functions the public
# headers mark HL_API: every exported symbol is hl_-prefixed and declared
# there, and every declared one is exported. Args: CLI path (its folder holds
# the library), shared dir (unused).
set -euo pipefail
build=$(dirname "$1")
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib="$build/libhyperlora.so"
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols; skip the linker's absolute markers (_end, _edata, __bss_start).
nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sort -u >"$tmp/exported"
headers=("$src/include/hyperlora.h")
[ -d "$src/include/hyperlora" ] && headers+=("$src"/include/hyperlora/*.h)
# The name is the identifier right before the first '(' on an HL_API line.
grep -h '^HL_API ' "${headers[@]}" | sed -E 's/\(.*//; s/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)$/\1/' | sort -u >"$tmp/declared"

fail=0
n=$(wc -l <"$tmp/exported")
if [ "$n" -lt 50 ]; then echo "FAIL: only $n exported symbols"; fail=1; fi
bad=$(grep -v '^hl_' "$tmp/exported" || true)
if [ -n "$bad" ]; then echo "FAIL: exported without the hl_ prefix:"; echo "$bad"; fail=1; fi
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then echo "FAIL: exported but not declared HL_API in the public headers:"; echo "$extra"; fail=1; fi
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -n "$missing" ]; then echo "FAIL: declared HL_API but not exported (not defined, or hidden):"; echo "$missing"; fail=1; fi
[ $fail -eq 0 ] && echo "ok: $n exported symbols, all hl_-prefixed and declared HL_API"
exit $fail
