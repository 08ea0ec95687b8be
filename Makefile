# jcomrl — the two commands are `make run` and `make test`; both install into .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The install is redone whenever pyproject.toml changes (stamp keyed on its hash).
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

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
# Extra flags for train / evaluate, e.g. ARGS="--config.num_steps=2000 --config.num_seeds=4".
ARGS ?=

.PHONY: install run test data train evaluate lint clean

install: $(STAMP)

# torch (the `torch` extra: converting the official PyTorch behaviour agents, and its test in
# `make test`) is installed first, as the CPU wheel from PyTorch's CPU index, so that nothing
# later resolves it to the CUDA wheel PyPI serves on Linux (GiBs, useless on CI's GPU-less
# machines); jcomrl's own code never needs torch on a GPU. An installed torch in range is kept
# (pip does not reinstall a satisfied requirement), so the step is idempotent. TORCH_SPEC is
# pyproject.toml's `torch` extra (tests/test_official_checkpoints.py checks they agree). A
# machine that cannot reach the index takes a wheel pip finds elsewhere (find-links, a local
# index: no retries, so an unreachable host costs seconds) or goes on without torch, warned.
TORCH_SPEC := torch>=2.2,<3
TORCH_INDEX := https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --retries 0 --timeout 15 --index-url $(TORCH_INDEX) '$(TORCH_SPEC)' || \
	  echo 'make install: WARNING: torch (the torch extra) did not install; its tests will be skipped'
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# The main job on the embedded small default: point-robot data -> FOCAL -> held-out evaluation.
run: $(STAMP)
	$(PY) -m experiments.run_default --workdir=$(RUN_DIR)

# `make test`: the default tier, every test not marked slow (about 2 minutes on 2 quiet cores with
# a warm compilation cache, 6.5 cold; every package has correctness tests in it). `make test-all`:
# the whole suite (CI runs both). Both run over TEST_WORKERS pytest-xdist workers (default 2:
# XLA compiles one program per core, so two workers halve the cold compile; TEST_WORKERS=0 runs
# in one process) in file order (`-p no:randomly`: pytest-randomly, a dev extra, would shuffle
# every plain pytest run). `make test-random`: the default tier in a random order over 2 xdist
# workers, a check that no test depends on another's state; SEED=N repeats an order, it is
# printed first. Which test is in which tier and why: tests/README.md. `make mutants`: the
# mutation check of the tests (tools/mutants.py).
.PHONY: test-all test-fast test-random mutants
TEST_WORKERS ?= 2
XDIST := $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS),)

test: $(STAMP)
	$(PY) -m pytest -q -p no:randomly $(XDIST) -m "not slow" tests

test-all: $(STAMP)
	$(PY) -m pytest -q -p no:randomly $(XDIST) tests

test-fast: test

SEED ?=
test-random: $(STAMP)
	@seed=$(if $(SEED),$(SEED),$$RANDOM$$RANDOM); \
	  echo "random order, seed $$seed (make test-random SEED=$$seed repeats it)"; \
	  $(PY) -m pytest -q -m "not slow" -p randomly --randomly-seed=$$seed -n 2 tests

mutants: $(STAMP)
	$(PY) -m tools.mutants --tier both --out benchmarks/results/mutants

data: $(STAMP)
	$(PY) -m experiments.collect --config=experiments/configs/data.py:$(ENV) --config.quality=$(QUALITY)

# Dataset report (per-task return per behaviour checkpoint + plot) of `make data`'s output.
DATA_DIR ?= data/$(ENV)_$(QUALITY)
.PHONY: inspect bench-collect
inspect: $(STAMP)
	$(PY) -m experiments.inspect_data $(DATA_DIR)

# Collection / behaviour-training throughput per env (CPU sizes, ~10 min on 2 cores).
bench-collect: $(STAMP)
	$(PY) -m benchmarks.collect_throughput

train: $(STAMP)
	$(PY) -m experiments.train --config=experiments/configs/$(ALGO).py:$(ENV) --workdir=runs/$(ALGO)_$(ENV) $(ARGS)

evaluate: $(STAMP)
	$(PY) -m experiments.evaluate --workdir=runs/$(ALGO)_$(ENV) $(ARGS)

