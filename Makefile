# Federa's developer commands. `make test` is what CI runs (.ci/run).

CARGO ?= cargo

.PHONY: run test test-deps lint bench build fmt

build:
	$(CARGO) build --release --bin federa

# Starts the server on the embedded defaults (SQLite ./federa.db, embedded
# sessions); the admin token is printed once in the log.
run:
	$(CARGO) run --release --bin federa -- serve

# Every test. PostgreSQL and Redis variants run when FEDERA_TEST_DATABASE_URL
# and FEDERA_TEST_REDIS_URL name servers; otherwise each skipped variant adds a
# line to FEDERA_TEST_SKIP_LOG, listed at the end (cargo hides the output of
# passing tests). With FEDERA_TEST_REQUIRE_SERVICES=1 (.ci/run) they fail
# instead. The exit status is cargo's.
FEDERA_TEST_SKIP_LOG ?= $(CURDIR)/target/test-skips.log
export FEDERA_TEST_SKIP_LOG

test: test-deps
	@mkdir -p "$(dir $(FEDERA_TEST_SKIP_LOG))" && : > "$(FEDERA_TEST_SKIP_LOG)"
	@status=0; $(CARGO) test --workspace --all-targets --no-fail-fast || status=$$?; \
	if [ -s "$(FEDERA_TEST_SKIP_LOG)" ]; then \
		echo; \
		echo "Not run: $$(sort -u "$(FEDERA_TEST_SKIP_LOG)" | wc -l) test variants whose service is not configured:"; \
		sort -u "$(FEDERA_TEST_SKIP_LOG)" | sed 's/^/  /'; \
		echo "Set FEDERA_TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test) and"; \
		echo "FEDERA_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379) to run them (README.md, Test)."; \
	fi; \
	exit $$status

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
