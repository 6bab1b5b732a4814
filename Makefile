# The workbook's commands. After cloning, two do everything:
#   make reproduce   set up the environment, execute every notebook, write every figure to figures/
#   make test        set up the environment, run the unit tests and the notebooks (nbval, strict)
#
# Environment: an already active conda/venv environment that has this checkout installed
# (`pip install -e .[test]`) is used as it is; otherwise a local virtual environment .venv/ is
# created or refreshed (only when pyproject.toml changed since the last install).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=

# Python of an active environment that imports *this* checkout's helpers (checked from /, so the
# helpers/ folder of the current directory cannot fake it).
ACTIVE_PY := $(shell if [ -n "$$VIRTUAL_ENV$$CONDA_PREFIX" ] && [ "$$VIRTUAL_ENV" != "$(abspath $(VENV))" ]; then \
	cd / && python -c "import helpers, pathlib, sys; p = pathlib.Path(helpers.__file__).resolve().parents[1]; sys.exit(p != pathlib.Path('$(CURDIR)').resolve()); " 2>/dev/null \
	&& command -v python; fi)

ifeq ($(ACTIVE_PY),)
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.installed
else
PY := $(ACTIVE_PY)
ENV_STAMP :=
endif

.PHONY: env reproduce test test-browser lint lab data bench clean-env help

help:
	@echo "make reproduce  execute every notebook on the bundled data, figures -> figures/"
	@echo "make test       unit tests + notebooks compared with their stored outputs (nbval)"
	@echo "make test-browser  every notebook run in JupyterLab in Chromium, widgets moved, screenshots -> docs/"
	@echo "make lab        open JupyterLab in the workbook's environment"
	@echo "make data       regenerate data_samples/ from their seeds"
	@echo "make bench      side-by-side benchmarks against the peer tools (long)"
	@echo "make lint       ruff check and the import rules (import-linter)"

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info < (3, 10))" || \
		{ echo "Python >= 3.10 is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	@touch $@

env: $(ENV_STAMP)
	@echo "environment: $(PY)"

reproduce: env
	$(PY) -m helpers.cli reproduce

test: lint
	$(PY) -m helpers.cli versions
	$(PY) -m pytest --durations=15 $(PYTEST_ARGS)

# Needs the system Chromium (Debian/Ubuntu: apt-get install chromium); Playwright drives it, no download.
test-browser: env
	NMC_BROWSER_TEST=1 $(PY) -m pytest tests/browser -v -s $(PYTEST_ARGS)

# ruff, then the package's dependency rules ([tool.importlinter] in pyproject.toml)
lint: env
	$(PY) -m ruff check .
	$(PY) -c "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"

lab: env
	$(PY) -m jupyter lab notebooks/

data: env
	$(PY) -m helpers.cli data

bench: env
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run_all.py

clean-env:
	rm -rf $(VENV)
