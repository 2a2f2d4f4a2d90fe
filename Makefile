# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE := ../shared/data/oco2peak/oco2_orbit11522_20160831_segment_300-800km.csv
# The demo keeps its products in a local directory store inside the clone, unless HUBKIT_STORE
# names another store (a directory, s3://bucket/prefix or memory://name).
DEMO_STORE := $(or $(HUBKIT_STORE),$(CURDIR)/hubkit-demo/store)

.PHONY: demo test bench hub lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the library and what the demo needs
$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# plus what the tests and benchmarks need
$(VENV)/.test: $(VENV)/.core pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# plus the reference implementations the benchmarks compare against
$(VENV)/.bench: $(VENV)/.test pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@

venv: $(VENV)/.test

# the main job: simulate, upload, run the processing chain on a LocalCluster, write
# ./hubkit-demo/report.html (maps, step timings, per-day processing report)
demo: $(VENV)/.core
	$(BIN)/hubkit demo --store "$(DEMO_STORE)" --out hubkit-demo $(if $(wildcard $(SAMPLE)),--input $(SAMPLE))

test: $(VENV)/.test
	$(BIN)/python -m pytest

bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# JupyterHub + Dask Gateway + the local store on 127.0.0.1 (prints the URL and a password)
hub: $(VENV)/.test
	$(BIN)/hubkit hub $(HUB_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check hubkit tests benchmarks

clean:
	rm -rf $(VENV) hubkit-demo .hubkit-demo .pytest_cache
