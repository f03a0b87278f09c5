# The two commands a new user needs are `make run` and `make test`; both set up .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test openapi soak bench bench-summary bench-throughput bench-webhooks bench-loyalty \
	bench-graphql bench-scale bench-analytics lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The SDK generators the suite runs against openapi/: the Python one in a venv of its own
# (it caps typer below what the service needs), the TypeScript one from npm.
SDK_VENV := .sdk-venv
SDK_PYTHON := $(SDK_VENV)/.installed-stamp
SDK_NODE := tests/sdk/node_modules/.package-lock.json

$(SDK_PYTHON): tests/sdk/requirements.txt
	test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet -r tests/sdk/requirements.txt
	touch $(SDK_PYTHON)

$(SDK_NODE): tests/sdk/package.json tests/sdk/package-lock.json
	npm ci --prefix tests/sdk --no-audit --no-fund --loglevel=error
	touch $(SDK_NODE)

# The browser tests/test_browser_docs.py drives: Debian's Chromium (Playwright downloads none).
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
		else echo "make test needs Chromium: install Debian's chromium package" >&2; exit 1; fi; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y --no-install-recommends chromium; }

run: $(STAMP)  ## Serve on http://127.0.0.1:8000 (embedded PostgreSQL unless CRM_DATABASE_URL is set)
	$(BIN)/crm-api serve

test: $(STAMP) $(SDK_PYTHON) $(SDK_NODE) chromium  ## The whole suite against a real PostgreSQL
	$(BIN)/python -m pytest

openapi: $(STAMP)  ## Regenerate the committed API contract in openapi/
	$(BIN)/crm-api export-openapi --out openapi

# What `make bench` runs, in order; `make bench BENCHMARKS="throughput webhooks"` runs fewer.
BENCHMARKS = throughput webhooks loyalty graphql scale analytics

# Each benchmark even when one before it failed; the summary table in README.md from
# bench/results/*.json; a non-zero exit at the end if any of them failed.
bench: $(STAMP)  ## Every benchmark, then the summary table in README.md (slow: ~45 minutes)
	@failed=""; \
	for name in $(BENCHMARKS); do \
		$(MAKE) --no-print-directory bench-$$name || failed="$$failed bench-$$name"; \
	done; \
	$(MAKE) --no-print-directory bench-summary || failed="$$failed bench-summary"; \
	if [ -n "$$failed" ]; then echo "make bench: failed:$$failed" >&2; exit 1; fi

bench-summary: $(STAMP)  ## The summary table in README.md from bench/results/*.json
	$(BIN)/python -m bench.summary

bench-throughput: $(STAMP)  ## Throughput and import benchmarks (ratios against a baseline in the same run)
	$(BIN)/python -m bench

bench-webhooks: $(STAMP)  ## Webhook delivery throughput and latency, one worker (bench/README.md)
	$(BIN)/python -m bench.webhooks

bench-loyalty: $(STAMP)  ## Earn/redeem throughput, 10k accounts and one hot account
	$(BIN)/python -m bench.loyalty

bench-scale: $(STAMP)  ## Segments and scoring at 1M customers / ~10M interactions (slow: minutes)
	$(BIN)/python -m bench.scale

bench-analytics: $(STAMP)  ## KPIs, rules refresh, recommendations, profile at 1M customers / 10M interactions (slow)
	$(BIN)/python -m bench.analytics_scale

bench-graphql: $(STAMP)  ## The customer page over GraphQL vs REST; a nested list of 100 customers
	$(BIN)/python -m bench.graphql

soak: $(STAMP)  ## Mixed traffic for 10 minutes, bounded: zero 5xx, p99 per operation, outbox drained
	$(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

clean:
	rm -rf $(VENV) $(SDK_VENV) tests/sdk/node_modules .pytest_cache
