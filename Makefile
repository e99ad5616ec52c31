# Two commands do everything on a fresh machine: `make demo` (main job) and `make test`.
# Both create the virtualenv and install the pinned toolchain on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Exact versions come from constraints.txt; local wheels (e.g. a CPU build of torch) come
# from pip's own configuration (`pip config list`: find-links, index-url), not from here.
# The checkout's own runs keep their Verilator builds in the checkout (gitignored, removed
# by `make clean`); an installed eie uses ~/.cache/eie-ese/sim_build (docs/rtl.md).
export EIE_SIM_BUILD ?= $(CURDIR)/sim_build

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,cluster]'
	touch $@

demo: $(STAMP)
	$(BIN)/eie demo -o build/demo
	$(BIN)/eie demo --lstm -o build/demo_lstm

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q --runslow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/eie bench compiler
	$(BIN)/eie bench eie
	$(BIN)/eie bench ese

clean:
	rm -rf build sim_build .pytest_cache
