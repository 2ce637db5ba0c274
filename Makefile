# Todo Observability Lab. The two commands a newcomer needs: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: lab test test-fast install system-deps services lint lock down clean help

help:
	@echo "make lab    - install, bring the lab up, run a load and the notebooks, write a report"
	@echo "make test   - install what the tests need, then run the whole test suite"
	@echo "make test-fast - in-process and unit tests only (SQLite and PostgreSQL; no browser, no stack)"
	@echo "make down   - stop everything the lab started"
	@echo "make lint   - ruff and mypy only"
	@echo "make lock   - refresh requirements*.lock from pyproject.toml"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "could not create $(VENV): install Python 3.11+ with venv (Debian/Ubuntu: sudo apt-get install python3-venv)"; \
	  rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,lab,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# Debian packages the lab and the tests use (caddy, prometheus, chromium, ...).
system-deps:
	@stack/install-system-deps.sh

# PostgreSQL and Redis for the tests: started when they are not running.
services:
	@stack/ensure-services.sh

# The one-command lab: stack up, a load run with a short injected fault, every notebook
# executed, an HTML report under reports/. The stack keeps running; `make down` stops it.
lab: install system-deps
	$(BIN)/lab demo

down:
	@test -x $(BIN)/lab && $(BIN)/lab down || true

test: install system-deps services
	$(BIN)/python -m pytest

# The quick loop while coding: no Debian packages installed, no processes of the stack
# started, no browser; PostgreSQL and Redis must answer (started here when they are not).
FAST := not slow and not stack and not browser
test-fast: install services
	$(BIN)/python -m pytest -m "$(FAST)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

lock: install
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 --generate-hashes -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -q --python-version 3.11 --generate-hashes --extra lab -o requirements-lab.lock

clean: down
	rm -rf var reports
