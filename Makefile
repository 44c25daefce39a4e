# The two commands of the README. Both do their own set-up (scripts/ensure-deps.sh) and use
# the same cargo profile (`dev`, optimised in Cargo.toml), so RocksDB compiles once for both.
CARGO ?= cargo
DATA ?= ieschain-data
SEED ?= 1

.PHONY: run test deps deps-test fmt-check clippy unit examples doc package-check

deps:
	@scripts/ensure-deps.sh

## What the tests need beyond the build: a headless chromium for the explorer's browser test.
deps-test:
	@scripts/ensure-deps.sh --browser

## make run: the main job: the built-in four-party federation, live for $(DURATION) s on
## RocksDB in $(DATA) (elections, batching, rotations), its JSON report in
## $(DATA)/report.json, then a full `ieschain verify` of every chain it wrote.
## While it runs, the explorer serves on http://127.0.0.1:8080/ (a free port, printed,
## when 8080 is taken); `make run SERVE=ADDR` serves elsewhere, `make run SERVE=` not at all.
DURATION ?= 30
ifeq ($(origin SERVE),undefined)
SERVE := $(shell bash -c '(exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null && echo 127.0.0.1:0 || echo 127.0.0.1:8080')
endif
run: deps
	$(CARGO) build --bin ieschain
	mkdir -p $(DATA)
	$(CARGO) run --bin ieschain -- run --data $(DATA) --duration $(DURATION) --seed $(SEED) --report $(DATA)/report.json $(if $(SERVE),--serve $(SERVE))
	$(CARGO) run --bin ieschain -- verify --data $(DATA)

## make test: the whole gate: formatting, lints, every test, docs.
test: deps-test fmt-check clippy unit examples doc package-check

fmt-check:
	$(CARGO) fmt --all --check

## Lints twice: every target (tests and examples build with the `testing` feature), and the
## library and binary alone, as a host that never enables `testing` builds them.
clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --lib --bins -- -D warnings

unit:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## Every example runs, not only compiles (`--all-targets` builds them): each exits non-zero
## when what it shows does not happen. Chains go to a temporary directory, then `verify`.
EXAMPLES_DIR ?= target/examples-run
examples:
	rm -rf $(EXAMPLES_DIR) && mkdir -p $(EXAMPLES_DIR)
	$(CARGO) build --examples --bin ieschain
	$(CARGO) run -q --example ledger_basics -- $(EXAMPLES_DIR)/ledger --seed 3
	$(CARGO) run -q --bin ieschain -- verify --data $(EXAMPLES_DIR)/ledger
	$(CARGO) run -q --example power_purchase -- --data $(EXAMPLES_DIR)/power
	$(CARGO) run -q --example data_trade -- --data $(EXAMPLES_DIR)/data
	$(CARGO) run -q --example join -- --data $(EXAMPLES_DIR)/join
	$(CARGO) run -q --example relay_failover -- --data $(EXAMPLES_DIR)/failover
	$(CARGO) run -q --example four_party -- --seconds 13 --data $(EXAMPLES_DIR)/four-party
	$(CARGO) run -q --example embed_in_tokio -- --records 50 --data $(EXAMPLES_DIR)/embed
	$(CARGO) run -q --example window_experiment -- --quick --svg $(EXAMPLES_DIR)/window.svg
	for d in power data join failover four-party embed; do \
		$(CARGO) run -q --bin ieschain -- verify --data $(EXAMPLES_DIR)/$$d >/dev/null || exit 1; \
	done

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## Every crate packages (path dependencies carry versions; LICENSE and metadata present).
package-check:
	for p in ieschain-core ieschain-storage ieschain-net ieschain-actors ieschain; do \
		$(CARGO) package --no-verify --list --allow-dirty -p $$p >/dev/null || exit 1; \
	done
