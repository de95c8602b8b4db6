# livecross — everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export LIVECROSS_HOME ?= $(CURDIR)/.livecross
export DAGSTER_HOME ?= $(LIVECROSS_HOME)/dagster_home
export GX_ANALYTICS_ENABLED ?= false
export DAGSTER_DISABLE_TELEMETRY ?= 1

.PHONY: setup demo dev test bench lint format clean tensorboard

setup: $(STAMP)

# torch first, pinned: the local CPU wheel. An unpinned torch would pull CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, dagster, great_expectations, s3fs, moto, pyarrow" 
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: infra/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp infra/dagster.yaml $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m assets.demo

dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

# TensorBoard over every variant's logs under the data root (a local root).
tensorboard: setup
	$(VENV)/bin/tensorboard --logdir $(LIVECROSS_HOME)/tensorboard --host 127.0.0.1 --port 6006

test: setup
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: setup
	@for b in bench/*.py; do $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(LIVECROSS_HOME)
