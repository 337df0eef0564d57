# connote — the two commands a newcomer needs:
#   make demo   set up .venv and run the whole pipeline on the bundled example images (offline)
#   make test   set up .venv (and Chromium) and run the test suite
SHELL := /bin/bash
VENV := .venv/bin
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test setup setup-test lint bench clean

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

demo: setup
	$(VENV)/connote run examples/images -o example-study
	@echo "Open example-study/report/index.html in a browser."

test: setup-test
	$(VENV)/python -m pytest -q

lint: setup
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks
	$(VENV)/python -m mypy

bench: setup
	$(VENV)/python benchmarks/describe_throughput.py
	$(VENV)/python benchmarks/sweep.py
	$(VENV)/python benchmarks/output_checks.py
	$(VENV)/python benchmarks/map_render.py
	$(VENV)/python benchmarks/derive.py

clean:
	rm -rf example-study .cache .pytest_cache
