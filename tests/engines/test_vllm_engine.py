"""VLLMEngine (offline `vllm.LLM`) on the converted Gemma 3 270M. It runs where vLLM imports: in
`.venv-vllm` (CPU build), launched from the main suite by `test_vllm_engine_in_its_virtualenv`."""

import os
import subprocess
from pathlib import Path

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.types import Prompt

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("SELFTAUGHT_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))


def test_vllm_engine_generates_with_exact_logprobs():
    pytest.importorskip("vllm", reason="vllm is not importable here; see test_vllm_engine_in_its_virtualenv")
    import torch
    from transformers import AutoModelForCausalLM

    from selftaught.engines.vllm import VLLMEngine
    from selftaught.models.io import resolve_model_source

    model_dir = os.environ.get("SELFTAUGHT_GEMMA_DIR") or str(resolve_model_source("gemma-3-270m"))
    engine = VLLMEngine(model_dir, dtype="float32", max_model_len=512, gpu_memory_utilization=0.5)
    prompt = Prompt(id="q", messages=[], text="Question: What is 12 plus 7?\nAnswer:")
    [[greedy]] = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=12))
    assert "19" in greedy.text and len(greedy.logprobs) == len(greedy.token_ids)
    # the returned logprobs are the model's own: teacher-forced HF logprobs agree
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ids = torch.tensor([engine.encode_prompt(prompt) + greedy.token_ids])
    logps = torch.log_softmax(hf(ids).logits[0, :-1].float(), -1)
    start = ids.shape[1] - len(greedy.token_ids)
    expected = logps[start - 1 :].gather(-1, ids[0, start:, None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(greedy.logprobs), expected, atol=2e-2, rtol=0)
    samples = engine.generate(
        [prompt, prompt], SamplingParams(temperature=1.0, n=3, max_new_tokens=6, seed=5)
    )
    assert [len(s) for s in samples] == [3, 3] and [c.text for c in samples[0]] == [
        c.text for c in samples[1]
    ]


def test_vllm_engine_in_its_virtualenv():
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm imports here: the test above ran in this interpreter")
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-venv` (CI does)")
    from selftaught.models.io import resolve_model_source

    env = {**os.environ, "SELFTAUGHT_GEMMA_DIR": str(resolve_model_source("gemma-3-270m"))}  # converted here
    result = subprocess.run(
        [
            str(VLLM_PYTHON),
            "-m",
            "pytest",
            "-q",
            "-m",
            "slow",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_vllm_engine_generates_with_exact_logprobs",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout, result.stdout[-3000:]
