# scaivault-operator — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PKG := operator/src/scaivault_operator
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo run test test-unit test-integration e2e lint fmt crds dev-vault clean

help: ## List every target
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@if $(BIN)/python -c 'import kubernetes' 2>/dev/null || $(BIN)/python -c 'import kubernetes_asyncio' 2>/dev/null; then \
		echo 'error: kubernetes / kubernetes_asyncio got installed; Kopf would import it (+40 MiB RSS)'; exit 1; fi
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package editable with its dev extras

demo: $(STAMP) ## Local ScaiVault + the operator + crds/examples: watch a Secret appear and follow version 2
	$(BIN)/scaivault-operator demo

run: $(STAMP) ## Run the operator against the cluster in your kubeconfig (all namespaces)
	$(BIN)/scaivault-operator run

test: $(STAMP) ## Run the whole test suite (e2e tests skip unless KUBECONFIG reaches a cluster)
	$(BIN)/pytest -q tests

test-unit: $(STAMP) ## Run only the fast unit tests
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP) ## Run only the integration tests (local ScaiVault server over real HTTP)
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP) ## Run tests/e2e against the cluster in KUBECONFIG
	$(BIN)/pytest -q tests/e2e

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on the package
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests
	$(BIN)/mypy

fmt: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix operator tests
	$(BIN)/ruff format operator tests

crds: $(STAMP) ## Regenerate crds/*.yaml from the pydantic models in api.py
	$(BIN)/python -m scaivault_operator.crdgen --out crds

dev-vault: $(STAMP) ## Serve a local ScaiVault on 127.0.0.1:8200 (token: dev-token, read+write)
	$(BIN)/scaivault-operator dev-vault --token dev-token=secrets:read,secrets:write

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
