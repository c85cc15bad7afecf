# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .demo

.PHONY: demo phone test lint typecheck contracts pytest bench bench-quick clean system-deps config-doc reqtrace

$(STAMP): pyproject.toml
	@bash .ci/system-deps.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check daemon tui tests bench tools
	$(BIN)/ruff format --check daemon tui tests bench tools
	$(BIN)/python -m tools.reqtrace --check

# Regenerate docs/requirements.md from the tests' requirement tags (lint fails when stale).
reqtrace: $(STAMP)
	$(BIN)/python -m tools.reqtrace

# docs/configuration.md is generated from daemon/kairand/config.py (a test checks it is current).
config-doc: $(STAMP)
	$(BIN)/python -m kairand.configdoc --write

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck contracts pytest

demo: $(STAMP)
	$(BIN)/python -m kairand.demo --dir $(DEMO_DIR)

# The trainee's phone (研修用スマートフォン) of a running demo, in a second terminal: send the
# テスト送信先 code and see what the account sends it.
phone: $(STAMP)
	$(BIN)/python -m kairand.simulator.phone --dir $(DEMO_DIR)

bench: $(STAMP)
	@for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

bench-quick: $(STAMP)
	@for b in bench/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
