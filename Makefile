# Two commands: `make run` sets up and serves; `make test` sets up and passes the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench load fuzz schema clean web screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The dashboard (web/ -> web/dist), rebuilt when its sources or the schema change. Without
# Node.js the API still serves; this says once what to install for the dashboard.
WEB_SOURCES := $(shell find web/src web/index.html web/graphiql.html web/vite.config.ts \
	web/codegen.ts web/tsconfig.json web/package.json web/package-lock.json -type f \
	-not -path 'web/src/gql/*' 2>/dev/null) schema.graphql

web/dist/index.html: $(WEB_SOURCES)
	@if command -v npm >/dev/null 2>&1; then \
		cd web && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
			npm ci --no-audit --no-fund; } && npm run build; \
	else \
		echo "coinql: npm not found, so the dashboard is not built; install Node.js 20+ for it"; \
	fi

web: web/dist/index.html

run: $(VENV)/.installed web
	$(BIN)/coinql migrate
	$(BIN)/coinql serve --host $${COINQL_HOST:-127.0.0.1} --port $${COINQL_PORT:-8000}

# Coverage is measured and held to its floors (pyproject.toml, tests/conftest.py).
# The app's own logic (Vitest) first; pytest last, with the browser tests, for CI to read.
test: $(VENV)/.installed-dev web
	@if command -v npm >/dev/null 2>&1; then cd web && npm test; fi
	$(BIN)/pytest --cov $(PYTEST_ARGS)

# The README's screenshots, taken by the browser tests (on SQLite).
screenshots: $(VENV)/.installed-dev web
	COINQL_SCREENSHOT_DIR=docs/screenshots $(BIN)/pytest tests/browser -k sqlite -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks scripts examples
	$(BIN)/ruff format --check src tests benchmarks scripts examples
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src tests benchmarks scripts examples
	$(BIN)/ruff format src tests benchmarks scripts examples

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

load: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.load

# schemathesis over the GraphQL endpoint; CI runs it with FUZZ_ARGS="--examples 5 --min-requests 200".
fuzz: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.fuzz $(FUZZ_ARGS)

schema: $(VENV)/.installed
	$(BIN)/coinql export-schema --output schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
