# Two commands set up a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= cpu,test           # EXTRAS=gpu,test installs the CUDA build of TensorFlow instead
BIN := $(VENV)/bin
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(strip $(EXTRAS)))

# No telemetry, and caches inside the repo.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.cache/dvc-site
export KERAS_HOME := $(CURDIR)/.cache/keras
export PIPELINE_CACHE_DIR := $(CURDIR)/.cache
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install repro test test-fast test-slow lint experiments results bench bench-train bench-tune bench-predict bench-linear ui dashboard cluster-up cluster-repro cluster-down clean-venv exp-show screenshots

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(STAMP)  ## create .venv and install the pinned set (requirements.lock)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable ".[$(strip $(EXTRAS))]"
	@rm -f $(VENV)/.installed-*
	@touch $@

repro: $(STAMP)  ## run the pipeline (dvc repro) on the dataset in params.yaml
	$(BIN)/dvc repro

# pytest's options (markers, -m 'not slow', --durations) are in pyproject.toml. `make test` and
# test-fast run on two xdist workers (measured: one, or three, take longer on 2 cores); the tests that
# share the `dvc repro`'d project or the tiny bundle stay on one worker (--dist loadgroup,
# tests/conftest.py). test-slow runs one test at a time: its tests are multi-process runs (a cluster,
# two workers) and kills timed against a stage's work, which a second worker would crowd.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup

test: $(STAMP)  ## the test suite CI runs (slow tests left out)
	$(BIN)/python -m pytest -q $(XDIST)

test-fast: $(STAMP)  ## the unit tier for the edit loop: no dvc repro, servers or multi-process runs
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not integration"

test-slow: $(STAMP)  ## run only the slow tests
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)  ## ruff (pipeline/, bench/, tests/, deploy/) and the import-linter layer contracts
	$(BIN)/ruff check pipeline bench tests deploy
	$(BIN)/lint-imports

experiments: $(STAMP)  ## the tutorials' experiments (experiments/*.yaml) with dvc exp run, then docs/RESULTS.md
	$(BIN)/python -m pipeline.experiments run --all --variant both --keep-going; \
	  status=$$?; $(BIN)/python -m pipeline.experiments results; exit $$status

results: $(STAMP)  ## docs/RESULTS.md from the experiments' MLflow runs, docs/BENCHMARKS.md from bench/results/*.json
	$(BIN)/python -m pipeline.experiments results

bench: $(STAMP)  ## tokenize speed against the tutorial loop (needs ../shared/data)
	$(BIN)/python bench/tokenize_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 20000

bench-train: $(STAMP)  ## training speed against model.fit on padded arrays (needs ../shared/data)
	$(BIN)/python bench/train_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 60000

bench-tune: $(STAMP)  ## tune trials/hour with pruning against without (needs data/prepared: make repro)
	$(BIN)/python bench/tune_speed.py --trials 20

bench-predict: $(STAMP)  ## pipeline.predict docs/s against the tutorial loop (needs ../shared/data)
	$(BIN)/python bench/predict_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 50000

bench-linear: $(STAMP)  ## the linear model out of core (hashed + SGD) against TF-IDF + liblinear (needs ../shared/data)
	$(BIN)/python bench/linear_scale.py --nsmc ../shared/data/nsmc/ratings_train.txt --imdb ../shared/data/imdb/aclImdb_train_test.tar.gz --copies 8

# One uvicorn worker and no job runner: the defaults (4 workers + 8 huey job consumers, used only
# by GenAI evaluation jobs) take ~2.8 GiB of processes to browse a few runs.
# MLflow 3.17's UI opens an experiment on its GenAI overview whatever the experiment's kind tag says;
# this link (or the sidebar's "Model training" switch, which the browser remembers) opens the runs table.
ui: $(STAMP)  ## browse the MLflow runs in mlruns/ at http://127.0.0.1:5000 (Ctrl-C stops it)
	@mkdir -p mlruns/artifacts
	@echo "runs table of an experiment: http://127.0.0.1:5000/#/experiments/<id>?workflowType=machine_learning"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
	  --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db \
	  --default-artifact-root file://$(CURDIR)/mlruns/artifacts \
	  --host 127.0.0.1 --port 5000 --workers 1

# STORAGE=journal:tune/optuna.journal or a postgresql:// URL browses those instead.
STORAGE ?= sqlite:///tune/optuna.db
dashboard: $(STAMP)  ## browse the Optuna studies at http://127.0.0.1:8080 (Ctrl-C stops it)
	@test -e tune/optuna.db || test "$(STORAGE)" != "sqlite:///tune/optuna.db" || \
	  { echo "no study yet: run the tune stage first (make repro, or dvc repro tune)"; exit 1; }
	$(BIN)/optuna-dashboard "$(patsubst journal:%,%,$(STORAGE))" --host 127.0.0.1 --port 8080

# The local cluster (docs/distributed.md, "Local cluster"): PostgreSQL and an MLflow server with basic
# auth on 127.0.0.1, the settings in .cache/cluster/cluster.env (mode 0600); deploy/cluster/*.sh.
TUNE_WORKERS ?= 2
TRAIN_WORKERS ?= 2
cluster-up: $(STAMP)  ## start PostgreSQL and the MLflow server (basic auth) on 127.0.0.1; settings in .cache/cluster/cluster.env
	deploy/cluster/up.sh

cluster-repro: $(STAMP)  ## dvc repro logging to the cluster, with TUNE_WORKERS (2) tune and TRAIN_WORKERS (2) train processes
	TUNE_WORKERS=$(TUNE_WORKERS) TRAIN_WORKERS=$(TRAIN_WORKERS) deploy/cluster/repro.sh

cluster-down:  ## stop the cluster, leaving no process; CLUSTER_PURGE=1 removes its data too
	deploy/cluster/down.sh

clean-venv:  ## remove .venv
	rm -rf $(VENV)

# `dvc exp show` has no settings file for its columns; this is its readable view: the values that
# compare models (dvc.yaml's metrics) and only the params that differ between the experiments shown,
# the best served model first. EXP_SHOW adds flags, e.g. EXP_SHOW="-A --md" (docs/tracking.md).
EXP_KEEP := Experiment|champion/|linear/|blend/|test/
EXP_DROP := Created|data/|models$$|pipeline/|tune/best_params
exp-show: $(STAMP)  ## dvc exp show, fitting a terminal: the comparison metrics and the params that differ
	$(BIN)/dvc exp show --no-pager --only-changed --keep '$(EXP_KEEP)' --drop '$(EXP_DROP)' \
	  --sort-by champion/test/accuracy --sort-order desc $(EXP_SHOW)

screenshots: $(STAMP)  ## PNGs of the MLflow UI over mlruns/ (runs table, newest train run) in docs/img/; needs chromium
	PYTHONPATH=tests $(BIN)/python -m helpers.browser --store mlruns/mlflow.db --out docs/img
