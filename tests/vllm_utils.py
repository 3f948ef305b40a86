"""Run slow vLLM tests inside `.venv-vllm` (vLLM pins its own torch/transformers, so it lives in its
own virtualenv; `make vllm-venv` builds it). A test file lists its vLLM tests and adds one wrapper:

    def test_in_its_virtualenv():
        run_in_vllm_venv(__file__, VLLM_TESTS)

The wrapper skips where vllm imports (the listed tests then ran in this interpreter), fails with the
fix when the virtualenv is missing, and otherwise requires every listed test to pass there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("SELFTAUGHT_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))


def run_in_vllm_venv(
    test_file: str, names: list[str], *, env: dict[str, str] | None = None, timeout: int = 1800
) -> None:
    """Run `test_file::name` for each of `names` with `.venv-vllm`'s pytest; all must pass."""
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm imports here: the tests above ran in this interpreter")
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-venv` (CI does)")
    result = subprocess.run(
        [str(VLLM_PYTHON), "-m", "pytest", "-q", "-m", "slow", "-p", "no:cacheprovider"]
        + [f"{test_file}::{name}" for name in names],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert f"{len(names)} passed" in result.stdout, result.stdout[-3000:]
