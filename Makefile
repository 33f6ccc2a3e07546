# stacrrn: two commands on a fresh machine
#   make demo   set everything up, start loopback S3 + STAC API with sample scenes, run the
#               STAC pipeline end to end, print where the results are and the scores
#               (make demo DATA=../shared/data/sentinel2_aber_tiles_4x4 for real imagery)
#   make test   set everything up and run the full test suite (lint + tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/stacrrn demo --out demo-output $(if $(DATA),--data $(DATA))

lint: setup
	$(BIN)/ruff check stacrrn tests benchmarks
	$(BIN)/mypy --strict stacrrn

test: lint
	$(BIN)/python -m pytest -n 2 -q tests

bench: setup
	$(BIN)/python benchmarks/bench_mosaic.py
	$(BIN)/python benchmarks/bench_stac.py
	$(BIN)/python benchmarks/bench_timeseries.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_peers.py

clean:
	rm -rf $(VENV) demo-output benchmarks/out
