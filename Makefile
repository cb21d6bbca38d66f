# Everything runs inside .venv, created on first use: on a fresh machine `make demo`
# and `make test` do all their own set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The dev/CI environment: every package pinned with its hashes (CPython 3.11 on Linux
# x86-64, torch's CPU build). `make lock` regenerates it from pyproject.toml's ranges and
# .ci/requirements.in; users who `pip install .` get the ranges instead.
LOCK   := .ci/requirements.lock
EXTRAS := dev notebooks tensorboard wandb
# pip-tools, which writes the lock, in a venv of its own (the lock cannot pin its own tool).
LOCK_VENV := .venv-lock
PIP_TOOLS := pip-tools==7.7.0
# `make test-latest`: the newest release of every dependency, in a venv of its own.
LATEST_VENV := .venv-latest
# The CPU build: a newer torch on PyPI is the multi-GB CUDA build.
TORCH_DEV := torch==2.13.0

DEMO_DIR ?= demo_out
# pytest workers for `make test` (pytest-xdist; each takes whole test files): most tests
# run on one core (a one-worker run's CPU time about equals its wall time), so a second
# worker puts CI's second core to use.
TEST_WORKERS ?= 2

# OpenBLAS picks its kernels by CPU (AVX2 or AVX-512) and their sums differ in the last
# bits; an ill-conditioned bootstrap refit (the demo's) then lands elsewhere, and the
# README's numbers would reproduce on some x86-64 machines and not others. One kernel on
# every x86-64 machine (tests/conftest.py sets the same for a bare pytest).
ifeq ($(shell uname -m),x86_64)
export OPENBLAS_CORETYPE ?= Haswell
endif

.PHONY: install lock test test-fast test-latest demo docs bench bench-gpu soak clean help

help:
	@echo "make demo       run the demo scaling study on the built-in corpus (CPU, < 15 min)"
	@echo "make test       install into .venv, check the import contracts, run the whole test suite"
	@echo "make docs       the demo (finished runs reused), then the README's console blocks, figure and docs/data"
	@echo "make test-fast  the suite without tests marked slow"
	@echo "make test-latest the fast suite against the newest release of every dependency (not CI)"
	@echo "make lock       recompile .ci/requirements.lock, the hash-pinned dev/CI environment"
	@echo "make bench      trainer, kernel and fit benchmarks on this machine"
	@echo "make bench-gpu  on a CUDA machine: GPU tests, then the kernel and training tables into docs/benchmarks.md"
	@echo "make soak       many tiny runs with random kills and resubmissions"

install: $(STAMP)

# A hash-checked install does not take `-e .`: the pinned environment first, then the
# package itself without dependencies and without build isolation (its build backend,
# setuptools, is pinned in the lock too).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet $(PIP_TOOLS)
	$(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	    --no-emit-find-links --no-emit-index-url $(addprefix --extra ,$(EXTRAS)) \
	    -o $(LOCK) pyproject.toml .ci/requirements.in

# Not part of CI: how we learn about a breaking release before users do.
# torch stays at the CPU build it installed (a constraint), since the newest torch on PyPI
# is a CUDA build; everything else is upgraded to its newest release.
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet $(TORCH_DEV)
	$(LATEST_VENV)/bin/python -m pip freeze | grep '^torch==' > $(LATEST_VENV)/torch.txt
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -c $(LATEST_VENV)/torch.txt \
	    -e ".[dev,notebooks]"
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	@echo "versions: $(LATEST_VENV)/versions.txt"
	$(LATEST_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

# The import contracts first (pyproject.toml, [tool.importlinter]; docs/architecture.md):
# a second and it names the offending import, before minutes of tests.
LINT_IMPORTS := $(VENV)/bin/lint-imports --no-cache --no-logo

test: $(STAMP)
	$(LINT_IMPORTS)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

test-fast: $(STAMP)
	$(LINT_IMPORTS)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/scaling demo --out $(DEMO_DIR)

# Runs the demo into DEMO_DIR (reusing its finished runs; training the rest, about 7 min),
# then every command behind a README console block, and pastes their output between the
# README's docs:NAME markers (docs/studies/docs_build.py). DOCS_ARGS=--reuse-committed seeds an
# empty DEMO_DIR with the committed run records, so nothing of the demo is trained.
docs: $(STAMP)
	$(PY) docs/studies/docs_build.py --demo-dir $(DEMO_DIR) $(DOCS_ARGS)

# Without a GPU the kernel step is a one-second correctness smoke test in the Triton interpreter.
bench: $(STAMP)
	$(PY) -m scaling.app.bench train
	$(PY) -m scaling.app.bench kernels
	$(PY) docs/studies/fit_bench.py
	$(PY) docs/studies/fit_bench.py --backtest

# On a CUDA machine only. The GPU tests gate the timings: a wrong kernel's speed is no result.
# Liger-Kernel is only the comparison column, so failing to install it is not an error.
bench-gpu: $(STAMP)
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'make bench-gpu: no CUDA device here (fix: run it on a GPU machine; make bench runs the CPU benchmarks)')"
	$(PY) -m pytest -q -m gpu
	-$(PY) -m pip install --quiet liger-kernel
	$(PY) -m scaling.app.bench kernels --markdown --json bench_out/kernels.json --write-docs docs/benchmarks.md
	$(PY) -m scaling.app.bench train --markdown --json bench_out/train.json --write-docs docs/benchmarks.md

# About 5-10 minutes on 2 cores; SOAK_ARGS="--runs 60 --kills 80 --seed 1" for a longer one.
soak: $(STAMP)
	$(PY) -m scaling.app.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(LATEST_VENV) .pytest_cache
