# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE := ../shared/data/oco2peak/oco2_orbit11522_20160831_segment_300-800km.csv
# The demo keeps its simulated products in a scratch store inside the clone, never in the store
# HUBKIT_STORE names (on the hub that one is shared); `make demo DEMO_STORE=URL` picks another
# (a directory, s3://bucket/prefix or memory://name).
DEMO_STORE ?= $(CURDIR)/hubkit-demo/store

.PHONY: demo test bench hub lint venv clean

# uv installs the same packages as pip in a fraction of the time and says what it does (resolved,
# downloaded, installed, one line each; progress bars on a terminal). Taken from PATH when there,
# else bootstrapped into the venv with pip (one wheel, a few seconds); `make demo UV=/path/to/uv`
# uses another.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(BIN)/uv)
INSTALL = $(UV) pip install --python $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check uv

# the library and what the demo needs
$(VENV)/.core: pyproject.toml | $(BIN)/python $(UV)
	$(INSTALL) -e .
	touch $@

# plus what the tests and benchmarks need
$(VENV)/.test: $(VENV)/.core pyproject.toml
	$(INSTALL) -e ".[test]"
	touch $@

# plus what `hubkit hub` needs, and nothing of the test extra (the `local-hub` extra)
$(VENV)/.hub: $(VENV)/.core pyproject.toml
	$(INSTALL) -e ".[local-hub]"
	touch $@

# plus the reference implementations the benchmarks compare against
$(VENV)/.bench: $(VENV)/.test pyproject.toml
	$(INSTALL) -e ".[test,bench]"
	touch $@

# benchmarks.letkf's reference, DAPPER: 1.8 needs Python >= 3.12 (the bench extra has it there);
# on 3.11, 1.7.1 pins notebook<7, which would move jupyter_client and ipykernel under the tests:
# it goes in without its dependencies, beside the small ones it imports
$(VENV)/.dapper: $(VENV)/.bench
	if $(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then \
	  $(INSTALL) colorama dill ipdb mpl-tools pathos patlib pyyaml struct-tools tabulate && \
	  $(INSTALL) --no-deps "dapper==1.7.1"; fi
	touch $@

# benchmarks.openghg's reference, OpenGHG 0.19: it needs zarr<3 (hubkit: zarr>=3), so it lives in
# a virtual environment of its own
OPENGHG_VENV ?= .venv-openghg
$(OPENGHG_VENV)/bin/python: | $(UV)
	$(PYTHON) -m venv $(OPENGHG_VENV)
	$(UV) pip install --python $(OPENGHG_VENV)/bin/python "openghg==0.19.*"

venv: $(VENV)/.test

# the main job: simulate, upload, run the processing chain on a LocalCluster, write
# ./hubkit-demo/report.html (maps, step timings, per-day processing report)
demo: $(VENV)/.core
	$(BIN)/hubkit demo --store "$(DEMO_STORE)" --out hubkit-demo $(if $(wildcard $(SAMPLE)),--input $(SAMPLE))

test: $(VENV)/.test
	$(BIN)/python -m pytest

bench: $(VENV)/.dapper $(OPENGHG_VENV)/bin/python
	HUBKIT_OPENGHG_PYTHON="$(abspath $(OPENGHG_VENV))/bin/python" \
	  $(BIN)/python -m benchmarks $(BENCH_ARGS)

# JupyterHub + Dask Gateway + the local store on 127.0.0.1 (prints the URL and a password)
hub: $(VENV)/.hub
	$(BIN)/hubkit hub $(HUB_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check hubkit tests benchmarks

clean:
	rm -rf $(VENV) $(OPENGHG_VENV) hubkit-demo .hubkit-demo .pytest_cache
