# The two commands of the README:
#   make run    set up .venv and run the whole pipeline on config/config.yaml
#   make test   set up .venv (with the test tools) and run the test suite
# and, after a run, `make report`: the HTML report of its results (results/report.html);
# `make mutate`: mutation testing of the core modules (docs/mutation-testing.md; not in CI).
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: run test lint report mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

# sdcnn.workflow.locks: the lock of a killed run goes, when its holder is known to be dead
# and the last line: held-out synthetic accuracy, real accuracy and their gap
run: $(VENV)/.run-deps
	$(BIN)/python -m sdcnn.workflow.locks
	$(BIN)/snakemake --cores $(CORES)
	@$(BIN)/python -m sdcnn.reporting.summary results/summary.json

# three pytest workers on 2 cores: much of the suite waits (the SLURM tests are 1/4 CPU,
# 3/4 waiting on the queue); each test file runs on one worker, so its module fixtures
# run once, and the shared runs (tests/conftest.py) run once for all workers;
# tests/unit, tests/workflow, tests/contract: what each folder holds is in tests/conftest.py
TEST_WORKERS ?= 3
test: $(VENV)/.dev-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

report: $(VENV)/.run-deps
	$(BIN)/snakemake --report results/report.html

lint: $(VENV)/.dev-deps
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

# mutmut (pinned in requirements-mutation.txt) over the modules and fast unit tests that
# [tool.mutmut] in pyproject.toml names; a fresh run each time (its run times: docs/mutation-testing.md).
mutate: $(VENV)/.dev-deps
	$(BIN)/python -c "import mutmut" 2>/dev/null || \
		$(BIN)/python -m pip install --disable-pip-version-check -r requirements-mutation.txt
	rm -rf mutants
	nice -n 10 $(BIN)/mutmut run --max-children $(CORES)
	$(BIN)/mutmut export-cicd-stats
	$(BIN)/mutmut results
	$(BIN)/python -c "import json; s = json.load(open('mutants/mutmut-cicd-stats.json')); \
		caught = s['killed'] + s['timeout']; share = 100 * caught / s['total']; \
		print(f\"mutation score: {caught} of {s['total']} caught ({share:.1f}%),\", \
		f\"{s['survived']} survived, {s['no_tests']} untested\")"

clean:
	rm -rf results .snakemake mutants
