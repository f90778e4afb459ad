# The two quick-start commands (README): `make demo` and `make test`. Each installs what it
# needs into .venv (and .venv-wire for the wire-protocol test server), once.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
WIRE := .venv-wire
BIN := $(VENV)/bin

.PHONY: demo demo-molten-salt test lint install install-wire install-tools install-cp2k bench-db clean

install: $(VENV)/.installed
install-wire: $(WIRE)/.installed

# torch goes first and pinned: this takes the CPU wheel; unpinned, pip pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $@

# mongoeco (the MongoDB wire-protocol test server) needs Python >= 3.13, in its own venv.
$(WIRE)/.installed:
	py313=""; \
	for c in python3.13 "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do \
	  if "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then py313=$$c; fi; \
	done; \
	test -n "$$py313" || { echo "python3.13 not found: needed for the wire-protocol tests" >&2; exit 1; }; \
	test -x $(WIRE)/bin/python || "$$py313" -m venv $(WIRE)
	$(WIRE)/bin/python -m pip install --quiet 'mongoeco[wire]>=4.11'
	touch $@

# Debian's chromium for the dashboard's browser tests (Playwright drives it; it never
# downloads a browser of its own) and Debian's docker-compose to check docker/compose.yaml
# (no Docker engine is needed for that), and Debian's cp2k (cp2k_shell), the periodic
# labelling engine. Needs root, as on CI and the development machines.
install-tools:
	command -v chromium >/dev/null && command -v docker-compose >/dev/null \
	  && command -v cp2k_shell >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq chromium docker-compose cp2k >/dev/null; }

# Only Debian's cp2k, for the molten-salt demo.
install-cp2k:
	command -v cp2k_shell >/dev/null || { \
	  apt-get update -qq && apt-get install -y -qq cp2k >/dev/null; }

demo: install
	$(BIN)/aloop run configs/demo-water.yaml

# The periodic demo: molten MgCl2 labelled by CP2K, then its density against temperature.
demo-molten-salt: install install-cp2k
	$(BIN)/aloop run configs/demo-molten-salt.yaml
	$(BIN)/aloop density configs/demo-molten-salt.yaml --steps 2000 --equilibration 500 \
	  --walkers 1 --barostat-time-fs 500

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects nothing, which fails this target like any other error.
test: lint install-wire install-tools
	ALOOP_REQUIRE_WIRE=1 ALOOP_REQUIRE_BROWSER=1 ALOOP_REQUIRE_COMPOSE=1 ALOOP_REQUIRE_DASK=1 ALOOP_REQUIRE_CP2K=1 ALOOP_TEST_WIRE_PYTHON=$(WIRE)/bin/python $(BIN)/python -m pytest

bench-db: install install-wire
	ALOOP_TEST_WIRE_PYTHON=$(WIRE)/bin/python $(BIN)/python benchmarks/db_bench.py

clean:
	rm -rf $(VENV) $(WIRE) .pytest_cache .ruff_cache
