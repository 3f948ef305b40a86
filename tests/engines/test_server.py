"""`selftaught serve` through the official `openai` client: answers equal HFEngine's own, logprobs and
token ids, usage, errors, the bearer key, dynamic batching, and the CLI on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.server import EngineServer
from selftaught.models.io import load_model
from selftaught.types import Prompt
from tests.engines.faults import Fault, FaultInjector

MODEL = "tiny"


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir: str) -> tuple[Any, Any]:
    return load_model(tiny_model_dir)


@pytest.fixture
def engine(model_and_tokenizer) -> HFEngine:
    return HFEngine(*model_and_tokenizer)


@pytest.fixture
def server(engine: HFEngine) -> Iterator[EngineServer]:
    with EngineServer(engine, engine.tokenizer, MODEL, port=0).start() as running:
        yield running


def client_for(server: EngineServer, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=api_key, **({"max_retries": 0} | kwargs))


def chat(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def test_models_lists_the_served_name(server):
    assert [m.id for m in client_for(server).models.list().data] == [MODEL]


def test_completion_equals_the_engine_with_logprobs_token_ids_and_usage(server, engine):
    expected = engine.generate(
        [Prompt(id="p", messages=[], text="12 + 7 =")], SamplingParams(temperature=0, max_new_tokens=6)
    )
    response = client_for(server).completions.create(
        model=MODEL,
        prompt="12 + 7 =",
        max_tokens=6,
        temperature=0,
        logprobs=1,
        extra_body={"return_tokens_as_token_ids": True},
    )
    (choice,) = response.choices
    (completion,) = expected[0]
    assert (choice.text, choice.finish_reason) == (completion.text, completion.finish_reason)
    assert choice.logprobs.tokens == [f"token_id:{t}" for t in completion.token_ids]
    assert choice.logprobs.token_logprobs == pytest.approx(completion.logprobs, abs=1e-5)
    prompt_ids = engine.encode_prompt(Prompt(id="p", messages=[], text="12 + 7 ="))
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(prompt_ids), len(completion.token_ids))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_seeded_chat_samples_equal_the_engine_and_tokens_decode(server, engine):
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5, n=3, seed=11)
    expected = engine.generate([Prompt(id="p", messages=chat("Name an animal."))], sampling)[0]
    response = client_for(server).chat.completions.create(
        model=MODEL,
        messages=chat("Name an animal."),
        max_tokens=5,
        n=3,
        seed=11,
        temperature=1.0,
        logprobs=True,
    )
    assert [c.message.content for c in response.choices] == [c.text for c in expected]
    for choice, completion in zip(response.choices, expected, strict=True):
        tokens = [entry.token for entry in choice.logprobs.content]
        assert tokens == [engine.tokenizer.decode([t]) for t in completion.token_ids]
        assert [e.logprob for e in choice.logprobs.content] == pytest.approx(completion.logprobs, abs=1e-5)
    assert response.usage.completion_tokens == sum(len(c.token_ids) for c in expected)


def test_stop_strings_and_string_stop_are_honoured(server, engine):
    full = client_for(server).completions.create(model=MODEL, prompt="1 + 1 =", max_tokens=8, temperature=0)
    stop = full.choices[0].text[3:5]
    assert stop, "the completion is long enough to cut"
    cut = client_for(server).completions.create(
        model=MODEL, prompt="1 + 1 =", max_tokens=8, temperature=0, stop=stop
    )
    assert cut.choices[0].text == full.choices[0].text[: full.choices[0].text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": "other"}, openai.NotFoundError, "not served here"),
        ({"stream": True}, openai.BadRequestError, "streaming is not supported"),
        ({"temperature": -1}, openai.BadRequestError, "temperature must be >= 0"),
        ({"max_tokens": 0}, openai.BadRequestError, "max_tokens must be >= 1"),
        ({"n": "2"}, openai.BadRequestError, "`n` must be int"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, openai.BadRequestError, "role"),
        ({"messages": chat("long " * 600)}, openai.BadRequestError, "max_position_embeddings"),
    ],
)
def test_bad_requests_get_openai_errors(server, kwargs, error, message):
    request = {"model": MODEL, "messages": chat("hi"), "max_tokens": 2} | kwargs
    with pytest.raises(error, match=message):
        client_for(server).chat.completions.create(**request)


def test_unknown_route_and_bad_json_are_client_errors(server):
    assert httpx.post(f"{server.url}/embeddings", json={}).status_code == 404
    response = httpx.post(f"{server.url}/completions", content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_bearer_key_is_required_when_set(engine):
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, api_key="s3cret").start() as server:
        for wrong in ["", "nope"]:
            with pytest.raises(openai.AuthenticationError):
                client_for(server, api_key=wrong or "x").models.list()
        assert httpx.get(f"{server.url}/models").status_code == 401
        response = client_for(server, api_key="s3cret").completions.create(
            model=MODEL, prompt="1", max_tokens=2
        )
        assert len(response.choices) == 1


def ask_concurrently(server: EngineServer, prompts: list[str]) -> list[str | openai.APIError]:
    """Greedy completions of `prompts`, all requested at once from threads sharing one client."""
    client = client_for(server)
    answers: list[str | openai.APIError] = [""] * len(prompts)

    def ask(index: int) -> None:
        try:
            response = client.completions.create(
                model=MODEL, prompt=prompts[index], max_tokens=6, temperature=0
            )
            answers[index] = response.choices[0].text
        except openai.APIError as err:
            answers[index] = err

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_requests_are_batched_and_answered_exactly(engine):
    prompts = [f"{a} + {a * 7 % 13} =" for a in range(24)]
    sampling = SamplingParams(temperature=0, max_new_tokens=6)
    expected = [
        c[0].text for c in engine.generate([Prompt(id=p, messages=[], text=p) for p in prompts], sampling)
    ]
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, max_wait_s=0.05).start() as server:
        assert ask_concurrently(server, prompts) == expected
        assert server.batcher.num_batches < len(prompts) / 2
        # An over-long prompt in the batch fails alone (the batch is rerun request by request).
        answers = ask_concurrently(server, [*prompts[:8], "x " * 600])
    assert answers[:8] == expected[:8]
    assert isinstance(answers[8], openai.BadRequestError)


def test_the_openai_client_retries_through_injected_faults(engine):
    faults = FaultInjector({0: Fault.RATE_LIMIT, 1: Fault.SERVER_ERROR})
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, request_hook=faults).start() as server:
        client = client_for(server, max_retries=2)
        assert client.completions.create(model=MODEL, prompt="1", max_tokens=2).choices
    assert faults.injected == {Fault.RATE_LIMIT: 1, Fault.SERVER_ERROR: 1} and faults.num_requests == 3


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a shell's background job


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_cli_serve_on_a_free_loopback_port_stops_on_sigint_and_sigterm(tiny_model_dir, stop):
    """Started the way a background job starts (SIGINT inherited as ignored), Ctrl+C and a
    supervisor's SIGTERM still stop the server cleanly."""
    env = {**os.environ, "SERVE_KEY": "k-123"}
    command = [sys.executable, "-m", "selftaught.cli", "serve", "--model", tiny_model_dir, "--port", "0"]
    command += ["--served-model-name", MODEL, "--api-key-env", "SERVE_KEY"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # never drained: a full pipe would block the server
        text=True,
        preexec_fn=_ignore_sigint,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"no URL in {line!r} (exit code {process.poll()})"
        client = openai.OpenAI(base_url=match.group(1), api_key="k-123", max_retries=0)
        assert [m.id for m in client.models.list().data] == [MODEL]
        response = client.chat.completions.create(model=MODEL, messages=chat("hi"), max_tokens=3, n=2)
        assert len(response.choices) == 2 and response.usage.completion_tokens > 0
    finally:
        process.send_signal(stop)
        try:
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()  # no stray server when the assertion fails


def test_cli_serve_refuses_an_unset_key_variable(capsys, monkeypatch):
    from selftaught.cli import main

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert main(["serve", "--model", "unused", "--api-key-env", "NO_SUCH_KEY_VAR"]) == 2
    assert "NO_SUCH_KEY_VAR" in capsys.readouterr().err
