# opendepot: every target sets up its own virtual environment (.venv) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install demo test lint cog bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install opendepot with its test tools

demo: $(STAMP) ## the main job: local stack (moto), real files dropped, published, index on :8080
	$(BIN)/opendepot demo $(ARGS)

test: $(STAMP) ## every test (unit, functional on moto, end to end on the real files)
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP) ## cfn-lint on the SAM template
	$(BIN)/cfn-lint template.yaml

bench: $(STAMP) ## benchmark vs the Arrow floor and Frictionless: table + bench/results.json (ARGS="--quick")
	$(BIN)/python -m bench.run $(ARGS)

cog: $(STAMP) ## rebuild the shipped INSEE COG reference from ../shared/data/real/cog-insee
	$(BIN)/python -m infra.build_cog

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
