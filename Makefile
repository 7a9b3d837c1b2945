# scaivault-operator — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PKG := operator/src/scaivault_operator
STAMP := $(VENV)/.installed
CHART := charts/scaivault-operator
IMAGE ?= scaivault-operator:dev

.DEFAULT_GOAL := help
.PHONY: help install demo run test test-unit test-integration chart-test e2e e2e-cluster e2e-envtest image lint fmt crds dev-vault clean bench

help: ## List every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/install-kube-tools.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@if $(BIN)/python -c 'import kubernetes' 2>/dev/null || $(BIN)/python -c 'import kubernetes_asyncio' 2>/dev/null; then \
		echo 'error: kubernetes / kubernetes_asyncio got installed; Kopf would import it (+40 MiB RSS)'; exit 1; fi
	$(BIN)/python scripts/install-kube-tools.py
	@touch $(STAMP)

install: $(STAMP) ## Create .venv, install the package editable with its dev extras, and helm + kubectl into .venv/bin

demo: $(STAMP) ## Local ScaiVault + the operator + crds/examples: a Secret appears, follows v2, Deployments restart
	$(BIN)/scaivault-operator demo

run: $(STAMP) ## Run the operator against the cluster in your kubeconfig (all namespaces)
	$(BIN)/scaivault-operator run

test: $(STAMP) ## Run the whole test suite (e2e tests skip unless KUBECONFIG reaches a cluster or KUBEBUILDER_ASSETS has binaries)
	$(BIN)/pytest -q tests

test-unit: $(STAMP) ## Run only the fast unit tests
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP) ## Run only the integration tests (local ScaiVault server over real HTTP)
	$(BIN)/pytest -q tests/integration

chart-test: $(STAMP) ## Lint, render and validate the Helm chart (tests/unit/chart; no cluster needed)
	$(BIN)/pytest -q tests/unit/chart

e2e: ## kind cluster + image + helm install + tests/e2e against it, then teardown (needs Docker and kind)
	@scripts/e2e-kind.sh --preflight
	@$(MAKE) --no-print-directory install
	PATH="$(abspath $(BIN)):$$PATH" IMAGE="$(IMAGE)" scripts/e2e-kind.sh

e2e-cluster: $(STAMP) ## Run tests/e2e against the cluster in KUBECONFIG, with the operator in-process
	$(BIN)/pytest -q tests/e2e

e2e-envtest: $(STAMP) ## Run tests/e2e against a private etcd + kube-apiserver from KUBEBUILDER_ASSETS (setup-envtest use -p path)
	@$(BIN)/python tests/e2e/controlplane.py check || { echo 'make e2e-envtest: KUBEBUILDER_ASSETS must hold etcd and kube-apiserver (see tests/e2e/README.md)' >&2; exit 1; }
	env -u KUBECONFIG SVO_E2E_REQUIRE_CLUSTER=1 $(BIN)/pytest -q -rs tests/e2e

image: ## Build the container image (IMAGE=scaivault-operator:dev by default; needs Docker)
	@docker info >/dev/null 2>&1 || { echo 'make image: no Docker engine answers (docker info failed): build the image where Docker runs' >&2; exit 1; }
	docker build --tag "$(IMAGE)" .

bench: $(STAMP) ## Benchmark N=100,1000,10000 vs a naive baseline, on the KUBECONFIG cluster if it answers, else in memory; BENCH_ARGS="--tiers 100" (--tiers all adds 50,000)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(STAMP) ## ruff (lint + format check), mypy --strict on the package, import-linter (its layers)
	$(BIN)/ruff check operator tests scripts bench
	$(BIN)/ruff format --check operator tests scripts bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix operator tests scripts bench
	$(BIN)/ruff format operator tests scripts bench

crds: $(STAMP) ## Regenerate crds/*.yaml (api.py) and crds/policy/*.yaml (admission.py), and copy them into the chart
	$(BIN)/python -m scaivault_operator._tools.crdgen --out crds
	$(BIN)/python -m scaivault_operator._tools.admission --out crds/policy
	cp crds/*.yaml $(CHART)/files/crds/
	mkdir -p $(CHART)/files/policy && cp crds/policy/*.yaml $(CHART)/files/policy/

dev-vault: $(STAMP) ## Serve a local ScaiVault on 127.0.0.1:8200 (token: dev-token, read+write)
	$(BIN)/scaivault-operator dev-vault --token dev-token=secrets:read,secrets:write

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
