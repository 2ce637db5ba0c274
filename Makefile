# Todo Observability Lab. The two commands a newcomer needs: `make lab` and `make test`.
PYTHON ?= python3
# PYTHON=python3.13 (or 3.13) also finds a version pyenv has installed but not selected.
PY     := $(shell stack/find-python.sh $(PYTHON) || echo '$(PYTHON)')
# The versions we support and test: `make test` runs the whole suite on the venv's and the
# fast subset again on each other one this machine has (a venv each, .venv-X.Y).
PYTHON_VERSIONS := 3.11 3.12 3.13
VENV   := .venv
BIN    := $(VENV)/bin
# Reinstall when what is installed from changes: the lock file and pyproject.toml.
LOCKSUM := $(shell cat pyproject.toml requirements-lab.lock | cksum | cut -d' ' -f1)
LAB_STAMP  := $(VENV)/.lab-$(LOCKSUM)
TEST_STAMP := $(VENV)/.test-$(LOCKSUM)

.PHONY: lab test test-fast test-other-pythons test-docker install system-deps system-deps-test services lint lock down clean help

help:
	@echo "make lab    - install, bring the lab up, run a load and the notebooks, write a report"
	@echo "make test   - install what the tests need, then run the whole test suite"
	@echo "make test-fast - in-process and unit tests only (SQLite and PostgreSQL; no browser, no stack)"
	@echo "make down   - stop everything the lab started"
	@echo "make test-docker - the compose stack on a real Docker engine (builds every image)"
	@echo "make lint   - ruff and mypy only"
	@echo "make lock   - refresh requirements*.lock from pyproject.toml"

# `make lab PYTHON=python3.13` over a venv of another version makes the venv again.
PYVER = import sys; print("%d.%d" % sys.version_info[:2])
ifeq ($(origin PYTHON),command line)
ifneq ($(shell $(PY) -c '$(PYVER)' 2>&1),$(shell test -x $(BIN)/python && $(BIN)/python -c '$(PYVER)'))
.PHONY: $(VENV)/bin/python
endif
endif

$(VENV)/bin/python:
	@rm -rf $(VENV)
	@$(PY) -m venv $(VENV) || { \
	  echo "could not create $(VENV): install Python 3.11+ with venv (Debian/Ubuntu: sudo apt-get install python3-venv)"; \
	  rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip

# The lab: exactly the hashed versions of requirements-lab.lock (a room installing a month
# apart gets the same), then the project itself without resolving anything again.
$(LAB_STAMP): pyproject.toml requirements-lab.lock $(VENV)/bin/python
	$(BIN)/python -m pip install -q --require-hashes -r requirements-lab.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.lab-* $(VENV)/.test-*
	@touch $@

# The tests add their extras (pytest, playwright, linters), held to the lock's versions
# where they share a package.
$(TEST_STAMP): $(LAB_STAMP)
	@sed -n 's/^\([A-Za-z0-9][^ ]*==[^ ;]*\).*/\1/p' requirements-lab.lock > $(VENV)/lab-constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/lab-constraints.txt -e '.[test,lab,dev]'
	@touch $@

install: $(LAB_STAMP)

# System packages: the lab's (caddy, prometheus); the tests add chromium. Debian/Ubuntu: apt;
# macOS: Homebrew; elsewhere the script says what to install.
system-deps:
	@stack/install-system-deps.sh lab

system-deps-test:
	@stack/install-system-deps.sh test

# PostgreSQL and Redis for the tests: started when they are not running.
services:
	@stack/ensure-services.sh

# The one-command lab: stack up, a load run with a short injected fault, every notebook
# executed, an HTML report under reports/. The stack keeps running; `make down` stops it.
lab: install system-deps
	$(BIN)/lab demo

down:
	@test -x $(BIN)/lab && $(BIN)/lab down || true

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file per process at a time
# (its module's stacks stay in one process); every stack has its own ports and databases.
# TEST_WORKERS=0 runs it in this process alone.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: $(TEST_STAMP) system-deps-test services
	$(BIN)/python -m pytest $(XDIST)
	@$(MAKE) --no-print-directory test-other-pythons

test-other-pythons:
	@main=$$($(BIN)/python -c '$(PYVER)'); \
	for v in $(PYTHON_VERSIONS); do \
	  [ "$$v" = "$$main" ] && continue; \
	  py=$$(stack/find-python.sh $$v) || { echo "Python $$v: not on this machine, its fast tests skipped"; continue; }; \
	  echo "Python $$v: the fast tests, with $$py"; \
	  $(MAKE) --no-print-directory test-fast VENV=.venv-$$v PYTHON=$$py || exit 1; \
	done

# The quick loop while coding: no Debian packages installed, no processes of the stack
# started, no browser; PostgreSQL and Redis must answer (started here when they are not).
FAST := not slow and not stack and not browser
test-fast: $(TEST_STAMP) services
	$(BIN)/python -m pytest $(XDIST) -m "$(FAST)"

# The compose stack on a real Docker engine, as a workshop room starts it (tests/docker/):
# installs Docker when missing, starts its own dockerd when none answers (stopped after).
test-docker: $(TEST_STAMP)
	tests/docker/run.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# One lock for every supported Python and platform (markers where they differ), from the
# oldest version up; `make test` installs it on each version it finds.
LOCK_FOR := --universal --python-version $(firstword $(PYTHON_VERSIONS)) --generate-hashes
lock: $(TEST_STAMP)
	$(BIN)/uv pip compile pyproject.toml -q $(LOCK_FOR) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -q $(LOCK_FOR) --extra lab -o requirements-lab.lock

clean: down
	rm -rf var reports
