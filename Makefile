# The front door. `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= 5036
# xdist workers of `make test` (the machine this runs on has 2 cores).
TEST_WORKERS ?= 2
# The browser tests drive Debian's chromium with Playwright (Playwright's own browser download
# is not available here); `chromium` installs the package when it is missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell test "$$(id -u)" -eq 0 || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install run test reliability browser screenshots chromium lint typecheck format migrate bench bench-scoring bench-path bench-credit bench-policy bench-gateway bench-read bench-load bench-routes bench-portal bench-validation config-docs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything (dev included)

run: $(STAMP) ## The whole platform with demo data (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/python -m scripts.run

test: $(STAMP) chromium ## The test suite against real PostgreSQL (TEST_DATABASE_URL or embedded)
	@# Two xdist workers for everything but the reliability suite, which then runs alone: it
	@# times failures and recoveries of the assembled platform, so it gets the machine to itself.
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --ignore=tests/reliability; \
	  a=$$?; $(BIN)/python -m pytest -q tests/reliability; b=$$?; test $$a -eq 0 && test $$b -eq 0

chromium: ## Debian's chromium for the browser tests, installed when missing
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

browser: $(STAMP) chromium ## The portal in a real browser (Playwright + chromium) against the platform
	$(BIN)/python -m pytest -q tests/browser

screenshots: $(STAMP) chromium ## Regenerate docs/screenshots/ (the browser tests take them)
	@fc-list :lang=zh 2>/dev/null | grep -q . || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq fonts-noto-cjk; }
	PORTAL_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser

reliability: $(STAMP) ## Contract fuzzing, faults and security against the platform as real processes
	$(BIN)/python -m pytest -q tests/reliability

lint: $(STAMP) ## ruff check + format check + mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared contracts services gateway portal scripts devtools

typecheck: $(STAMP) ## mypy strict
	$(BIN)/mypy shared contracts services gateway portal scripts devtools

format: $(STAMP) ## Apply ruff format and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP) ## Migrate every service's schema to head
	$(BIN)/python -m scripts.migrate

bench: bench-scoring bench-credit bench-policy bench-validation ## All benchmarks that need no running platform

bench-scoring: $(STAMP) ## Scoring end to end: SIZE=1000000 make bench-scoring
	$(BIN)/python -m scripts.bench_scoring --size $(SIZE)

bench-path: $(STAMP) ## The real user path through the gateway: SIZE=1000000 make bench-path
	$(BIN)/python -m scripts.bench_path --size $(SIZE)

bench-credit: $(STAMP) ## Credit-line recomputation and idempotency under concurrency
	$(BIN)/python -m scripts.bench_credit

bench-policy: $(STAMP) ## Policy matching for 5,036 and 1,000,000 enterprises
	$(BIN)/python -m scripts.bench_policy

bench-validation: $(STAMP) ## Model validation (AUC/KS with bootstrap, PSI/CSI, migration, fairness) of 1,000,000 firms
	$(BIN)/python -m scripts.bench_validation

bench-gateway: $(STAMP) ## Gateway overhead against direct calls (needs wrk)
	$(BIN)/python -m scripts.bench_gateway

bench-read: $(STAMP) ## The score read on one scoring worker against its /healthz (needs wrk)
	$(BIN)/python -m scripts.bench_read

bench-load: $(STAMP) ## A realistic mix through the gateway with locust: throughput, p50/p99 per route
	$(BIN)/python -m scripts.bench_load

bench-routes: $(STAMP) ## CPU per request of each route of the load mix, per process (gateway, services, PostgreSQL)
	$(BIN)/python -m scripts.bench_routes

bench-portal: $(STAMP) chromium ## Portal pages: server time per page and bytes of a first 一图清 load
	$(BIN)/python -m scripts.bench_portal

config-docs: $(STAMP) ## Regenerate docs/configuration.md from the settings classes
	$(BIN)/python -m scripts.config_reference

clean: ## Stop the embedded PostgreSQL and remove var/
	-$(BIN)/python -m scripts.stop_embedded
	rm -rf var
