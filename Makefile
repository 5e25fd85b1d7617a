# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is pinned to the CPU build (2.13.0) through constraints.txt; /opt/wheels holds it on the project's machines.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP_INSTALL := $(PIP) install --disable-pip-version-check -c constraints.txt $(FIND_LINKS)
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test demo install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/edgefleet demo $(DEMO_ARGS)

bench: install
	$(PY) bench/training_bench.py
	$(PY) bench/agent_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
