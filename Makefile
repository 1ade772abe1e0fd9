# inlet: `make demo` runs the main job on the embedded default; `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
JSON_SERVER := .cache/node/node_modules/.bin/json-server
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo up test lint bench clean reference

$(BIN)/inlet: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; run: make PYTHON=python3 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# json-server (npm) is a real app the integration tests import from; skipped with a reason where npm is absent.
$(JSON_SERVER):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .cache/node json-server@0.17.4 --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the json-server tests will be skipped"; fi

demo: $(BIN)/inlet
	$(BIN)/inlet demo

up: $(BIN)/inlet
	$(BIN)/inlet up

test: $(BIN)/inlet
	@$(MAKE) --no-print-directory $(JSON_SERVER)
	@command -v chromium >/dev/null 2>&1 || echo "chromium not found: the browser tests are skipped (Debian: apt-get install chromium)"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile --no-loadscope-reorder

# docs/connector.schema.json and docs/connector-yaml.md, generated from connectors/spec.py
reference: $(BIN)/inlet
	$(BIN)/inlet connectors schema --out docs

lint: $(BIN)/inlet
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy .

# The benchmarks' own dependencies (dlt, py-spy): the `bench` extra, installed once.
$(VENV)/.bench: pyproject.toml $(BIN)/inlet
	$(BIN)/pip install -q -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench
	@$(MAKE) --no-print-directory $(JSON_SERVER)
	$(BIN)/python bench/full_import.py
	$(BIN)/python bench/full_import.py --source hubspot

clean:
	rm -rf $(VENV) .cache .inlet .mypy_cache .ruff_cache .pytest_cache
