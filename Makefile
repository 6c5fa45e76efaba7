# The two commands of the README. Both set up everything on a fresh machine first.
#   make run    the main job: every study of config.yaml at the scale it names (smoke by default)
#   make test   the test suite
# STANDIN=cifar100 (or "cifar10 cifar100") adds a synthetic stand-in for datasets that cannot be
# had (no internet, no local copy): DATA_ROOT's files are linked into $(STANDIN_ROOT) beside a
# generated <dataset>-standin.tar.gz, and tables built on it say so. Never report its numbers.
# ImageNet is never downloaded: where DATA_ROOT holds no ImageNet tree (imagenet/train or train/),
# a tiny synthetic ImageFolder stands in for it, with a warning, so the ImageNet studies' smoke
# runs still work; put the ILSVRC-2012 tree there for real numbers.
VENV      ?= .venv
CORES     ?= 2
DATA_ROOT ?= data
SNAKEMAKE_ARGS ?=
STANDIN   ?=
STANDIN_ROOT ?= results/data-standin
export PATH := $(abspath $(VENV))/bin:$(PATH)
ifeq ($(wildcard $(DATA_ROOT)/imagenet/train $(DATA_ROOT)/train)$(filter-out run,$(MAKECMDGOALS)),)
ifeq ($(filter imagenet,$(STANDIN)),)
override STANDIN += imagenet
$(info make: no ImageNet tree under $(DATA_ROOT): a SYNTHETIC stand-in takes its place (its numbers mean nothing))
endif
endif

.PHONY: run test lint setup
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,torch-pruning]'
	touch $@

# After the run, Snakemake's HTML report of every study (results/report.html) from the same DAG.
ifeq ($(strip $(STANDIN)),)
run: setup
	snakemake --cores $(CORES) --config data_root=$(DATA_ROOT) $(SNAKEMAKE_ARGS)
	snakemake --report results/report.html --config data_root=$(DATA_ROOT) $(SNAKEMAKE_ARGS)
else
run: setup
	mkdir -p $(STANDIN_ROOT)
	for f in $(abspath $(DATA_ROOT))/*; do [ -e "$$f" ] && ln -sfn "$$f" $(STANDIN_ROOT)/; done; true
	for d in $(STANDIN); do prunebench standin --dataset $$d --out-dir $(STANDIN_ROOT); done
	snakemake --cores $(CORES) --config data_root=$(STANDIN_ROOT) $(SNAKEMAKE_ARGS)
	snakemake --report results/report.html --config data_root=$(STANDIN_ROOT) $(SNAKEMAKE_ARGS)
endif

# one test process per core; a file's module fixtures may run once in each
test: setup
	python -m pytest -q -n auto --dist worksteal

lint: setup
	snakemake --lint
	snakefmt --check Snakefile workflow/rules/
