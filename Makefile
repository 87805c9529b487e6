# Federa's developer commands. `make test` is what CI runs (.ci/run).

CARGO ?= cargo

.PHONY: run test lint bench build fmt

build:
	$(CARGO) build --release --bin federa

# Starts the server on the embedded defaults (SQLite ./federa.db, embedded
# sessions); the admin token is printed once in the log.
run:
	$(CARGO) run --release --bin federa -- serve

# Every test. PostgreSQL and Redis tests run when FEDERA_TEST_DATABASE_URL and
# FEDERA_TEST_REDIS_URL name servers, and say they are skipped otherwise.
test:
	$(CARGO) test --workspace --all-targets --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	@echo "benchmarks arrive with brokered sign-in (docs/PERFORMANCE.md)"
