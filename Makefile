# Two entry points for a fresh clone: `make demo` (install, index the bundled data, ask a
# question) and `make test` (install, run the tests). Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/qsearch build-index
	$(BIN)/qsearch query "How old are you?" "How can I learn Python quickly?"

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	cd benchmarks && ../$(BIN)/python search_bench.py && ../$(BIN)/python scale.py && ../$(BIN)/python compare.py
