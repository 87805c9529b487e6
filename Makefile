# Federa's developer commands. `make test` is what CI runs (.ci/run).

CARGO ?= cargo

.PHONY: run test test-deps lint bench build fmt

build:
	$(CARGO) build --release --bin federa

# Starts the server on the embedded defaults (SQLite ./federa.db, embedded
# sessions); the admin token is printed once in the log.
run:
	$(CARGO) run --release --bin federa -- serve

# Every test. PostgreSQL and Redis tests run when FEDERA_TEST_DATABASE_URL and
# FEDERA_TEST_REDIS_URL name servers, and say they are skipped otherwise.
test: test-deps
	$(CARGO) test --workspace --all-targets --no-fail-fast

# The real upstream OpenID Provider of the end-to-end tests (npm oidc-provider).
test-deps: tests/upstream/node_modules/.package-lock.json

tests/upstream/node_modules/.package-lock.json: tests/upstream/package.json tests/upstream/package-lock.json
	npm ci --prefix tests/upstream --no-audit --no-fund

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Builds the release binary, then runs the benchmark harness (bench/) against
# it on this machine and writes docs/PERFORMANCE.md (a few minutes): rates,
# latency (closed and open loop), Federa's CPU per operation against the cost
# of one RSA-2048 signature measured in the same run, and memory. Fails
# (status 2) if a sampled token does not verify against the realm's JWKS.
bench: test-deps
	$(CARGO) build --release -p federa
	$(CARGO) run --release -p federa-bench -- --federa target/release/federa --out docs/PERFORMANCE.md
