# The two commands the README opens with: `make run` and `make test`.
# Each installs what is missing (Debian packages) and builds first.
.PHONY: deps build build-sanitize build-fuzz run test test-sanitize test-fuzz bench clean

deps:
	@bash scripts/install-deps

build: deps
	@cmake --preset default >/dev/null
	@cmake --build --preset default

build-sanitize: deps
	@cmake --preset sanitize >/dev/null
	@cmake --build --preset sanitize

# Only the fuzz targets, with clang (libFuzzer); CTest runs each for
# CORRAL_FUZZ_SECONDS (30 s) from the seed corpus.
build-fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz

run: build
	@bash scripts/run

test: build
	@ctest --preset default

test-sanitize: build-sanitize
	@ctest --preset sanitize

test-fuzz: build-fuzz
	@ctest --preset fuzz

bench: build
	@bash bench/run-all

clean:
	rm -rf build build-sanitize build-fuzz
