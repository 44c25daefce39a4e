# The two commands of the README. Both do their own set-up (scripts/ensure-deps.sh) and use
# the same cargo profile (`dev`, optimised in Cargo.toml), so RocksDB compiles once for both.
CARGO ?= cargo
DATA ?= ieschain-data
SEED ?= 1

.PHONY: run test deps fmt-check clippy unit doc

deps:
	@scripts/ensure-deps.sh

## make run: the main job. Until the actor federation lands it writes the sample ledger
## (every chain kind) into $(DATA) and verifies every chain of it.
run: deps
	$(CARGO) run --example ledger_basics -- $(DATA) --seed $(SEED)
	$(CARGO) run --bin ieschain -- verify --data $(DATA)

## make test: the whole gate: formatting, lints, every test, docs.
test: deps fmt-check clippy unit doc

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
