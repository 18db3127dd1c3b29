#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing.
# Runs as root (apt); as another user it only reports what is missing.
set -euo pipefail
# Build and test: compilers, CMake, cJSON, OpenBLAS (training GEMMs), clang's sanitizer/libFuzzer runtime.
# HTTP server: libmicrohttpd (+ pkg-config to find it).
# Demo corpus: Debian's English and Russian fortune files (plain text).
need=(cmake make gcc clang pkg-config libcjson-dev libopenblas-dev libmicrohttpd-dev libclang-rt-14-dev fortunes fortunes-ru)
command -v python3 >/dev/null 2>&1 || need+=(python3)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; install these with apt-get: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}"