# Sweeps: presets x envs, seeds vmapped in one process per pair, every protocol evaluated from
# the saved checkpoints; finished pairs are skipped, killed ones resumed. `make table` aggregates.
# SEEDS empty = experiments.sweep's default (3); SET = config overrides for every run, e.g.
# SET="num_steps=2000 hparams.discount=0.95".
ALGOS ?= focal csro unicorn_ss
ENVS ?= point_robot
SEEDS ?=
SET ?=
RUNS_ROOT ?= runs/sweep
TABLE_OUT ?= $(RUNS_ROOT)/table
TABLE_PROTOCOLS ?= iid,ood
EXAMPLE_ALGOS ?= focal csro unicorn_ss unicorn_sup supervised corro oracle
.PHONY: sweep table example-sweep

sweep: $(STAMP)
	$(PY) -m experiments.sweep --algos="$(ALGOS)" --envs="$(ENVS)" --runs_root=$(RUNS_ROOT) \
	  $(if $(SEEDS),--seeds=$(SEEDS)) $(foreach s,$(SET),--set=$(s)) $(ARGS)

table: $(STAMP)
	$(PY) -m experiments.table --runs_root=$(RUNS_ROOT) --out=$(TABLE_OUT) --protocols=$(TABLE_PROTOCOLS)

# The small documented example (point-robot, 3 presets + oracle, 3 seeds; CPU, minutes); its
# output is kept in benchmarks/results/example_sweep/.
example-sweep: $(STAMP)
	$(PY) -m experiments.sweep --algos="$(EXAMPLE_ALGOS)" --envs=point_robot --seeds=3 --runs_root=runs/example_sweep
	$(PY) -m experiments.table --runs_root=runs/example_sweep --out=benchmarks/results/example_sweep --protocols=iid,ood,online,task_ood

# Every preset on point-robot: the MLP-backbone presets, BOReL and MACAW at their
# point-robot settings; the four decision-transformer presets at the CPU profile's DT reduction
# (4 segments per task, GPT width 64, meta-batch 8) and 1500 updates (at Prompt-DT's size one
# point-robot update took ~2 s on 2 cores). 3 seeds, IID / OOD / task-OOD / z-shuffled; output in
# benchmarks/results/point_robot_all.
ALL_RUNS ?= runs/point_robot_all
.PHONY: all-presets-table
all-presets-table: $(STAMP)
	$(PY) -m experiments.sweep --algos="focal csro unicorn_ss unicorn_sup supervised corro oracle borel macaw" \
	  --envs=point_robot --seeds=3 --runs_root=$(ALL_RUNS) --protocols=iid,ood,task_ood,z_shuffle
	$(PY) -m experiments.sweep --algos="prompt_dt unicorn_ss_dt unicorn_sup_dt focal_dt" \
	  --envs=point_robot --seeds=3 --runs_root=$(ALL_RUNS) --protocols=iid,ood,task_ood,z_shuffle \
	  --set=learner.rl_batch_size=4 --set=learner.dt.embed=64 --set=learner.meta_batch_size=8 \
	  --set=num_steps=1500
	$(PY) -m experiments.table --runs_root=$(ALL_RUNS) --out=benchmarks/results/point_robot_all \
	  --protocols=iid,ood,task_ood,z_shuffle

# One UNICORN-Table-2-style table per env: dataset (reused or generated), the seven
# presets x 3 seeds, IID/OOD/z-shuffle/diagnostics, table + curves + code plots in
# benchmarks/results/paper_$(PROFILE)/$(ENV). PROFILE=cpu: the 2-core CPU profile; PROFILE=paper:
# full scale (a GPU; benchmarks/gpu_session.sh). Resumable: rerun the same command after a kill.
# RECIPE=per_task (default: one SAC agent per task, snapshot rollouts) | fast (one shared SAC
# agent's whole replay buffer; table in benchmarks/results/paper_$(PROFILE)/$(ENV)_fast) |
# official (the papers' per-task SAC recipe and its whole replay buffer; hours on 2 cores).
PROFILE ?= cpu
RECIPE ?= per_task
PAPER_ENV ?= $(if $(filter point_robot,$(ENV)),cheetah_vel,$(ENV))
.PHONY: paper
paper: $(STAMP)
	$(PY) -m experiments.paper --env=$(PAPER_ENV) --profile=$(PROFILE) --recipe=$(RECIPE) \
	  $(if $(SEEDS),--seeds=$(SEEDS)) \
	  $(foreach s,$(SET),--set=$(s)) $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check jcomrl experiments benchmarks tests tools
	$(PY) -m tools.import_graph
	$(PY) -m tools.long_functions

clean:
	rm -rf runs .jax_cache .pytest_cache build dist
