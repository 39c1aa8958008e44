# crm_sync: the two commands that matter are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: help venv test test-distributed lint format bench demo up sandbox sandbox-down lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the pinned requirements

lint: $(STAMP)  ## ruff (style, docstrings, security rules)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff dags plugins sandbox tests benchmarks >/dev/null || true

format: $(STAMP)  ## apply ruff's fixes
	$(BIN)/ruff check --fix .

test: $(STAMP)  ## set up everything and run ruff and the whole test suite (in-process, then on Celery)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not distributed" -n auto --dist loadfile $(PYTEST_ARGS)
	$(MAKE) test-distributed

test-distributed: $(STAMP)  ## the DAGs on a real CeleryExecutor stack (PostgreSQL + Redis), a worker killed mid-sync
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || .ci/start-redis
	$(BIN)/python -m pytest tests/distributed -m distributed $(PYTEST_ARGS)

bench: $(STAMP)  ## run the benchmarks and write benchmarks/RESULTS.md
	$(BIN)/python benchmarks/run_all.py --out benchmarks/RESULTS.md

demo: $(STAMP)  ## run the main job end to end against the sandbox
	$(BIN)/python -m demo

up: $(STAMP)  ## airflow standalone against the sandbox (login printed)
	$(BIN)/python -m sandbox up
	set -a; . .sandbox/connections.env; set +a; PATH=$(CURDIR)/$(BIN):$$PATH AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__CORE__PARALLELISM=4 $(BIN)/airflow standalone

sandbox: $(STAMP)  ## start every emulator in the background; writes .sandbox/connections.env
	$(BIN)/python -m sandbox up

sandbox-down: $(STAMP)  ## stop what `make sandbox` started
	$(BIN)/python -m sandbox down

lock:  ## re-resolve requirements.in into a fully pinned requirements.txt
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -r requirements.in
	( echo "# Generated from requirements.in by 'make lock' (pip freeze of a clean venv). Do not edit by hand."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable ) > requirements.txt
	rm -rf .venv-lock

clean:  ## remove the venv, caches and local Airflow/sandbox state
	rm -rf $(VENV) .airflow .sandbox .pytest_cache .ruff_cache .hypothesis
