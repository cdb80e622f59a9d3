# Gradeline: one-command setup, test, demo and benchmarks.
# `make setup` is idempotent: it rebuilds .venv only when pyproject.toml or requirements.lock change.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: setup test test-unit test-integration demo bench data lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

# Re-resolve every transitive version after a pin changes in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 -o requirements.lock

# Debian's Chromium, which the release test drives through the MLflow UI (Playwright's own
# browser download is not reachable here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get install -y --no-install-recommends chromium \
		|| (apt-get update && apt-get install -y --no-install-recommends chromium)

# Debian's PostgreSQL server programs: tests start a throwaway server on loopback
# (cli/postgres.py) for the prediction log and review queue as a cluster shares them, and
# `gradeline up --profile cluster` runs one. Whatever major version Debian ships (15 on
# bookworm); cli/postgres.py finds it the same way. With none installed the target is a path
# that never exists, so make installs the package.
POSTGRES := $(or $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb)),/usr/lib/postgresql/initdb)
$(POSTGRES):
	apt-get install -y --no-install-recommends postgresql \
		|| (apt-get update && apt-get install -y --no-install-recommends postgresql)

# Debian's Prometheus and promtool: the dashboard test scrapes a live service with them.
PROMETHEUS := /usr/bin/prometheus
$(PROMETHEUS):
	apt-get install -y --no-install-recommends prometheus \
		|| (apt-get update && apt-get install -y --no-install-recommends prometheus)

# Debian's nginx: the load balancer in front of the serve replicas of `gradeline up --profile
# cluster` (cli/cluster.py), which the cluster test kills one of under traffic.
NGINX := /usr/sbin/nginx
$(NGINX):
	apt-get install -y --no-install-recommends nginx-light \
		|| (apt-get update && apt-get install -y --no-install-recommends nginx-light)

test: $(STAMP) $(CHROMIUM) $(POSTGRES) $(PROMETHEUS) $(NGINX)
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) $(POSTGRES) $(PROMETHEUS)
	$(BIN)/pytest tests/integration

demo: $(STAMP)
	$(BIN)/gradeline demo

# Rebuild the reference set from params.yaml (the detector's starter is its own, long stage:
# `dvc repro pretrain-detector`, see the README).
data: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro reference

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check components model_registry flows cli tests benchmarks

clean:
	rm -rf $(VENV) .gradeline .pytest_cache
