# opendepot: every target sets up its own virtual environment (.venv) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
WORKERS ?= 2

.PHONY: install demo test check lint ruff mypy cog geo bench clean browser

# urllib3-future (niquests, under datagouv-client) replaces urllib3 in place unless built from its
# sdist with URLLIB3_NO_OVERRIDE: botocore, requests and schemathesis keep the real urllib3.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	URLLIB3_NO_OVERRIDE=1 $(BIN)/python -m pip install --quiet --no-binary urllib3-future -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install opendepot with its test tools

demo: $(STAMP) ## the main job: local stack (moto), real files dropped, published, index on :8080
	$(BIN)/opendepot demo $(ARGS)

test: $(STAMP) browser ## every test (unit, functional on moto, end to end on the real files, the site in Chromium)
	$(BIN)/python -m pytest $(ARGS)

check: $(STAMP) ## the fast lane: every test but the end-to-end ones (marker e2e), on $(WORKERS) workers
	$(BIN)/python -m pytest -m "not e2e" -n $(WORKERS) --dist worksteal $(ARGS)

lint: $(STAMP) ruff mypy ## cfn-lint on the SAM template, ruff, mypy (strict on shared/opendepot)
	$(BIN)/cfn-lint template.yaml

ruff: $(STAMP) ## ruff on every Python file (rules in pyproject.toml)
	$(BIN)/ruff check .

mypy: $(STAMP) ## mypy: strict on shared/opendepot; functions, infra and bench where annotated
	$(BIN)/mypy

bench: $(STAMP) ## benchmark vs DuckDB (with checks), Polars, the Arrow floor and Frictionless; cold starts: table + bench/results.json (ARGS="--quick")
	$(BIN)/python -m bench.run $(ARGS)

browser: ## Debian's headless Chromium for tests/browser (apt-get, as root or through sudo, when missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }
	@chromium --version 2>/dev/null

cog: $(STAMP) ## rebuild the shipped INSEE COG reference from ../shared/data/real/cog-insee
	$(BIN)/python -m infra.build_cog

geo: $(STAMP) ## rebuild the shipped map geometry (SVG paths, insets) from ../shared/data/geo
	$(BIN)/python -m infra.build_geo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
