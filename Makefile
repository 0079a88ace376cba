# Pitlane: two commands matter on a fresh machine — `make up` and `make test`.
# The tool chain (uv, pinned) is bootstrapped into .tools/ with the machine's python3, never into the
# system Python; the locked environment is synced into .venv/.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
RUN := $(UV) run --locked --no-sync
PYTEST_ARGS ?=

.PHONY: up test lint bench mutation schemas catalog contracts sync clean-data status

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml
	$(UV) sync --locked --compile-bytecode
	@touch $@

# The AsyncAPI parser (npm) the contract tests validate the event catalog with, from its lockfile; no install
# scripts run (a dependency's would only report the download).
ASYNCAPI_CHECK := tests/contract/asyncapi
$(ASYNCAPI_CHECK)/node_modules/.package-lock.json: $(ASYNCAPI_CHECK)/package-lock.json
	npm ci --prefix $(ASYNCAPI_CHECK) --ignore-scripts --no-audit --no-fund

sync: .venv/.synced $(ASYNCAPI_CHECK)/node_modules/.package-lock.json

# On an empty data directory `make up` plays the demo chain (docs/running.md); PITLANE_DEMO=0 starts empty.
# Exported, not written before the command: make then runs pitlane without a shell in between, so Ctrl-C
# reaches it as it does when run by hand.
up: export PITLANE_DEMO ?= 1
up: sync
	$(RUN) pitlane up

status: sync
	$(RUN) pitlane status

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports
	@# One run per package: each has its own tests/conftest.py, which mypy would see as one module twice.
	@for package in libs/events libs/platform $(wildcard services/*/) bench mutation tests/contract tests/deploy; do \
		echo "mypy $$package"; $(RUN) mypy $$package || exit 1; \
	done

test: lint
	$(RUN) pytest $(PYTEST_ARGS)

bench: sync
	$(RUN) python -m bench

# Not part of `make test`: it runs the tests once per mutant (docs/testing.md). MUTATION_ARGS="workorder --fresh".
mutation: sync
	$(RUN) python -m mutation $(MUTATION_ARGS)

schemas: sync
	$(RUN) pitlane-events schemas --write

catalog: sync
	$(RUN) pitlane-events catalog --write

# What each consumer reads of the events it subscribes to, derived from its handlers (ADR 23); tests/contract
# fails while the committed file differs from the code.
contracts: sync
	$(RUN) python -m pitlane_platform.testing.consumer_reads --write tests/contract/consumers.json
