# status-reporter — developer entry points. `make` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST := hack/pytest.sh
LOCK := $(BIN)/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-find-links

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is required")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv/ with the package and the pinned dev tools (idempotent)

.PHONY: lock
lock: $(STAMP) ## Re-resolve requirements/*.txt from pyproject.toml (needs PyPI)
	$(LOCK) -o requirements/runtime.txt pyproject.toml
	$(LOCK) --extra dev -o requirements/dev.txt pyproject.toml
	$(LOCK) --extra dev --extra bench -o requirements/bench.txt pyproject.toml
	$(LOCK) -o requirements/build.txt requirements/build.in

.PHONY: fmt
fmt: $(STAMP) ## Format and auto-fix the code
	$(BIN)/ruff format src tests harness hack bench
	$(BIN)/ruff check --fix src tests harness hack bench

.PHONY: lint
lint: $(STAMP) ## ruff lint + format check, mypy --strict
	$(BIN)/ruff check src tests harness hack bench
	$(BIN)/ruff format --check src tests harness hack bench
	$(BIN)/mypy

.PHONY: typecheck
typecheck: $(STAMP) ## mypy --strict only
	$(BIN)/mypy

.PHONY: test-unit
test-unit: $(STAMP) ## Unit tests (fast, no network)
	$(PYTEST) tests/unit

.PHONY: controlplane
controlplane: ## Build (or reuse) kube-apiserver and etcd for the integration tests
	@hack/controlplane/build.sh >/dev/null

.PHONY: test-integration
test-integration: $(STAMP) controlplane ## Integration tests against a local kube-apiserver + etcd
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(PYTEST) tests/integration

.PHONY: test-faults
test-faults: $(STAMP) controlplane ## Fault injection: outages, a frozen server, a hostile network, stops (root, iptables)
	@command -v iptables >/dev/null 2>&1 || hack/faults/install-tools.sh
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(PYTEST) tests/faults

.PHONY: image-tools
image-tools: ## Install debootstrap, and podman unless a container engine already works (Debian packages)
	hack/image/install-tools.sh

.PHONY: image
image: image-tools ## Build the container image (local Debian base when no registry is reachable)
	hack/image/build.sh

.PHONY: image-lock
image-lock: image-tools ## Re-pin the image's Debian packages (hack/image/debian.lock) at the mirror's versions
	hack/image/lock.sh

.PHONY: test-e2e
test-e2e: $(STAMP) controlplane image-tools ## Container end-to-end tests: adapter + reporter containers
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" STATUS_REPORTER_IMAGE="$$(hack/image/build.sh)" \
		$(PYTEST) tests/e2e

.PHONY: test-cluster
test-cluster: $(STAMP) image-tools ## Real Jobs on a real single-node Kubernetes (root; hack/cluster)
	hack/cluster/install.sh >/dev/null
	hack/controlplane/build.sh --node >/dev/null
	hack/hyperfleet/build.sh helm >/dev/null
	hack/hyperfleet/build.sh cel >/dev/null
	STATUS_REPORTER_IMAGE="$$(hack/image/build.sh)" $(PYTEST) -m cluster tests/cluster

.PHONY: demo-cluster
demo-cluster: $(STAMP) image-tools ## Show every scenario as real Jobs on a single-node Kubernetes (root)
	hack/cluster/install.sh >/dev/null
	hack/controlplane/build.sh --node >/dev/null
	STATUS_REPORTER_IMAGE="$$(hack/image/build.sh)" $(BIN)/python -m harness.cluster_demo

.PHONY: mutation
mutation: $(STAMP) ## Mutation testing of the rules and the write/retry policy (mutmut; about 12 min on 2 cores, not in make test)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results
	$(BIN)/python hack/mutation_score.py

.PHONY: verify
verify: lint test-unit ## Everything that needs no control plane: lint, types, unit tests

.PHONY: test
test: lint test-unit test-integration test-faults test-e2e test-cluster ## The whole suite: lint, unit, integration, container e2e, cluster

.PHONY: clean
clean: ## Remove the venv, caches and build output
	rm -rf $(VENV) $(RUNTIME_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: demo
demo: $(STAMP) controlplane ## Start a local kube-apiserver and show the reporter in five scenarios
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(BIN)/python -m harness.demo

# The reporter as the image installs it (runtime requirements, the wheel, the image's
# interpreter), for the benchmark: rebuilt whenever the sources or the pins change.
RUNTIME_VENV := .runtime-venv
$(RUNTIME_VENV)/bin/status-reporter: $(STAMP) hack/runtime-venv.sh requirements/runtime.txt pyproject.toml $(shell find src -name '*.py')
	hack/runtime-venv.sh $(RUNTIME_VENV) >/dev/null
	@touch $@

.PHONY: bench
bench: $(STAMP) controlplane $(RUNTIME_VENV)/bin/status-reporter ## Measure latency, API load, footprint and scale; writes BENCHMARKS.md (about 10 min)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bench.txt
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(BIN)/python -m bench.run --reporter $(RUNTIME_VENV)/bin/status-reporter

.PHONY: bench-scale
bench-scale: $(STAMP) controlplane $(RUNTIME_VENV)/bin/status-reporter ## N = 10, 100, 300 reporters on one API server, default and throttled; writes BENCHMARKS.md section 9 (about 35 min; root)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bench.txt
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(BIN)/python -m bench.scale --reporter $(RUNTIME_VENV)/bin/status-reporter $(if $(SIZES),--sizes $(SIZES)) $(if $(RESUME),--resume)
