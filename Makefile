# patchd: `make run` starts the server, `make test` runs every test. See README.md.
SWIFT ?= swift
SWIFT_FLAGS ?=

.PHONY: run test build release deps bench clean

deps:
	@./scripts/install-deps.sh

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

release: deps
	$(SWIFT) build -c release $(SWIFT_FLAGS)

run: release
	@./scripts/run-local.sh

# Unit tests and the integration suite (real git, ssh and bwrap against the real server).
test: deps
	python3 -m unittest discover -s Tests/Fixtures -p 'test_*.py'
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	PATCHD_BIN=$(CURDIR)/.build/debug/patchd $(SWIFT) test $(SWIFT_FLAGS) --skip-build
	$(SWIFT) run $(SWIFT_FLAGS) --skip-build PatchdFuzz replay all fuzz/corpus

bench: release
	@./scripts/install-deps.sh --with-bench
	./bench/transport.sh

clean:
	rm -rf .build
