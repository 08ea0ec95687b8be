# jcomrl — the two commands are `make run` and `make test`; both install into .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The install is redone whenever setup.py changes (stamp keyed on its hash).
STAMP := $(VENV)/.installed-$(shell sha1sum setup.py | cut -c1-12)

# JAX persistent compilation cache (git-ignored) shared by every target.
export JAX_COMPILATION_CACHE_DIR := $(CURDIR)/.jax_cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0.5
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES := 0
export XLA_PYTHON_CLIENT_PREALLOCATE := false
export PYTHONUNBUFFERED := 1

RUN_DIR ?= runs/default
ENV ?= point_robot
QUALITY ?= mixed
ALGO ?= focal
SEEDS ?= 1

.PHONY: install run test data train evaluate bench lint clean

install: $(STAMP)

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The main job on the embedded small default: point-robot data -> FOCAL -> held-out evaluation.
run: $(STAMP)
	$(PY) -m experiments.run_default --workdir=$(RUN_DIR)

test: $(STAMP)
	$(PY) -m pytest -q tests

data: $(STAMP)
	$(PY) -m experiments.collect --config=experiments/configs/data.py:$(ENV) --config.quality=$(QUALITY)

train: $(STAMP)
	$(PY) -m experiments.train --config=experiments/configs/$(ALGO).py:$(ENV) --workdir=runs/$(ALGO)_$(ENV)

evaluate: $(STAMP)
	$(PY) -m experiments.evaluate --workdir=runs/$(ALGO)_$(ENV)

lint: $(STAMP)
	$(PY) -m ruff check jcomrl experiments benchmarks tests

clean:
	rm -rf runs .jax_cache .pytest_cache
