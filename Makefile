# The kit's commands. Everything runs from the project's own .venv, made on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: course test lab outputs exercises lint bench sandbox-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the course (notebooks 00 and 07) for student01 on the local sandbox.
course: $(STAMP)
	$(PY) -m handson sandbox start
	$(PY) -m handson course --student student01 --notebooks 00,07 --out runs

## The whole test suite, notebooks (nbval) included, on two workers (pytest-xdist): the
## notebooks in order on one, the test files on the other (see conftest.py).
test: $(STAMP)
	$(PY) -m ruff check handson tests app benchmarks tools conftest.py
	$(PY) -m pytest -n 2

## JupyterLab on the notebooks, with the sandbox running and its terminals set up for it
## (the AWS CLI, curl and handson talk to the sandbox as student01).
lab: $(STAMP)
	$(PY) -m handson lab  # from the project root: notebooks/, exercises/, solutions/

## Re-execute the notebooks in place so the committed outputs are current.
outputs: $(STAMP)
	$(PY) tools/refresh_outputs.py notebooks,solutions

## Write exercises/*.ipynb from solutions/*.ipynb (answers become stubs, outputs cleared).
exercises: $(STAMP)
	$(PY) -m handson.exercises

lint: $(STAMP)
	$(PY) -m ruff check handson tests app benchmarks tools conftest.py
	$(PY) -m ruff format --check handson tests app benchmarks tools conftest.py

bench: $(STAMP)
	$(PY) benchmarks/sandbox_bench.py

sandbox-stop: $(STAMP)
	$(PY) -m handson sandbox stop

clean:
	-$(PY) -m handson sandbox stop
	rm -rf $(VENV) runs
