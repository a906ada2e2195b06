# airflow-mlops: two commands from a fresh clone.
#   make demo   install, initialise Airflow + MLflow in ./.mlops, run the churn pipeline once
#   make test   install, then the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export AIRFLOW_MLOPS_HOME := $(CURDIR)/.mlops
export AIRFLOW_HOME := $(CURDIR)/.mlops/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION := false
export GX_ANALYTICS_ENABLED := False
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export NO_PROXY := *

.PHONY: install browser demo dag-test test soak stack-up stack-down stack-test airflow mlflow-ui lint typecheck benchmark lock clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# The demo's stream (2026-01-01 .. 04-30): the data drifts on 03-01, a broken batch on 02-20, the concept drifts on
# 04-01. Also split as production sees it: unlabelled batches to score, and the labels that arrive later.
data/churn/.generated: include/churn_stream.py Makefile | install
	$(BIN)/python include/churn_stream.py --out data/churn --start 2026-01-01 --days 120 \
		--drift-from 2026-03-01 --bad-day 2026-02-20 --concept-drift-from 2026-04-01 \
		--batches data/churn_batches --labels data/churn_labels
	@touch $@

# A faulty warehouse re-export of the same stream up to 2026-03-31 (include/pipelines/churn_reexport.yaml, demo
# day 4): the same records, except the north region's churn flags inverted on 2026-03-11..03-20.
data/churn_reexport/.generated: include/churn_stream.py Makefile | install
	$(BIN)/python include/churn_stream.py --out data/churn_reexport --start 2026-01-01 --days 90 \
		--drift-from 2026-03-01 --bad-day 2026-02-20 --flipped-labels north:2026-03-11:2026-03-20
	@touch $@

# The second example pipeline's data: scikit-learn's bundled diabetes data as a CSV (include/pipelines/diabetes.yaml).
data/diabetes/diabetes.csv: include/diabetes_data.py | install
	$(BIN)/python include/diabetes_data.py --out data/diabetes

$(AIRFLOW_HOME)/airflow.db: | install
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(BIN)/airflow pools set mlops_promotion 1 "One promotion at a time (airflow-mlops)" > /dev/null

demo: install data/churn/.generated data/churn_reexport/.generated data/diabetes/diabetes.csv $(AIRFLOW_HOME)/airflow.db
	$(BIN)/python -m tools.demo

# One DAG run on the project-local state: make dag-test DAG=churn_retrain CONF='{"as_of": "2026-02-12"}'
DAG ?= churn_retrain
CONF ?= {}
dag-test: install data/churn/.generated data/diabetes/diabetes.csv $(AIRFLOW_HOME)/airflow.db
	$(BIN)/airflow dags test $(DAG) -c '$(CONF)'

# Two workers (pytest-xdist), each running whole test files (a file's module fixtures are built once); each worker
# has its own Airflow home and metadata DB (tests/conftest.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Headless Chromium for the Models page tests (tests/ui): Debian's chromium and chromium-driver, driven by
# Selenium; nothing else is downloaded. Skips apt when both are there; without root or apt it says what to install.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver >/dev/null; \
	else echo "make browser: install chromium and chromium-driver (Debian: sudo apt-get install chromium chromium-driver)" \
		"or the Models page browser tests (tests/ui) fail" >&2; fi

# The production shape without containers (PostgreSQL + Redis on loopback, CeleryExecutor with two
# workers, triggerer, MLflow server with basic auth): state and logs in .stack/. See docs/deploy.md.
stack-up: install
	$(BIN)/python -m tools.stack up

stack-down: install
	$(BIN)/python -m tools.stack down

# Brings its own stack up (in .stack-test/, fresh databases), drives it through the REST API, tears it down.
stack-test: install
	$(BIN)/python -m pytest tests/stack -m stack -v

# The slow scenarios (marked slow; CI runs them after make test): 100 simulated days through the real DAGs
# (tests/reliability/test_soak.py), and a performance retrain request run by the scheduler's own code end to end
# (tests/dags/test_performance_retrain.py).
soak: install
	$(BIN)/python -m pytest -m slow -v

airflow: install data/churn/.generated data/diabetes/diabetes.csv $(AIRFLOW_HOME)/airflow.db
	$(BIN)/airflow standalone

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(AIRFLOW_MLOPS_HOME)/mlflow.db \
		--default-artifact-root $(AIRFLOW_MLOPS_HOME)/mlartifacts --host 127.0.0.1 --port 5000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

benchmark: install
	$(BIN)/python benchmarks/run_all.py

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra stack --python-version 3.11 -o requirements.lock

clean:
	rm -rf .mlops .stack .stack-test data
