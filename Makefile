# Set-up is part of every target: `make run` and `make test` work on a fresh Python 3.11 machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The real Fashion-MNIST files, when this checkout sits beside ../shared; else ./data (downloaded).
SHARED_DATA := $(abspath ../shared/data/fashion-mnist)
export FMNIST_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/*.gz),$(SHARED_DATA),$(abspath data))
export MLFLOW_EXPERIMENT_NAME ?= fmnist
ARGS ?=
# `mlflow run --env-manager local` calls `python` from PATH: make it this venv's.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-fast ui clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev,ray]"
	touch $@

run: setup  ## the main job through MLflow Projects, in this venv
	$(BIN)/mlflow run . -e main --env-manager local --experiment-name $(MLFLOW_EXPERIMENT_NAME) $(ARGS)

test: setup  ## the whole suite (CI runs this); ends with where the time went (tests/timing.py)
	$(BIN)/python -m pytest $(ARGS)

test-fast: setup  ## the inner loop: no server, cluster, browser or child process (tests not marked slow)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

ui: setup
	$(BIN)/fmnist ui --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) mlruns mlartifacts mlflow.db .pytest_cache

# Team tracking server (docs/team-server.md): PostgreSQL + mlflow server, with accounts (SERVER_ARGS=--no-auth: none).
SERVER_ARGS ?=
.PHONY: server server-status server-stop
server: setup  ## start it; prints `export MLFLOW_TRACKING_URI=http://127.0.0.1:5050`
	@scripts/team_server.sh start $(SERVER_ARGS)

server-status: setup
	@scripts/team_server.sh status $(SERVER_ARGS)

server-stop: setup  ## stop it (data kept; SERVER_ARGS=--purge deletes it)
	@scripts/team_server.sh stop $(SERVER_ARGS)
