# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything they need (venv, packages, Kafka jars) is installed on the way.
PY      ?= python3.11
DEMO_ARGS ?=
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    := var/demo

.PHONY: setup demo demo-secure demo-stop test unit lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/python -c "from bus.adapters.broker import ensure_jars; ensure_jars()"

demo: setup
	$(BIN)/python -m bus.demo --dir $(DEMO) $(DEMO_ARGS)

demo-secure: setup
	$(BIN)/python -m bus.demo --dir $(DEMO) --secure $(DEMO_ARGS)

demo-stop:
	-$(BIN)/bus broker stop --dir $(DEMO)/broker

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench.throughput

clean:
	rm -rf var .pytest_cache .hypothesis
