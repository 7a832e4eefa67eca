# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv when missing. torch/torchvision are installed first, pinned to the releases
# that this project's machines hold on local disk, so pip never downloads another torch build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= runs/demo
# Extra `eo-mmcl run` options for the demo, e.g. DEMO_ARGS="--from probe".
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format install clean

$(BIN)/eo-mmcl: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e .
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(BIN)/eo-mmcl

install: $(BIN)/eo-mmcl

demo: install
	$(BIN)/eo-mmcl run pipelines/demo.yaml $(DEMO_ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check eo_mmcl tests benchmarks
	$(BIN)/ruff format --check eo_mmcl tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

format: install
	$(BIN)/ruff check --fix eo_mmcl tests benchmarks
	$(BIN)/ruff format eo_mmcl tests benchmarks

clean:
	rm -rf $(DEMO_DIR) runs/train .pytest_cache .mypy_cache .ruff_cache
