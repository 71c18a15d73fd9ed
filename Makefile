# The two commands of the README:
#   make run    set up .venv and run the whole pipeline on config/config.yaml
#   make test   set up .venv (with the test tools) and run the test suite
# and, after a run, `make report`: the HTML report of its results (results/report.html).
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: run test lint report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

# sdcnn.locks: the lock of a killed run goes, when its holder is known to be dead
run: $(VENV)/.run-deps
	$(BIN)/python -m sdcnn.locks
	$(BIN)/snakemake --cores $(CORES)

test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest

report: $(VENV)/.run-deps
	$(BIN)/snakemake --report results/report.html

lint: $(VENV)/.dev-deps
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

clean:
	rm -rf results .snakemake
