# Two commands do everything on a fresh machine with Python 3.11:
#   make run    set up, start the sandbox, run a first full sync, serve the Dagster UI with schedules on
#   make test   set up and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test bench sandbox clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/afas-pipeline up

test: $(STAMP)
	$(VENV)/bin/python -m pytest

sandbox: $(STAMP)
	$(VENV)/bin/afas-pipeline sandbox

bench: $(STAMP)
	$(VENV)/bin/python bench/bench_extract.py
	$(VENV)/bin/python bench/bench_sync.py
	$(VENV)/bin/python bench/bench_feedback.py
	$(VENV)/bin/python bench/bench_mailchimp.py
	$(VENV)/bin/python bench/bench_lookup.py
	$(VENV)/bin/python bench/bench_xelion.py

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache
