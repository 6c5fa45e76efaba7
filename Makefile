# The two commands of the README. Both set up everything on a fresh machine first.
#   make run    the main job: Rethinking Table 1 at the scale config.yaml names (smoke by default)
#   make test   the test suite
VENV      ?= .venv
CORES     ?= 2
DATA_ROOT ?= data
SNAKEMAKE_ARGS ?=
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test lint setup
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: setup
	snakemake --cores $(CORES) --config data_root=$(DATA_ROOT) $(SNAKEMAKE_ARGS)

test: setup
	python -m pytest -q

lint: setup
	snakemake --lint
	snakefmt --check Snakefile workflow/rules/
