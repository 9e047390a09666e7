# affect-tf: `make demo` and `make test` are the two commands a new user needs; both set up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp is newer than pyproject.toml once the install of its current contents succeeded,
# which makes `make setup` idempotent and cheap when nothing changed.
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup system venv test demo bench lint format clean

setup: system $(STAMP)

system:
	@bash scripts/bootstrap_system.sh

$(STAMP): pyproject.toml
	@bash scripts/check_python.sh $(PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)
	@echo "[setup] $(VENV) ready ($$(du -sh $(VENV) | cut -f1))"

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	AFFECT_OUTPUT_ROOT=$(DEMO_OUT) bash scripts/demo.sh

# One run of every benchmark -> benchmarks/results/benchmarks.json and docs/benchmarks.md
# (about 10 min on 2 cores; BENCH_ARGS=--quick: under 3), then the benchmark of record on real
# faces when ../shared/data/ferplus is there (FER+ Train -> Test, about 25 min per preset;
# skipped with one line when it is not; FERPLUS_ARGS=--presets demo,mobile).
bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.ferplus $(FERPLUS_ARGS)

lint: setup
	$(BIN)/ruff check affect_tf pipelines tests benchmarks
	$(BIN)/ruff format --check affect_tf pipelines tests benchmarks

format: setup
	$(BIN)/ruff check --fix affect_tf pipelines tests benchmarks
	$(BIN)/ruff format affect_tf pipelines tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
