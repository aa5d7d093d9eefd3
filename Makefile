# The kit's commands. Everything runs from the project's own .venv, made on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The kit's language, en or ja: HANDSON_LANG if set, else Japanese when the system's LANG
# is (so `make course LANG=ja` works too), else English.
KIT_LANG := $(if $(HANDSON_LANG),$(HANDSON_LANG),$(if $(filter ja%,$(LANG)),ja,en))

.PHONY: course test browser lab outputs editions exercises lint bench sandbox-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Run the course (notebooks 00 and 07) for student01 on the local sandbox, in the kit's
## language (make course LANG=ja: the Japanese edition).
course: $(STAMP)
	$(PY) -m handson sandbox start
	$(PY) -m handson course --student student01 --notebooks 00,07 --out runs --lang $(KIT_LANG)

## The whole test suite, notebooks (nbval) and the browser test included, on two workers
## (pytest-xdist): the notebooks in order on one, the test files on the other (see conftest.py).
test: $(STAMP) browser
	$(PY) -m ruff check handson tests app benchmarks tools conftest.py
	$(PY) -m pytest -n 2

## Debian's Chromium, its driver and a Japanese font, for the browser test
## (tests/browser/): installed with apt-get (as root, else with sudo) where missing.
BROWSER_PACKAGES := chromium chromium-driver fonts-ipafont-gothic
browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q $(BROWSER_PACKAGES); }

## JupyterLab on the notebooks, with the sandbox running and its terminals set up for it
## (the AWS CLI, curl and handson talk to the sandbox as student01).
lab: $(STAMP)
	$(PY) -m handson lab --lang $(KIT_LANG)  # from the project root: notebooks/, exercises/, solutions/ (ja/ in each: Japanese)

## Re-execute the notebooks of both editions in place so the committed outputs are current.
outputs: $(STAMP)
	$(PY) tools/refresh_outputs.py notebooks,solutions

## The Japanese edition: new English text into the catalogs (notebooks/locale/ja/*.po,
## solutions/locale/ja/*.po), then notebooks/ja/ and solutions/ja/ built from them.
editions: $(STAMP)
	$(PY) tools/editions.py update
	$(PY) tools/editions.py build

## Write exercises/ from solutions/, both editions (answers become stubs, outputs cleared).
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
