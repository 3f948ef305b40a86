# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv when missing,
# install everything (torch==2.13.0 unless a torch is already there), and are idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.selftaught-installed
PYTEST := $(PY) -m pytest

.PHONY: install demo test test-slow lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/selftaught demo

test: install
	$(PYTEST) -q

test-slow: install
	$(PYTEST) -q -m slow

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy src/selftaught

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
