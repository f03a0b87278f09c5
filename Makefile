# The two commands a new user needs are `make run` and `make test`; both set up .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test openapi bench bench-webhooks bench-loyalty bench-scale bench-graphql lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## Serve on http://127.0.0.1:8000 (embedded PostgreSQL unless CRM_DATABASE_URL is set)
	$(BIN)/crm-api serve

test: $(STAMP)  ## The whole suite against a real PostgreSQL
	$(BIN)/python -m pytest

openapi: $(STAMP)  ## Regenerate the committed API contract in openapi/
	$(BIN)/crm-api export-openapi --out openapi

bench: $(STAMP)  ## Throughput and import benchmarks (ratios against a baseline in the same run)
	$(BIN)/python -m bench

bench-webhooks: $(STAMP)  ## Webhook delivery throughput and latency, one worker (bench/README.md)
	$(BIN)/python -m bench.webhooks

bench-loyalty: $(STAMP)  ## Earn/redeem throughput, 10k accounts and one hot account
	$(BIN)/python -m bench.loyalty

bench-scale: $(STAMP)  ## Segments and scoring at 1M customers / ~10M interactions (slow: minutes)
	$(BIN)/python -m bench.scale

bench-graphql: $(STAMP)  ## The customer page over GraphQL vs REST; a nested list of 100 customers
	$(BIN)/python -m bench.graphql

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

clean:
	rm -rf $(VENV) .pytest_cache
