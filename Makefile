# evtrio: two commands on a fresh clone — `make run` (the demo) and `make test` (everything).
# Both create .venv on first use (isolated from system site-packages) and install the
# project into it, editable, with the `dev` extra.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
# The first interpreter on PATH that is Python >= 3.11.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

# Nothing from the user's environment may leak into the venv's interpreter.
unexport PYTHONPATH
export PYTHONNOUSERSITE := 1

.PHONY: all run test pytest lint docs bench venv clean peers
all: test

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: evtrio needs Python >= 3.11 on PATH" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/evtrio demo

lint: $(STAMP)
	$(BIN)/ruff check evtrio tests benchmarks examples
	$(BIN)/ruff format --check evtrio tests benchmarks examples
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs site

peers:
	@scripts/install-peers.sh

pytest: $(STAMP) peers
	$(BIN)/pytest

test: lint docs pytest

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) site build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
