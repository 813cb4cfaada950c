PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install test lint format

install:  ## editable install with runtime, wandb and dev dependencies
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[dev,wandb]"
	-command -v pyenv >/dev/null 2>&1 && pyenv rehash
	$(PYTHON) -m tanglenas_cli --help >/dev/null

test:  ## the test suite
	$(PYTHON) -m pytest

lint:  ## ruff
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
