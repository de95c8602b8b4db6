# livecross — everything a fresh machine needs goes through these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED ?= false
export DAGSTER_DISABLE_TELEMETRY ?= 1

# The data root: a local directory (made absolute) or s3://bucket/prefix. The Dagster
# instance is always a local directory: $LIVECROSS_HOME/dagster_home for a local root,
# ./.livecross/dagster_home for an S3 root (never derived from the URL). Neither value is
# ever a make target or prerequisite: a URL's colon would read as a rule.
LIVECROSS_HOME ?= $(CURDIR)/.livecross
ifneq ($(filter s3://%,$(LIVECROSS_HOME)),)
S3_ROOT := 1
S3_DAGSTER_HOME := $(CURDIR)/.livecross/dagster_home
DAGSTER_HOME ?= $(S3_DAGSTER_HOME)
else ifneq ($(findstring ://,$(LIVECROSS_HOME)),)
$(error LIVECROSS_HOME=$(LIVECROSS_HOME): use a local directory or s3://bucket/prefix)
else
override LIVECROSS_HOME := $(abspath $(LIVECROSS_HOME))
DAGSTER_HOME ?= $(LIVECROSS_HOME)/dagster_home
endif
ifneq ($(findstring ://,$(DAGSTER_HOME)),)
$(error DAGSTER_HOME=$(DAGSTER_HOME): the Dagster instance must be a local directory)
endif
override DAGSTER_HOME := $(abspath $(DAGSTER_HOME))
export LIVECROSS_HOME DAGSTER_HOME

.PHONY: setup browser instance demo dev test bench lint format clean tensorboard ablation content-tables

setup: $(STAMP)
	@$(PY) -m assets.quiet_warnings --install-pth

# torch first, pinned: the local CPU wheel. An unpinned torch would pull CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch, dagster, great_expectations, s3fs, moto, pyarrow" 
	touch $(STAMP)

# Debian's Chromium, for the browser test (CI runs as root; sudo only when not root).
browser:
	@command -v chromium >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make browser: chromium not found and no apt-get here: install Chromium (the browser test needs it)" >&2; exit 1; }; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# The local Dagster instance (infra/dagster.yaml copied once, never overwritten: it may
# be a Postgres config by now) and .env, so that plain `dagster ...` commands run from
# this directory reach the same instance and data root (ml/envfile.py).
instance: setup
	@mkdir -p "$$DAGSTER_HOME"
	@if [ ! -f "$$DAGSTER_HOME/dagster.yaml" ]; then \
	  cp infra/dagster.yaml "$$DAGSTER_HOME/dagster.yaml"; \
	elif ! cmp -s infra/dagster.yaml "$$DAGSTER_HOME/dagster.yaml"; then \
	  echo "note: $$DAGSTER_HOME/dagster.yaml differs from infra/dagster.yaml (kept as it is; diff them: the run queue settings there keep each backfill's hours in order)"; \
	fi
	@$(PY) -m ml.envfile .env DAGSTER_HOME="$$DAGSTER_HOME" LIVECROSS_HOME="$$LIVECROSS_HOME"

demo: instance
	$(PY) -m assets.demo

# The Moment & Cross ablation (python -m assets.ablation --help): ABLATION_ARGS for its
# size, e.g. ABLATION_ARGS="--users 20000 --hours 24 --results docs/RESULTS.md".
ablation: instance
	$(PY) -m assets.ablation $(ABLATION_ARGS)

# ContentCTR's Tables 1, 3 and 4 (the same command, --study content; CONTENT_ARGS its size).
content-tables: instance
	$(PY) -m assets.ablation --study content $(CONTENT_ARGS)

dev: instance
	$(VENV)/bin/dagster dev -w workspace.yaml

# TensorBoard over every variant's logs under the data root (TB_PORT, default 6006). On S3
# TensorBoard reads the bucket itself (boto3: the usual AWS_* variables, AWS_ENDPOINT_URL).
tensorboard: setup
	$(VENV)/bin/tensorboard --logdir "$$LIVECROSS_HOME/tensorboard" --host 127.0.0.1 --port "$${TB_PORT:-6006}"

test: setup browser
	$(PY) -m pytest -n 2 --dist loadfile -q

bench: setup
	@for b in bench/[!_]*.py; do $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Removes the data root. An S3 root is deleted (through s3fs) only with FORCE=1, and never
# a whole bucket; its default local instance (./.livecross/dagster_home) goes with it.
clean:
ifdef S3_ROOT
	@if [ "$(FORCE)" != 1 ]; then \
	  echo "make clean: LIVECROSS_HOME=$$LIVECROSS_HOME is on S3: this would delete every object under it. Run 'make clean FORCE=1' to do so." >&2; exit 1; fi
	@test -x $(PY) || { echo "make clean: deleting an S3 root needs the venv: run make setup first" >&2; exit 1; }
	$(PY) -m ml.io.clean "$$LIVECROSS_HOME"
ifeq ($(DAGSTER_HOME),$(S3_DAGSTER_HOME))
	rm -rf "$$DAGSTER_HOME"
endif
else
	rm -rf "$$LIVECROSS_HOME"
endif
