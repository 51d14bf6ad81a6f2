# Two entry points for a fresh machine: `make run` and `make test`.
# The virtual environment lives outside the clone, keyed by a hash of the pinned requirements,
# so a warm machine (or a second clone) reuses it and a changed pin builds a new one.
PYTHON ?= python3
REQ_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
VENV ?= $(HOME)/.cache/hpsearch/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
# MLflow's tracking server for the tests, in its own environment (see requirements-mlflow-server.txt).
MLFLOW_SERVER_HASH := $(shell cat requirements-mlflow-server.txt | sha256sum | cut -c1-16)
MLFLOW_SERVER_VENV ?= $(HOME)/.cache/hpsearch/mlflow-server-$(MLFLOW_SERVER_HASH)
# The lossy JPEG copy of CIFAR-10 shipped beside this repo when present, else ./data.
DATA_ROOT ?= $(if $(wildcard ../shared/datasets/cifar10-jpeg/train),../shared/datasets/cifar10-jpeg,data)
STAMP := $(shell date +%Y%m%d-%H%M%S)

.PHONY: venv mlflow-server run run-quick train test lint bench-loader bench-train bench-search bench-optimizer bench-gpu
venv: $(VENV)/.ready
mlflow-server: $(MLFLOW_SERVER_VENV)/.ready

# $(call environment,FOLDER,REQUIREMENTS): a virtual environment built from scratch. .ready is
# written last, so an interrupted install is redone from scratch next time.
define environment
rm -rf $(1)
$(PYTHON) -m venv $(1)
$(1)/bin/pip install --quiet --disable-pip-version-check -r $(2)
touch $(1)/.ready
endef

# No file prerequisites: each path is keyed by its requirements' hash (a fresh clone's mtimes
# are new).
$(VENV)/.ready:
	$(call environment,$(VENV),requirements.txt)

$(MLFLOW_SERVER_VENV)/.ready:
	$(call environment,$(MLFLOW_SERVER_VENV),requirements-mlflow-server.txt)

# The main job: the one command a user runs on their own folder, here on CIFAR-10 with a
# 10-minute budget for the whole run (planned for this machine); a fresh results folder per run.
BUDGET ?= 10m
run: venv
	$(PY) -m tuner run --data-root $(DATA_ROOT) --time-budget $(BUDGET) --storage-path results/$(STAMP)

# The hand-written CPU search of search_spaces/quick.yaml (what `make run` was before the planner).
run-quick: venv
	$(PY) -m tuner run search_spaces/quick.yaml --data-root $(DATA_ROOT) --storage-path results/$(STAMP)

# Production training of the default model, evaluated once on the test split.
train: venv
	$(PY) -m trainable train --config configs/cifar10_smallnet.yaml --data-root $(DATA_ROOT) --out results/train-$(STAMP) --test

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint mlflow-server
	HPSEARCH_MLFLOW_SERVER=$(MLFLOW_SERVER_VENV)/bin/mlflow $(PY) -m pytest

bench-loader: venv
	$(PY) -m bench.trainer.loader --data-root $(DATA_ROOT)

bench-train: venv
	$(PY) -m bench.trainer.train_cifar --data-root $(DATA_ROOT)

bench-search: venv
	$(PY) -m bench.search.end_to_end search_spaces/quick.yaml --data-root $(DATA_ROOT)

bench-optimizer: venv
	$(PY) -m bench.trainer.optimizer

# On one CUDA GPU (refuses in one line without one); `$(PY) -m bench.device.gpu --smoke` runs on a CPU.
bench-gpu: venv
	$(PY) -m bench.device.gpu --data-root $(DATA_ROOT)
