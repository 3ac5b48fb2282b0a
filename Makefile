# status-reporter — developer entry points. `make` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST := hack/pytest.sh
# One resolution for every supported Python (environment markers where they differ); uv
# never downloads an interpreter of its own.
LOCK := UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' --python $(BIN)/python
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

# The venv's pip comes from requirements/pip.txt first: the pip an interpreter ships (23.x)
# cannot read the other locks, and only has to install its successor.
$(STAMP): requirements/pip.txt requirements/dev.txt pyproject.toml
	@$(PYTHON) hack/check-python.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements/pip.txt
	$(PIP_INSTALL) -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

.PHONY: install
install: $(STAMP) ## Create .venv/ with the package and the pinned dev tools (idempotent)

.PHONY: lock
lock: $(STAMP) ## Re-resolve requirements/*.txt from pyproject.toml for Python 3.11-3.13 (needs PyPI)
	$(LOCK) -o requirements/pip.txt requirements/pip.in
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

.PHONY: test-toolchain
test-toolchain: $(STAMP) ## make install + unit tests in clean clones, with every supported Python found here
	$(BIN)/python -m harness.toolchain

.PHONY: controlplane
controlplane: ## Build (or reuse) kube-apiserver and etcd for the integration tests
	@hack/controlplane/build.sh >/dev/null

.PHONY: test-integration
test-integration: $(STAMP) controlplane ## Integration tests against a local kube-apiserver + etcd
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(PYTEST) tests/integration

.PHONY: test-faults
test-faults: $(STAMP) controlplane ## Fault injection: outages, a frozen server, a hostile network, stops (root, iptables)
	@hack/faults/install-tools.sh
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(PYTEST) tests/faults

.PHONY: image-tools
image-tools: ## Install debootstrap, podman unless a container engine already works, qemu-user-static when PLATFORM names another architecture (Debian packages)
	hack/image/install-tools.sh

.PHONY: image
image: image-tools ## Build the container image for PLATFORM (local Debian base when no registry is reachable)
	hack/image/build.sh

.PHONY: image-lock
image-lock: image-tools ## Re-pin the image's Debian packages (hack/image/debian.<arch>.lock: amd64, arm64) at the mirror's versions
	hack/image/lock.sh

.PHONY: test-e2e
test-e2e: $(STAMP) controlplane image-tools ## Container end-to-end tests: adapter + reporter containers
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" STATUS_REPORTER_IMAGE="$$(hack/image/build.sh)" \
		$(PYTEST) tests/e2e

.PHONY: test-arm64
test-arm64: PLATFORM := linux/amd64,linux/arm64
test-arm64: $(STAMP) controlplane image-tools release-tools ## The arm64 image under emulation (qemu-user-static): probe, container e2e, multi-arch release; nothing left on the host (README "Container image")
	mounted=""; \
	if [ ! -e $(BINFMT)/register ]; then mount -t binfmt_misc binfmt_misc $(BINFMT); mounted=1; fi; \
	$(BIN)/python -m harness.host snapshot $(HOST_BEFORE_ARM64); \
	status=0; $(MAKE) --no-print-directory test-arm64-run || status=$$?; \
	$(BIN)/python -m harness.host compare $(HOST_BEFORE_ARM64) || status=1; \
	[ -z "$$mounted" ] || umount $(BINFMT); exit $$status

HOST_BEFORE_ARM64 := build/host-before-arm64.json
# binfmt_misc stays mounted for the whole run (unmounted after it when it was not), so
# that the host check sees the handlers: none of the project's may be left.
BINFMT := /proc/sys/fs/binfmt_misc

# The arm64 image built once (under an emulation of its own), the emulation test outside
# any other, then the suites inside one.
.PHONY: test-arm64-run
test-arm64-run:
	image="$$(PLATFORM=linux/arm64 hack/image/build.sh)"; \
	STATUS_REPORTER_IMAGE="$$image" $(PYTEST) tests/e2e/test_emulation.py; \
	STATUS_REPORTER_IMAGE="$$image" hack/image/emulate.sh $(PLATFORM) \
		$(MAKE) --no-print-directory test-arm64-suites

# Inside one emulation (its handler removed at the end, pass or fail): the arm64 image
# ($$STATUS_REPORTER_IMAGE)'s tests, then the release of both platforms.
.PHONY: test-arm64-suites
test-arm64-suites:
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" PLATFORM=linux/arm64 \
		$(PYTEST) tests/e2e/test_image.py tests/e2e/test_container.py
	$(PYTEST) tests/e2e/test_release.py

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

# The host is recorded before the suites and compared after them, pass or fail: what a
# run leaves (a bridge, a network namespace, a firewall rule, a container) fails it.
HOST_BEFORE := build/host-before.json

