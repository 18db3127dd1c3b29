#!/usr/bin/env bash
# test_install.sh: `cmake --install` into a temporary prefix, then build the
# example consumer (examples/library) against what was installed, once with
# pkg-config and once with find_package(hyperlora), and run both: each loads
# stories260K and a lexicon, trains a scene decoder with hl_train_run, saves,
# reloads and decodes a scene using only the public headers. The decoded text
# must equal what the CLI's `decode` gives for the saved adapter.
# Args: CLI path (its folder is the build tree), shared dir.
set -euo pipefail
cli=$1
shared=$2
build=$(cd "$(dirname "$cli")" && pwd)
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model="$shared/models/stories260K/stories260K-f32.gguf"
[ -f "$model" ] || { echo "FAIL: $model missing"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; echo "FAIL: install"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name 'libhyperlora.so' | head -1)")
for f in "$prefix/include/hyperlora.h" "$prefix/include/hyperlora/train.h" "$libdir/libhyperlora.a" \
         "$libdir/pkgconfig/hyperlora.pc" "$libdir/cmake/hyperlora/hyperloraConfig.cmake" "$prefix/bin/hyperlora"; do
    [ -e "$f" ] || { echo "FAIL: not installed: $f"; exit 1; }
done
# The installed tree holds no engine-internal header.
if find "$prefix/include" -name '*.h' | grep -v -e '/hyperlora\.h$' -e '/include/hyperlora/' | grep -q .; then
    echo "FAIL: internal headers installed"; exit 1
fi

# The header's version macros and the CMake project's must agree.
hv=$(sed -n 's/^#define HL_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/hyperlora.h")
pv=$(sed -n 's/^Version: *//p' "$libdir/pkgconfig/hyperlora.pc")
[ "$hv" = "$pv" ] || { echo "FAIL: header version $hv, hyperlora.pc $pv"; exit 1; }

# Build the consumers as the library was built: a sanitized library needs its
# compiler and the sanitizer runtime in the program too.
cc_used=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cc_used=${cc_used:-cc}
san=
grep -q '^HL_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && san="-fsanitize=address,undefined"

run_consumer() { # name binary
    mkdir -p "$tmp/$1"
    "$2" "$model" "$src/examples/scenes/lexicon.jsonl" "$src/examples/scenes/train.jsonl" "$tmp/$1" Δ21 \
        >"$tmp/$1.out" 2>&1 || { cat "$tmp/$1.out"; echo "FAIL: $1 consumer"; exit 1; }
    grep -q "^libhyperlora $hv " "$tmp/$1.out" || { cat "$tmp/$1.out"; echo "FAIL: $1: version"; exit 1; }
    [ -f "$tmp/$1/decoder.gguf" ] && [ -f "$tmp/$1/decoder-peft/adapter_model.safetensors" ] \
        || { echo "FAIL: $1: adapter files missing"; exit 1; }
    local got want
    got=$(sed -n 's/^decode Δ21: //p' "$tmp/$1.out")
    want=$("$cli" decode -m "$model" --lora "$tmp/$1/decoder.gguf" --scene Δ21 -n 24 2>/dev/null)
    [ "$got" = "$want" ] || { echo "FAIL: $1: consumer decoded '$got', the CLI '$want'"; exit 1; }
    echo "ok: $1: $(grep '^trained' "$tmp/$1.out"); decode Δ21: $got"
}

# 1. pkg-config, as a Makefile would (pkg-config is optional for a build;
#    `make test` installs it as root, so CI always runs this half).
if command -v pkg-config >/dev/null; then
  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  [ "$(pkg-config --modversion hyperlora)" = "$hv" ] || { echo "FAIL: pkg-config --modversion"; exit 1; }
  # shellcheck disable=SC2046
  # shellcheck disable=SC2086
  "$cc_used" $san -std=c11 -Wall -Werror -o "$tmp/consumer-pc" "$src/examples/library/consumer.c" \
      $(pkg-config --cflags --libs hyperlora) -lm -Wl,-rpath,"$libdir" || { echo "FAIL: pkg-config build"; exit 1; }
  run_consumer pkgconfig "$tmp/consumer-pc"
else
  echo "note: pkg-config is missing; only the find_package consumer runs"
fi

# 2. CMake's find_package.
cmake -S "$src/examples/library" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc_used" -DCMAKE_C_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; echo "FAIL: find_package configure"; exit 1; }
cmake --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1 || { cat "$tmp/cmake-build.log"; echo "FAIL: find_package build"; exit 1; }
run_consumer cmake "$tmp/cmake-build/consumer"

# The two builds trained the same decoder: same seed, same bytes.
if [ -f "$tmp/pkgconfig/decoder.gguf" ]; then
  cmp -s "$tmp/pkgconfig/decoder.gguf" "$tmp/cmake/decoder.gguf" || { echo "FAIL: the two consumers' adapters differ"; exit 1; }
fi
echo "ok: installed library used through pkg-config and find_package"
