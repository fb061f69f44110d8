# Two commands do everything on a fresh machine with Python 3.11:
#   make run    set up, start the sandbox, run a first full sync, serve the Dagster UI with schedules on
#   make test   set up and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test bench bench-100k bench-1m sandbox clean

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

# Issue 13's table (docs/benchmarks.md). `make bench` is the subset that runs in under 15 minutes on 2 cores:
# the AFAS extraction, Spotler with its feedback path and Mailchimp at 100,000 contacts, Xelion (one write per
# addressable, so its full sync and floor take the longest) at 40,000 with one delta size. `make bench-100k` is
# everything at 100,000; `make bench-1m` at 1,000,000 prints its estimate first.
bench: $(STAMP)
	$(VENV)/bin/python bench/report.py --contacts 100000 --deltas 100 1000 --destinations spotler mailchimp --repeats 3
	$(VENV)/bin/python bench/report.py --contacts 40000 --deltas 100 --destinations xelion --no-extract --repeats 2

bench-100k: $(STAMP)
	$(VENV)/bin/python bench/report.py --contacts 100000

bench-1m: $(STAMP)
	$(VENV)/bin/python bench/report.py --contacts 1000000 --deltas 100 1000 10000

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache
