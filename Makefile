# The two commands the README opens with: `make run` and `make test`.
# Each installs what is missing (Debian packages) and builds first.
.PHONY: deps build build-sanitize run test test-sanitize bench clean

deps:
	@bash scripts/install-deps

build: deps
	@cmake --preset default >/dev/null
	@cmake --build --preset default

build-sanitize: deps
	@cmake --preset sanitize >/dev/null
	@cmake --build --preset sanitize

run: build
	@bash scripts/run

test: build
	@ctest --preset default

test-sanitize: build-sanitize
	@ctest --preset sanitize

bench: build
	@bash bench/run-all

clean:
	rm -rf build build-sanitize
