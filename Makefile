# stacrrn: two commands on a fresh machine
#   make demo   set everything up, start loopback S3 + STAC API with sample scenes, run the
#               STAC pipeline end to end, print where the results are and the scores
#               (make demo DATA=../shared/data/sentinel2_aber_tiles_4x4 RGB=3,2,1 for real imagery)
#   make test   set everything up and run the full test suite (lint, import layers, docs site, tests)
#   make plugin build the QGIS plugin zip (dist/stacrrn_qgis-<version>.zip), see docs/qgis.md
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# QGIS's Python (Debian's python3-qgis) and a venv on top of it with stacrrn, for the plugin tests
QGIS_PYTHON ?= /usr/bin/python3
QGIS_VENV := .qgis-venv
QGIS_STAMP := $(QGIS_VENV)/.installed

.PHONY: setup demo test lint docs bench clean plugin qgis-venv qgis-test-env

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# bytecode as a regular pip install writes it (an editable install under PYTHONDONTWRITEBYTECODE
# would otherwise be compiled again by every process: 0.1-0.15 s each)
setup: $(STAMP)
	$(BIN)/python -m compileall -q stacrrn

# --system-site-packages sees QGIS's bindings; --ignore-installed keeps Debian's older packages
# (attrs 22 breaks affine 3) out of stacrrn's way; -e: the tests run the working tree's stacrrn
$(QGIS_STAMP): pyproject.toml
	$(QGIS_PYTHON) -m venv --system-site-packages $(QGIS_VENV)
	$(QGIS_VENV)/bin/pip install -q --ignore-installed -e .
	touch $(QGIS_STAMP)

qgis-venv: $(QGIS_STAMP)

# the QGIS venv when QGIS's Python bindings are installed; otherwise the plugin tests skip
qgis-test-env:
	@if $(QGIS_PYTHON) -c "import qgis.core" >/dev/null 2>&1; then $(MAKE) --no-print-directory qgis-venv; \
	else echo "no QGIS Python bindings in $(QGIS_PYTHON) (apt-get install python3-qgis): QGIS plugin tests will skip"; fi

plugin:
	$(PYTHON) qgis_plugin/build.py dist

demo: setup
	$(BIN)/stacrrn demo --out demo-output $(if $(DATA),--data $(DATA)) $(if $(RGB),--rgb $(RGB))

lint: setup
	$(BIN)/ruff check stacrrn tests benchmarks qgis_plugin docs/hooks
	$(BIN)/ruff format --check stacrrn tests benchmarks qgis_plugin docs/hooks
	$(BIN)/mypy --strict stacrrn
	$(BIN)/lint-imports --no-cache

# the documentation site (mkdocs-material + mkdocstrings), built strictly outside the repository;
# `$(BIN)/mkdocs serve` shows it on http://127.0.0.1:8000
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d $$(mktemp -d)

test: lint docs qgis-test-env
	$(BIN)/python -m pytest -n 2 -q tests

bench: setup
	$(BIN)/python benchmarks/bench_mosaic.py
	$(BIN)/python benchmarks/bench_stac.py
	$(BIN)/python benchmarks/bench_timeseries.py
	$(BIN)/python benchmarks/bench_scaling.py
	$(BIN)/python benchmarks/bench_cores.py
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/bench_small.py
	$(BIN)/python benchmarks/bench_many.py
	$(BIN)/python benchmarks/bench_statistics_store.py
	$(BIN)/python benchmarks/bench_cube.py

clean:
	rm -rf $(VENV) $(QGIS_VENV) demo-output benchmarks/out dist