.PHONY: test
test: $(STAMP) ## The whole suite: lint, unit, toolchain, integration, faults, container e2e, cluster; nothing left on the host
	$(BIN)/python -m harness.host snapshot $(HOST_BEFORE)
	status=0; $(MAKE) --no-print-directory test-suites || status=$$?; \
		$(BIN)/python -m harness.host compare $(HOST_BEFORE) || status=1; exit $$status

.PHONY: test-suites
test-suites: lint test-unit test-toolchain test-integration test-faults test-e2e test-cluster

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
	$(PIP_INSTALL) -r requirements/bench.txt
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(BIN)/python -m bench.run --reporter $(RUNTIME_VENV)/bin/status-reporter

.PHONY: bench-scale
bench-scale: $(STAMP) controlplane $(RUNTIME_VENV)/bin/status-reporter ## N = 10, 100, 300 reporters on one API server, default and throttled, N <= 100 three times; writes BENCHMARKS.md section 9 (about 70 min; root)
	$(PIP_INSTALL) -r requirements/bench.txt
	KUBEBUILDER_ASSETS="$$(hack/controlplane/build.sh)" $(BIN)/python -m bench.scale --reporter $(RUNTIME_VENV)/bin/status-reporter $(if $(SIZES),--sizes $(SIZES)) $(if $(REPEATS),--repeats $(REPEATS)) $(if $(RESUME),--resume)

# --- Release (README "Releasing"): publish, sign and attest the image -------------------
# IMAGE_REGISTRY/IMAGE_NAME:IMAGE_TAG is where it goes; PLATFORM what it is built for;
# CONTAINER_TOOL the engine (podman or docker; empty: the first that works); COSIGN_KEY
# the signing key (a file, COSIGN_PASSWORD unlocking it, or a KMS URI); REGISTRY_CA the
# registry's CA, trusted by these commands only.
IMAGE_REGISTRY ?=
IMAGE_NAME ?= status-reporter
IMAGE_TAG ?= $(shell hack/release/version.sh)
PLATFORM ?= $(shell hack/image/platforms.sh)
CONTAINER_TOOL ?=
COSIGN_KEY ?= $(HOME)/.config/status-reporter/cosign.key
COSIGN_PUB ?= $(basename $(COSIGN_KEY)).pub
REGISTRY_CA ?=
# The engine and the platform hold for every target that builds or runs the image.
export PLATFORM
ifneq ($(CONTAINER_TOOL),)
export CONTAINER_ENGINE := $(CONTAINER_TOOL)
endif
RELEASE_ENV = IMAGE_REGISTRY="$(IMAGE_REGISTRY)" IMAGE_NAME="$(IMAGE_NAME)" IMAGE_TAG="$(IMAGE_TAG)" \
	COSIGN_KEY="$(COSIGN_KEY)" REGISTRY_CA="$(REGISTRY_CA)"

.PHONY: release-tools
release-tools: ## Build (or reuse) cosign and the test registry from their pinned Go modules
	@hack/release/tool.sh cosign
	@hack/release/tool.sh registry

.PHONY: image-push
image-push: image-tools ## Build the image and push it to IMAGE_REGISTRY as IMAGE_TAG; prints its digest
	@$(RELEASE_ENV) hack/release/release.sh push

.PHONY: release
release: image-tools ## Build, check, push, sign and attest the SBOM (cosign, COSIGN_KEY); prints the digest
	@$(RELEASE_ENV) hack/release/release.sh release

.PHONY: release-key
release-key: ## Make a cosign key pair at COSIGN_KEY (and .pub), encrypted with COSIGN_PASSWORD
	@test ! -e "$(COSIGN_KEY)" || { echo "$(COSIGN_KEY) exists; not replacing it" >&2; exit 1; }
	mkdir -p "$(dir $(COSIGN_KEY))"
	cd "$(dir $(COSIGN_KEY))" && "$(CURDIR)/hack/release/cosign.sh" generate-key-pair \
		--output-key-prefix "$(basename $(notdir $(COSIGN_KEY)))"

.PHONY: image-verify
image-verify: ## Verify IMAGE_DIGEST (REGISTRY/NAME@sha256:...): its signature and SBOM attestation, against COSIGN_PUB
	@test -n "$(IMAGE_DIGEST)" || { echo "IMAGE_DIGEST is not set (REGISTRY/NAME@sha256:...)" >&2; exit 1; }
	@REGISTRY_CA="$(REGISTRY_CA)" hack/release/verify.sh "$(IMAGE_DIGEST)" "$(COSIGN_PUB)"

# The container tests include the release's (tests/e2e/test_release.py): its tools first.
test-e2e: release-tools
