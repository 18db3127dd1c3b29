#!/usr/bin/env bash
# deps.sh GROUP...: checks the Debian packages that a Makefile target needs
# and installs the missing ones, and only those. As root it installs them with
# apt-get; as any other user it installs nothing and prints what is missing,
# failing when a required package is.
#
# Groups (each target names the ones it needs):
#   build     the library and the CLI: compiler, CMake, cJSON, OpenBLAS.
#             Optional: pkg-config + libmicrohttpd-dev for the HTTP server of
#             `hyperlora serve` (without them the CLI is built without it).
#   serve     the optional part of build, as a group of its own.
#   mpi       Open MPI, for a CLI built with cmake -DHL_MPI=ON
#             (mpirun -np N hyperlora train ...; docs/distributed.md).
#   test      the test suite: build and python3 (the clients and checkers
#             of the shell tests), and the demo's fortune files (the slow
#             scene-fit test pretrains the demo's default base); the
#             server's packages are optional here
#             too (test_serve.sh skips without them), and so are Chromium,
#             Node.js and npm (the page and OpenAI-client tests skip without
#             them, unless HL_REQUIRE_ALL=1, as CI sets), and so is Open
#             MPI (test_mpi.sh: data-parallel training through mpirun).
#   demo      `make demo`: build, python3 and the demo's default corpus,
#             Debian's fortune files (English and Russian plain text).
#   sanitize  `make test-sanitize`: clang and its sanitizer runtime.
#   fuzz      `make fuzz`: clang and its libFuzzer runtime (the same packages).
#   bench     `make bench`: build and python3. The optional PyTorch peer
#             (BENCH_PEER=1) needs more, which bench/run.sh reports and
#             never installs: installing an OpenBLAS flavour would change
#             the system's BLAS alternatives.
#
# On a machine without dpkg nothing is checked: CMake says what it cannot find.
set -euo pipefail

usage() {
  echo "usage: scripts/deps.sh GROUP... (groups: build serve mpi test demo sanitize fuzz bench)" >&2
  exit 2
}
[ $# -gt 0 ] || usage

clang_runtime() { # the sanitizer/libFuzzer runtime matching the installed (or Debian 12's) clang
  local v
  v=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n 1)
  echo "libclang-rt-${v:-14}-dev"
}

required=()
optional=()
for group in "$@"; do
  case "$group" in
    build) required+=(cmake make gcc libcjson-dev libopenblas-dev); optional+=(pkg-config libmicrohttpd-dev) ;;
    serve) required+=(pkg-config libmicrohttpd-dev) ;;
    mpi) required+=(openmpi-bin libopenmpi-dev) ;;
    test) required+=(cmake make gcc libcjson-dev libopenblas-dev python3 fortunes fortunes-ru)
          optional+=(pkg-config libmicrohttpd-dev chromium nodejs npm openmpi-bin libopenmpi-dev) ;;
    demo) required+=(cmake make gcc libcjson-dev libopenblas-dev python3 fortunes fortunes-ru) ;;
    sanitize | fuzz) required+=(cmake make clang "$(clang_runtime)" libcjson-dev libopenblas-dev) ;;
    bench) required+=(cmake make gcc libcjson-dev libopenblas-dev python3) ;;
    *) echo "deps: unknown group '$group'" >&2; usage ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: no dpkg here; not checking packages (groups: $*)" >&2
  exit 0
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# python3 may come from elsewhere than Debian's package.
present() {
  installed "$1" && return 0
  case "$1" in
    python3) command -v python3 >/dev/null 2>&1 ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

missing_required=()
missing_optional=()
for p in "${required[@]}"; do
  present "$p" || [[ " ${missing_required[*]} " == *" $p "* ]] || missing_required+=("$p")
done
for p in "${optional[@]}"; do
  present "$p" || [[ " ${missing_required[*]} ${missing_optional[*]} " == *" $p "* ]] || missing_optional+=("$p")
done
[ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if [ ${#missing_optional[@]} -gt 0 ]; then
    echo "deps: optional, not installed: ${missing_optional[*]} (the HTTP server of \`hyperlora serve\`, its page and client tests;" \
      "CMake leaves the server out when it cannot find them)" >&2
  fi
  if [ ${#missing_required[@]} -gt 0 ]; then
    echo "deps: missing for '$*': ${missing_required[*]}" >&2
    echo "deps: not root, so nothing was installed; as root run: apt-get install ${missing_required[*]}" >&2
    exit 1
  fi
  exit 0
fi

install=("${missing_required[@]}" "${missing_optional[@]}")
echo "deps: installing ${install[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${install[@]}"
