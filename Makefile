# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything they need (venv, packages, Kafka jars) is installed on the way.
PY      ?= python3.11
DEMO_ARGS ?=
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    := var/demo

.PHONY: setup system-tools demo demo-secure demo-stop test unit lint bench clean

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

# System tools some tests drive, from Debian's packages when missing: kcat reads our
# records as an ecosystem tool would (tests/integration/test_ecosystem_tools.py); chromium is
# the headless browser the console's tests drive through Playwright (never `playwright install`).
APT_TOOLS := kcat chromium
system-tools:
	@missing=""; for t in $(APT_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing from Debian's packages"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } >/dev/null 2>&1 \
	    || { echo "could not install$$missing (needs root and apt)"; exit 1; }; \
	fi

# Coverage of bus/ and connectors/ in the pytest process (unit and integration tests)
# ([tool.coverage] in pyproject.toml); fails under its `fail_under`. sys.monitoring is the
# cheaper core where it exists (3.12+); on 3.11 the C tracer.
CORE    := import sys; print("sysmon" if sys.version_info >= (3, 12) else "ctrace")

test: setup system-tools
	$(BIN)/ruff check .
	$(BIN)/bus schema check --all
	$(BIN)/mypy
	$(BIN)/coverage erase
	COVERAGE_FILE=$(CURDIR)/.coverage COVERAGE_CORE=$$($(BIN)/python -c '$(CORE)') $(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache .hypothesis .coverage .coverage.* htmlcov
