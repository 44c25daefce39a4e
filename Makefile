# The two commands of the README. Both do their own set-up (scripts/ensure-deps.sh) and use
# the same cargo profile (`dev`, optimised in Cargo.toml), so RocksDB compiles once for both.
CARGO ?= cargo
DATA ?= ieschain-data
SEED ?= 1

.PHONY: run test deps fmt-check clippy unit doc package-check

deps:
	@scripts/ensure-deps.sh

## make run: the main job: the built-in four-party federation, live for $(DURATION) s on
## RocksDB in $(DATA) (elections, batching, rotations), its JSON report in
## $(DATA)/report.json, then a full `ieschain verify` of every chain it wrote.
DURATION ?= 30
run: deps
	$(CARGO) build --bin ieschain
	mkdir -p $(DATA)
	$(CARGO) run --bin ieschain -- run --data $(DATA) --duration $(DURATION) --seed $(SEED) --report $(DATA)/report.json
	$(CARGO) run --bin ieschain -- verify --data $(DATA)

## make test: the whole gate: formatting, lints, every test, docs.
test: deps fmt-check clippy unit doc package-check

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## Every crate packages (path dependencies carry versions; LICENSE and metadata present).
package-check:
	for p in ieschain-core ieschain-storage ieschain-actors ieschain; do \
		$(CARGO) package --no-verify --list --allow-dirty -p $$p >/dev/null || exit 1; \
	done
