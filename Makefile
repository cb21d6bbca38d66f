# Everything runs inside .venv, created on first use: on a fresh machine `make demo`
# and `make test` do all their own set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CPU wheel for the dev/CI path only; the package itself accepts a range of torch.
TORCH_DEV := torch==2.13.0

DEMO_DIR ?= demo_out

.PHONY: install test test-fast demo bench soak clean help

help:
	@echo "make demo       run the demo scaling study on the built-in corpus (CPU, < 15 min)"
	@echo "make test       install into .venv and run the whole test suite"
	@echo "make test-fast  the suite without tests marked slow"
	@echo "make bench      trainer, kernel and fit benchmarks on this machine"
	@echo "make soak       many tiny runs with random kills and resubmissions"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_DEV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/scaling demo --out $(DEMO_DIR)

# Without a GPU the kernel step is a one-second correctness smoke test in the Triton interpreter.
bench: $(STAMP)
	$(PY) -m scaling.bench train
	$(PY) -m scaling.bench kernels
	$(PY) -m analysis.bench

# About 5-10 minutes on 2 cores; SOAK_ARGS="--runs 60 --kills 80 --seed 1" for a longer one.
soak: $(STAMP)
	$(PY) -m scaling.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
