# The words a newcomer would guess: `make dev` runs the service locally, `make test` runs every check.
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
.DEFAULT_GOAL := help

PORT ?= 3000
INFO_FILE ?=
# Sandboxes (worker processes) per function in `make dev`: N, Function=N,... or both; empty:
# $SMS_LOCAL_CONCURRENCY, else the machine's cores.
CONCURRENCY ?=
STAGE ?= dev
SAM_CONFIG_ENV ?= $(STAGE)

VENV := .venv
SAM_VENV := .tools/sam
CHECKOV_VENV := .tools/checkov
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
CHECKOV := $(CHECKOV_VENV)/bin/checkov

# Python 3.13 is the Lambda runtime: look on PATH first, then in pyenv, and stop with a clear
# message when neither has it (`sam build` also needs it on PATH, see SAM_PATH below).
# Each candidate is run and asked for its real path, because a pyenv shim can exist on PATH for
# a version that is not selected.
PY313_PROBE := -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)'
PYTHON313 := $(shell \
	for c in "$$PYTHON313" python3.13 $$(command -v pyenv >/dev/null 2>&1 && \
	    for v in $$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | sort -rV); do \
	      PYENV_VERSION=$$v pyenv which python3.13 2>/dev/null; done) \
	    $$(command -v uv >/dev/null 2>&1 && uv python find 3.13 2>/dev/null) python3; do \
	  [ -n "$$c" ] && "$$c" $(PY313_PROBE) 2>/dev/null && break; \
	done)
SAM_PATH := $(dir $(PYTHON313)):$(PATH)

.PHONY: help
help:
	@echo "make dev      start the whole service locally (PORT=$(PORT), INFO_FILE=path for a JSON info file, CONCURRENCY=sandboxes per function)"
	@echo "make test     lint, types, template checks, unit, integration and end-to-end tests"
	@echo "make lint | typecheck | validate | scan | unit | integration | e2e | build | deploy | logs | openapi | bench | mutants"

.PHONY: python313
python313:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "error: Python 3.13 (the Lambda runtime) was not found." >&2; \
	  echo "  Looked at $$PYTHON313, python3.13 on PATH, pyenv's 3.13 versions and uv's." >&2; \
	  echo "  Install it (e.g. 'pyenv install 3.13', 'uv python install 3.13' or your OS package) and retry." >&2; \
	  exit 1; fi

$(VENV)/.installed: pyproject.toml | python313
	@test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# SAM CLI pins its own boto3 and pydantic, so it lives in a virtualenv of its own.
$(SAM_VENV)/.installed: | python313
	@test -x $(SAM_VENV)/bin/python || $(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli>=1.130,<2'
	@touch $@

# Checkov pins an exact boto3 (and old networkx/packaging), so it too lives on its own.
$(CHECKOV_VENV)/.installed: | python313
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'
	@touch $@

.PHONY: install
install: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

.PHONY: dev
dev: $(VENV)/.installed
	$(VENV)/bin/sms-gateway-local --port $(PORT) $(if $(INFO_FILE),--info-file $(INFO_FILE)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

.PHONY: lint
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: format
format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: typecheck
typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy layers/shared/sms_gateway local/sms_local tools/sms_tools functions tests bench mutation

.PHONY: validate
validate: $(SAM_VENV)/.installed
	PATH="$(SAM_PATH)" $(SAM) validate --lint

# The template's security scan (.checkov.yaml says what and why): silent when clean, its
# report when not. Checkov exits 0 on a template it could not parse, hence the grep.
.PHONY: scan
scan: $(CHECKOV_VENV)/.installed
	@out=$$($(CHECKOV) --config-file .checkov.yaml 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ] || grep -q "Parsing errors" <<<"$$out" || ! grep -q "Passed checks" <<<"$$out"; then \
	  echo "$$out"; echo "make scan: fix the findings above or suppress them with a reason" >&2; exit 1; \
	fi

.PHONY: build
build: $(SAM_VENV)/.installed
	PATH="$(SAM_PATH)" $(SAM) build

.PHONY: deploy
deploy: build
	PATH="$(SAM_PATH)" $(SAM) deploy --config-env $(SAM_CONFIG_ENV)

.PHONY: logs
logs: $(SAM_VENV)/.installed
	PATH="$(SAM_PATH)" $(SAM) logs --config-env $(SAM_CONFIG_ENV) --tail

.PHONY: unit
unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

.PHONY: integration
integration: $(VENV)/.installed
	$(PY) -m pytest tests/integration

.PHONY: e2e
e2e: $(VENV)/.installed
	$(PY) -m pytest tests/e2e

.PHONY: pytest
pytest: $(VENV)/.installed
	$(PY) -m pytest tests

.PHONY: test
test: lint typecheck validate scan build pytest

.PHONY: openapi
openapi: $(VENV)/.installed
	$(PY) -m sms_tools.openapi docs/openapi.json

.PHONY: bench
bench: $(VENV)/.installed
	$(PY) -m bench.run $(if $(N),--messages $(N))

# Mutation testing of the status machine, the send, scheduling, the handoff and the status callback
# (mutation/run.py); rewrites MUTANTS.md. Not part of `make test`: it runs the tests once per mutant.
.PHONY: mutants
mutants: $(VENV)/.installed
	$(PY) -m mutation.run $(if $(RESUME),--resume)

.PHONY: clean
clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache build
