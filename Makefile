# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv when missing. torch/torchvision are installed first, pinned to the releases
# that this project's machines hold on local disk, so pip never downloads another torch build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= runs/demo
DEMO_EPOCHS ?= 10
DEMO_OBJECTIVES ?= supervised clip cross_self coral
DEMO_SEEDS ?= 3
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format install clean

$(BIN)/eo-mmcl: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(BIN)/eo-mmcl

install: $(BIN)/eo-mmcl

demo: install
	$(BIN)/eo-mmcl simulate $(DEMO_DIR)/scenes --size 512 --seed 0 --scenes 2
	$(BIN)/eo-mmcl catalog $(DEMO_DIR)/scenes -o $(DEMO_DIR)/catalog
	$(BIN)/eo-mmcl tile $(DEMO_DIR)/catalog -o $(DEMO_DIR)/chips --chip-size 32 --split-block 4
	for objective in $(DEMO_OBJECTIVES); do \
	  $(BIN)/eo-mmcl train --config pipelines/configs/$$objective.yaml \
	    --data.chips_dir $(DEMO_DIR)/chips --trainer.max_epochs $(DEMO_EPOCHS) \
	    --data.batch_size 32 --trainer.enable_progress_bar false || exit 1; \
	done
	$(BIN)/eo-mmcl probe --chips $(DEMO_DIR)/chips --scenes $(DEMO_DIR)/scenes \
	  $(foreach objective,$(DEMO_OBJECTIVES),--checkpoint runs/train/$(objective)/checkpoints/last.ckpt) \
	  --seeds $(DEMO_SEEDS) -o $(DEMO_DIR)/probes
	$(BIN)/eo-mmcl report $(DEMO_DIR)/probes -o $(DEMO_DIR)/report

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check eo_mmcl tests benchmarks
	$(BIN)/ruff format --check eo_mmcl tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix eo_mmcl tests benchmarks
	$(BIN)/ruff format eo_mmcl tests benchmarks

clean:
	rm -rf $(DEMO_DIR) runs/train .pytest_cache .mypy_cache .ruff_cache
