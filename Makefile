# Each target bootstraps what it needs: a fresh clone runs `make synth` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
IMAGE_VENV := .venv-image
AWSCLI_VENV := .venv-awscli
PYMYSQL := .venv-pymysql
BIN := $(VENV)/bin
CONFIG ?=
# CONFIG=default names the built-in defaults explicitly (no config file).
CDK_CONFIG := $(if $(filter-out default,$(CONFIG)),-c config=$(CONFIG),)
# Commands that change an account act on the stacks of one named config, never on whatever
# the defaults happen to name.
REQUIRE_CONFIG = @test -n "$(CONFIG)" || { echo "error: name the config: make $@ CONFIG=my.yaml (CONFIG=default for the built-in defaults)" >&2; exit 2; }

# jsii prints a Node 20 end-of-life banner on every start; this jsii reads the second name.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: synth test unit snapshots docs mutants test-servers lint bench local deploy diff destroy clean verify

# uv installs what the tests need (.venv with the dev tools, the image's, the AWS CLI's and
# PyMySQL's venvs): the same pins and hashes pip would install, for about 60% of pip's CPU
# (docs/testing.md, "Installs with uv"). `make synth` keeps pip, which reads a pip.conf mirror;
# uv reads only its own settings (UV_DEFAULT_INDEX and the like): set those for `make test`.
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
UV_INSTALL := $(UV) pip install -q --compile-bytecode --python

# Two stamps in one .venv. RUNTIME is what the app needs to synthesize (requirements.txt and
# this checkout, editable), installed by pip: `make synth`, `docs`, `deploy` stop there. DEV
# is all of that and the test and lint tools (requirements-dev.txt: 0.6 GB more), installed by
# uv, for the targets that run pytest or ruff: it runs no pip first, and marks RUNTIME done too.
# A later `make test` adds the tools to the same .venv.
RUNTIME := $(BIN)/.stamp-runtime
DEV := $(BIN)/.stamp-dev

# The library is installed editable in strict mode: a tree of links to this checkout's files
# under build/, on a plain path that type checkers and IDEs resolve (the default mode's import
# hook they cannot follow). A module added or removed needs the tree made again: the folders'
# own timestamps (they change when an entry does) are prerequisites.
LIBRARY_DIRS := $(shell find constructs_lib k8s_charts image -type d -not -name __pycache__ -not -path '*/build*' -not -path '*.egg-info*' 2>/dev/null)

