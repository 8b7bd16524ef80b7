# Two commands on a fresh machine (Python 3.11+ and a C compiler):
#   make demo   - set up .venv, build the compiled core, run the demo
#   make test   - set up .venv, build the compiled core, run lint, types and tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.solvent-installed

.PHONY: demo test lint bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall (and recompile the core) when the build inputs change.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard ext/*.pyx) $(wildcard ext/solvent/*.pxd)
	$(PY) -m pip install --quiet "setuptools>=77" wheel "Cython>=3.0"
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/solvent demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test: $(STAMP) lint
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/solvent bench --json

bench-quick: $(STAMP)
	$(VENV)/bin/solvent bench --quick --json

clean:
	rm -rf $(VENV) build src/*.egg-info src/solvent/*.so ext/*.c
