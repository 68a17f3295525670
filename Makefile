# Development, test and demo targets. Each target installs what it needs, so `make demo` and
# `make test` work on a fresh clone with only Python 3.10+ on the machine. Stamp files skip
# an install on later calls until pyproject.toml or meltano.yml changes.

PYTHON ?= python3
MELTANO_VERSION ?= 4.4.1
EMULATOR_PORT ?= 8765

VENV := .venv
# Meltano lives in its own venv: it pins and upgrades its dependencies (SQLAlchemy, click,
# structlog, ...) on its own schedule, independently of singer-sdk.
MELTANO_VENV := .venv-meltano
MELTANO := $(MELTANO_VENV)/bin/meltano

VENV_STAMP := $(VENV)/.make-installed
MELTANO_STAMP := $(MELTANO_VENV)/.make-installed-$(MELTANO_VERSION)
DEMO_PLUGINS_STAMP := .meltano/.make-demo-plugins
TEST_PLUGINS_STAMP := .meltano/.make-test-plugins

.PHONY: help venv meltano demo test lint format bench clean distclean

help:
	@echo "make venv       create $(VENV) with the tap and its dev tools"
	@echo "make meltano    create $(MELTANO_VENV) with meltano $(MELTANO_VERSION)"
	@echo "make demo       sync the local emulator into output/demo.duckdb and print row counts"
	@echo "make test       ruff, mypy and pytest (PostgreSQL tests need a server on 127.0.0.1:5432)"
	@echo "make lint       ruff check, ruff format --check and mypy"
	@echo "make bench      benchmark the tap against local emulators (about 5 minutes) and write docs/benchmarks.md"
	@echo "make format     apply ruff format and the safe ruff fixes"
	@echo "make clean      remove output/ (demo database and tokens) and tool caches"
	@echo "make distclean  clean, and also remove .meltano/ (plugins and Meltano state) and both venvs"

venv: $(VENV_STAMP)

meltano: $(MELTANO_STAMP)

$(VENV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

$(MELTANO_STAMP):
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MELTANO_VENV)/bin/python -m pip install --quiet 'meltano[postgres]==$(MELTANO_VERSION)'
	touch $@

# The extractor is installed with `pip_url: -e .[postgres]`, so a change of pyproject.toml
# reinstalls it. Meltano's postgres extra lets its state live in PostgreSQL (the fleet tests).
$(DEMO_PLUGINS_STAMP): $(MELTANO_STAMP) meltano.yml pyproject.toml
	$(MELTANO) install tap-baidu-tongji target-duckdb
	touch $@

# The tests load into PostgreSQL, and the demo and leak-scan tests into DuckDB.
$(TEST_PLUGINS_STAMP): $(MELTANO_STAMP) meltano.yml pyproject.toml
	$(MELTANO) install tap-baidu-tongji target-postgres target-duckdb
	touch $@

demo: $(VENV_STAMP) $(DEMO_PLUGINS_STAMP)
	$(VENV)/bin/python scripts/demo.py --port $(EMULATOR_PORT) --meltano $(MELTANO)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Starts its own emulators on 127.0.0.1; see docs/benchmarks.md for the figures.
bench: $(VENV_STAMP)
	$(VENV)/bin/python -m benchmarks.run

format: $(VENV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# pytest's own exit status is kept, so a run that collects no tests (status 5) fails too.
test: lint $(TEST_PLUGINS_STAMP)
	$(VENV)/bin/pytest

clean:
	rm -rf output .mypy_cache .ruff_cache .pytest_cache .hypothesis dist
	find . -name __pycache__ -type d -not -path './.venv*' -prune -exec rm -rf {} +

# .meltano/ also contains meltano.db, the bookmarks of every environment, so only distclean
# removes it.
distclean: clean
	rm -rf .meltano $(VENV) $(MELTANO_VENV)
