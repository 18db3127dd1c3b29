# Thin wrapper over CMake. `make test` and `make demo` are the two commands a
# fresh machine needs. Each target first checks the Debian packages it needs
# (scripts/deps.sh GROUP): as root it installs the missing ones, as another
# user it lists them. `make` needs only the compiler, CMake, cJSON and OpenBLAS.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
MODEL ?=
PREFIX ?= /usr/local

.PHONY: all deps build install test test-sanitize demo base reader bench fuzz fuzz-smoke clean

all: build

deps:
	@bash scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The library (shared and static), its header(s), hyperlora.pc, the CMake
# package and the CLI under $(PREFIX).
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# The packages are checked before building: the build depends on what is there.
test:
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize:
	@bash scripts/deps.sh sanitize
	@CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHL_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -LE slow

# HL_FUZZ builds the library with libFuzzer's coverage instrumentation too.
fuzz:
	@bash scripts/deps.sh fuzz
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DHL_FUZZ=ON -DHL_NATIVE=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)

# Every fuzz target for FUZZ_SECONDS (default 20) on its seeds; fails on any finding.
fuzz-smoke:
	@FUZZ_BUILD=$(FUZZ_BUILD) JOBS=$(JOBS) bash scripts/fuzz_smoke.sh

# The demo runs the CLI only: building the tests and benches too took about
# a minute of a fresh clone's demo on 2 cores.
demo:
	@bash scripts/deps.sh demo
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target hyperlora
	@bash scripts/demo.sh $(BUILD)/hyperlora "$(MODEL)"

# A wider default base (dim 128, 2,000 steps: about 6 min on 2 cores) that
# `make demo` then reuses instead of pretraining its nano one.
base:
	@bash scripts/deps.sh demo
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target hyperlora
	@bash scripts/base.sh $(BUILD)/hyperlora out/base/wide.gguf wide

# The full-scale scene reader over the wide base (scripts/reader.sh: 20,000
# generated scenes, 16,000 steps, then 2,000 more on symbols and on formula
# alone, bundled; about 50 min on 2 cores) and its figures on scenes it never
# trained on; `make demo` then prints them.
reader: base
	@bash scripts/reader.sh $(BUILD)/hyperlora out/base/wide.gguf out/reader

bench:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory build
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
