# The two commands: `make run` (gateway on 127.0.0.1:5000, SQLite, local backend)
# and `make test`. Both install what they need into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
DATA ?= var/sample-data

.PHONY: setup run test bench sample-data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed sample-data

sample-data: $(VENV)/.installed
	$(BIN)/python -m processes.sampledata $(DATA)

run: setup
	$(BIN)/wps-gateway db upgrade
	SERVER_URL=$${SERVER_URL:-http://$(HOST):$(PORT)/wps} $(BIN)/wps-gateway serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache
