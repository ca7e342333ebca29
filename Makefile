# Assay — the two commands: `make run` (demo audit) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --disable-pip-version-check -q
export DO_NOT_TRACK := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint typecheck pytest bench sysdeps fixtures clean test-postgres docker

# System libraries WeasyPrint needs for the PDF, and poppler-utils for pdftotext/pdftoppm.
SYSDEPS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libfontconfig1 fonts-dejavu-core poppler-utils
sysdeps:
	@missing=""; \
	for p in $(SYSDEPS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Assay needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e . --config-settings editable_mode=compat
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	@touch $@ $(VENV)/.installed-run

run: sysdeps $(VENV)/.installed-run
	$(BIN)/assay demo --out assay-demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check service tests bench fixtures/build.py
	$(BIN)/mypy service

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=600 $(PYTEST_ARGS)

test: sysdeps lint pytest

bench: sysdeps $(VENV)/.installed-dev
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Storage (and API) tests on a throw-away local PostgreSQL, installed from Debian packages if missing.
test-postgres: $(VENV)/.installed-dev
	bash tests/store/run_postgres.sh $(PYTEST_ARGS)

fixtures: $(VENV)/.installed-dev
	$(BIN)/python fixtures/build.py

clean:
	rm -rf $(VENV) assay-demo .mypy_cache .ruff_cache .pytest_cache
