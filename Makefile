# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (lint + tests).
# Both create a project-local virtual environment. TORCH pins the CPU build that lies on the
# build machines; on a GPU machine run e.g. `make demo TORCH='torch>=2.4'`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint venv-main venv-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv-main: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e .

venv-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[dev]"

demo: venv-main
	bash scripts/main_job.sh

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no test: make treats that as the failure it is.
test: lint
	$(BIN)/python -m pytest
