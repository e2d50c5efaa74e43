# portier: the two commands a new machine needs (Debian 12, root or a user with sudo):
#
#   make demo   install what is missing, build, run portier on https://localhost:8443 with a demo backend
#   make test   install what is missing, build (normal + ASan/UBSan), run every test suite
#
# Other targets: deps build build-asan unit unit-asan e2e e2e-asan fuzz-smoke fuzz format-check bench
# demo-stop clean help. Plain GNU make, no recursion; the phases of `test` run one after the other, in order,
# even under `make -j` (parallelism happens inside cmake --build).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:

PYTHON        := /usr/bin/python3
BUILD_DIR     := build
ASAN_DIR      := build-asan
JOBS          ?= 2
PORTIER_STATE ?= /tmp/portier-demo
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SECONDS  ?= 300

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
MODULE_DIRS := $(wildcard gateway idp scim mfa policy store audit saml)

banner = @printf '\n==== %s ====\n' '$(1)'

.PHONY: help deps deps-build deps-demo build build-asan demo demo-stop unit unit-asan e2e e2e-asan \
        fuzz-smoke fuzz format-check bench test clean store-test

help:
	@echo "make demo        install, build and run the demo (https://localhost:8443)"
	@echo "make demo-stop   stop the demo's PostgreSQL"
	@echo "make test        install, build, and run unit + e2e tests (also under ASan/UBSan) + fuzz smoke"
	@echo "make build       release build in $(BUILD_DIR)/;  make build-asan: sanitizer build in $(ASAN_DIR)/"
	@echo "make unit | unit-asan | e2e | e2e-asan | fuzz-smoke | fuzz | format-check | bench | clean"

# --- dependencies (skipped in a moment when everything is installed) ---
deps:
	$(call banner,deps (test))
	scripts/install-deps.sh test

deps-build:
	$(call banner,deps (build))
	scripts/install-deps.sh build

deps-demo:
	$(call banner,deps (demo))
	scripts/install-deps.sh demo

# --- builds ---
build:
	$(call banner,build ($(BUILD_DIR)))
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_DIR) -j$(JOBS)

build-asan:
	$(call banner,build-asan ($(ASAN_DIR)))
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DPORTIER_SANITIZE=ON
	cmake --build $(ASAN_DIR) -j$(JOBS)

# --- demo ---
demo: deps-demo build
	$(call banner,demo)
	PORTIER_STATE=$(PORTIER_STATE) scripts/demo.sh

demo-stop:
	$(call banner,demo-stop)
	scripts/pg.sh stop $(PORTIER_STATE)/pg

# --- tests ---
unit: build
	$(call banner,unit)
	ctest --test-dir $(BUILD_DIR) --output-on-failure

unit-asan: build-asan
	$(call banner,unit-asan)
	$(ASAN_ENV) ctest --test-dir $(ASAN_DIR) --output-on-failure

# store against a real PostgreSQL (plain, then under valgrind with a leak check)
store-test:
	$(call banner,store-test)
	VALGRIND=1 tests/store/run.sh

e2e: build
	$(call banner,e2e)
	PORTIER_BIN=$(abspath $(BUILD_DIR))/portier $(PYTHON) -m pytest -q tests/e2e

e2e-asan: build-asan
	$(call banner,e2e-asan)
	PORTIER_BIN=$(abspath $(ASAN_DIR))/portier $(ASAN_ENV) $(PYTHON) -m pytest -q tests/e2e

# tests/fuzz/run.sh builds and runs the libFuzzer drivers for FUZZ_SECONDS each (when it exists).
fuzz-smoke:
	$(call banner,fuzz-smoke)
	if [ -f tests/fuzz/run.sh ]; then FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash tests/fuzz/run.sh; \
	else echo "tests/fuzz/run.sh does not exist yet: skipped"; fi

fuzz:
	$(call banner,fuzz)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

format-check:
	$(call banner,format-check)
	if [ -f .clang-format ]; then \
	    find $(MODULE_DIRS) -name '*.[ch]' -print0 | xargs -0 -r clang-format --dry-run -Werror; \
	else echo ".clang-format does not exist yet: skipped"; fi

bench: build
	$(call banner,bench)
	PORTIER_BIN=$(abspath $(BUILD_DIR))/portier bash tests/bench/run.sh

test: deps format-check build build-asan unit unit-asan store-test e2e e2e-asan fuzz-smoke
	$(call banner,all tests passed)

clean:
	$(call banner,clean)
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