$(RUNTIME): requirements.txt pyproject.toml $(LIBRARY_DIRS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=strict
	touch $@

# requirements-dev.txt includes requirements.txt (-r), so the runtime pins hold here too.
$(DEV): requirements.txt pyproject.toml $(LIBRARY_DIRS) requirements-dev.txt $(UV_VENV)/.stamp
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(UV_INSTALL) $(BIN)/python -r requirements-dev.txt
	$(UV_INSTALL) $(BIN)/python --no-deps -e . -C editable_mode=strict
	touch $(RUNTIME) $@

# uv itself, pinned, in a venv of its own that nothing imports from.
$(UV_VENV)/.stamp: requirements-uv.txt
	test -x $(UV_VENV)/bin/python || $(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install -q -r requirements-uv.txt
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The server's own environment, installed from the image's hash-locked file, for the
# integration tests and `make local` (the image itself needs Docker, which CI lacks).
# mysqlclient is built as the image builds it (image/Dockerfile): against Debian's libmariadb-dev
# (test-servers installs it with pkg-config and gcc), by the setuptools the first lock installed.
$(IMAGE_VENV)/.stamp: image/requirements.txt image/requirements-mysqlclient.txt $(shell find image/launcher -name '*.py' -o -name pyproject.toml 2>/dev/null) $(UV_VENV)/.stamp | test-servers
	test -x $(IMAGE_VENV)/bin/python || $(PYTHON) -m venv $(IMAGE_VENV)
	$(UV_INSTALL) $(IMAGE_VENV)/bin/python --require-hashes --no-deps -r image/requirements.txt
	$(UV_INSTALL) $(IMAGE_VENV)/bin/python --require-hashes --no-deps --no-build-isolation -r image/requirements-mysqlclient.txt
	$(UV_INSTALL) $(IMAGE_VENV)/bin/python --no-deps --no-build-isolation --reinstall ./image/launcher
	touch $@

# The AWS CLI that tests/integration/test_kubeconfig.py runs the stack's printed kubeconfig
# command with, in a venv of its own: awscli v1 ships its own botocore and pins its own
# dependencies, apart from the app's boto3. The file is hash-locked; its header says how to
# make it again.
$(AWSCLI_VENV)/.stamp: requirements-awscli.txt $(UV_VENV)/.stamp
	test -x $(AWSCLI_VENV)/bin/python || $(PYTHON) -m venv $(AWSCLI_VENV)
	$(UV_INSTALL) $(AWSCLI_VENV)/bin/python --require-hashes --no-deps -r requirements-awscli.txt
	touch $@

# PyMySQL, for the bench's `recipe` (`mysql+pymysql://`, as most guides write it; the image runs
# mysqlclient): the hash-locked wheel into a folder of its own that only that server puts on its
# PYTHONPATH. The image's venv stays exactly as image/'s lock files make it.
$(PYMYSQL)/.stamp: bench/requirements-pymysql.txt $(IMAGE_VENV)/.stamp
	rm -rf $(PYMYSQL)
	$(UV_INSTALL) $(IMAGE_VENV)/bin/python --require-hashes --no-deps --target $(PYMYSQL) -r bench/requirements-pymysql.txt
	touch $@

# Preview the server as the image runs it, on SQLite + a local artifact folder, no AWS:
# http://127.0.0.1:5000, data in ./.local-mlflow (override with MLFLOW_PORT, MLFLOW_LOCAL_DIR).
local: $(IMAGE_VENV)/.stamp
	$(IMAGE_VENV)/bin/mlflow-launcher local

synth: $(RUNTIME) node_modules/.stamp
	npx cdk synth --quiet $(CDK_CONFIG)
	@echo "CloudFormation templates: $$(ls cdk.out/*.template.json | tr '\n' ' ')"
	@echo "Kubernetes manifests:     $$(ls cdk.out/manifests/*.yaml | tr '\n' ' ')"

# Debian's MariaDB and PostgreSQL servers for the integration tests (installs only what is missing).
test-servers:
	bash scripts/install-test-servers.sh

# Three pytest-xdist workers for CI's two cores: the integration tests wait on servers, clocks
# and transfers for much of their time, so a third worker keeps both cores busy where two left
# them idle (docs/testing.md, "How long the suite takes"). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3
# The venvs, npm and apt do not depend on one another (but for mysqlclient's build on apt's
# libmariadb-dev, which the image venv's rule states), so a fresh clone builds them side by
# side. The gain is small: the image venv (about 55 s) is the longest of them.
TEST_NEEDS := $(DEV) node_modules/.stamp $(IMAGE_VENV)/.stamp $(AWSCLI_VENV)/.stamp test-servers $(PYMYSQL)/.stamp
test:
	$(MAKE) --no-print-directory -j4 $(TEST_NEEDS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The fast part: no database servers, browser or wheel build (about a minute warm).
unit: $(DEV) node_modules/.stamp
	$(BIN)/python -m pytest -m "not integration and not library"

# Regenerate what a change to the deployment invalidates; review the diff before committing.
snapshots: $(DEV)
	$(BIN)/python -m pytest tests/snapshot --snapshot-update

docs: $(RUNTIME)
	$(BIN)/python -m config.reference > docs/configuration.md

# Break each guarded property in a temporary copy and check its tests fail (slow; not in CI).
mutants: $(TEST_NEEDS)
	$(BIN)/python scripts/mutants.py

# Warm `cdk synth` against a one-bucket app; then the tracking server as deployed against plain
# `mlflow server` and MLflow's store in-process, on the test servers (10 minutes on 2 cores, plus
# bench/artifacts.py's 1 GiB transfers when that file is present; writes
# bench/results/server.json and docs/benchmarks.md); then both under hostile and careless
# traffic (bench/hostile.py, 5 minutes more; writes bench/results/hostile.json and its section
# of docs/benchmarks.md). The server benches need the dev venv (moto, the integration helpers)
# and the image's venv (MLflow).
bench: $(DEV) node_modules/.stamp $(IMAGE_VENV)/.stamp test-servers $(PYMYSQL)/.stamp
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/traces.py

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The deploy check again, now, against the live deployment: kubectl must point at its cluster
# (the KubeconfigCommand output). scripts/verify.py says what it does.
verify: $(RUNTIME)
	$(REQUIRE_CONFIG)
	$(BIN)/python scripts/verify.py $(CONFIG)

deploy diff: $(RUNTIME) node_modules/.stamp
	$(REQUIRE_CONFIG)
	npx cdk $@ $(CDK_CONFIG) $(ARGS)

# The stateless stacks only (server, then cluster): the data stack and the network it lives in
# stay. Deleting data too is a separate, deliberate sequence (README, "Tear down").
destroy: $(RUNTIME) node_modules/.stamp
	$(REQUIRE_CONFIG)
	npx cdk destroy $(CDK_CONFIG) Mlflow Cluster $(ARGS)

clean:
	rm -rf cdk.out $(VENV) $(IMAGE_VENV) $(AWSCLI_VENV) $(PYMYSQL) node_modules
