PYTHON ?= python3
PIP := $(PYTHON) -m pip

# reproduce-* settings: make reproduce-nb201 OPT=gdas DATASET=cifar100 FAST=1 DATA=DIR BENCH=FILE
OPT ?= drnas
DATASET ?= cifar10
SEED ?= 9001
FAST ?=
DATA ?=
BENCH ?=
RUNS ?= runs/reproduce
TEST_WORKERS ?= 2

.PHONY: install test lint format gpu-check reproduce-nb201 reproduce-darts

install:  ## editable install with runtime, wandb, NB201/NATS-Bench, ONNX export and dev dependencies, plus the reference networks
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev,wandb,nb201,export]"
# reference networks for tests/test_reference_networks.py (dev only: xautodl pins numpy<=1.19.5)
	$(PIP) install --no-deps xautodl==1.0.0 ofa==0.1.0.post202307202001
	-command -v pyenv >/dev/null 2>&1 && pyenv rehash
	$(PYTHON) -m tanglenas_cli --help >/dev/null

test:  ## the test suite, in TEST_WORKERS processes (a test file stays in one)
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile

gpu-check:  ## profile, precision, compile and multi-GPU checks on this machine's GPUs (benchmarks/results/gpu-*.csv)
	$(PYTHON) benchmarks/gpu_check.py

lint:  ## ruff
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

reproduce-nb201:  ## the paper's NB201 run: search -> derive -> bench-query (FAST=1: a few CPU minutes)
	SPACE=nb201 OPT=$(OPT) DATASET=$(DATASET) SEED=$(SEED) FAST=$(FAST) DATA=$(DATA) BENCH=$(BENCH) \
	RUNS=$(RUNS) PYTHON=$(PYTHON) bash scripts/reproduce.sh

reproduce-darts:  ## the paper's DARTS search: search -> derive (FAST=1: a few CPU minutes)
	SPACE=darts OPT=$(OPT) DATASET=$(DATASET) SEED=$(SEED) FAST=$(FAST) DATA=$(DATA) BENCH= \
	RUNS=$(RUNS) PYTHON=$(PYTHON) bash scripts/reproduce.sh
