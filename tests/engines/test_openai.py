"""OpenAIEngine against a fake server (httpx.MockTransport): request mapping, response parsing,
retries and backoff, errors, the on-disk cache, and the API key staying out of files and logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.cache import RequestCache, request_key
from selftaught.engines.openai import (
    OpenAIConfig,
    OpenAIEngine,
    backoff_delay,
    build_requests,
    parse_logprobs,
)
from selftaught.types import Prompt

SECRET = "sk-test-0123456789abcdef"
PROMPTS = [
    Prompt(id="chat", messages=[{"role": "user", "content": "Name an animal."}]),
    Prompt(id="raw", messages=[], text="12 + 7 ="),
]


def fast_config(**overrides) -> OpenAIConfig:
    """Backoff short enough for tests; every retry still waits (jitter included)."""
    defaults = dict(model="m", backoff_s=0.001, max_backoff_s=0.01, max_retries=3, timeout_s=2.0)
    return OpenAIConfig(**(defaults | overrides))


def echo_choice(body: dict, index: int) -> dict:
    """A choice whose text names the request, with logprobs spelled as vLLM does for token ids."""
    text = f"{body.get('prompt') or body['messages'][-1]['content']}|seed={body['seed'] + index}"
    ids = [len(text), body["seed"] + index]
    choice = {"index": index, "finish_reason": "length" if body["max_tokens"] <= 2 else "stop"}
    tokens = [f"token_id:{t}" for t in ids] if body.get("return_tokens_as_token_ids") else ["a", "b"]
    if "messages" in body:
        choice["message"] = {"role": "assistant", "content": text}
        content = [{"token": t, "logprob": -0.5 * (k + 1)} for k, t in enumerate(tokens)]
        choice["logprobs"] = {"content": content} if body.get("logprobs") else None
    else:
        choice["text"] = text
        choice["logprobs"] = (
            {"tokens": tokens, "token_logprobs": [-0.5, -1.0]} if body.get("logprobs") else None
        )
    return choice


class FakeServer:
    """Answers like an OpenAI server; `faults` (status codes or exceptions) are dealt in order first."""

    def __init__(self, faults: list[int | Exception] | None = None) -> None:
        self.faults = list(faults or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return httpx.Response(
                fault, json={"error": {"message": f"fault {fault}"}}, headers={"Retry-After": "0"}
            )
        body = json.loads(request.content)
        choices = [echo_choice(body, i) for i in range(body["n"])]
        return httpx.Response(200, json={"choices": list(reversed(choices))})  # any order: `index` decides

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


def make_engine(server: Callable, **overrides) -> OpenAIEngine:
    return OpenAIEngine(fast_config(**overrides), transport=httpx.MockTransport(server))


def test_is_an_engine_and_maps_prompts_to_endpoints():
    server = FakeServer()
    engine = make_engine(server)
    assert isinstance(engine, Engine)
    results = engine.generate(PROMPTS, SamplingParams(n=3, seed=10, max_new_tokens=5, stop=["\n"]))
    assert [[c.meta for c in row] for row in results] == [
        [{"sample_index": j, "seed": 10 + j} for j in range(3)]
    ] * 2
    assert [c.text for c in results[0]] == [f"Name an animal.|seed={10 + j}" for j in range(3)]
    assert [c.text for c in results[1]] == [f"12 + 7 =|seed={10 + j}" for j in range(3)]
    assert {c.prompt_id for c in results[1]} == {"raw"}
    paths = sorted(r.url.path for r in server.requests)
    assert paths == ["/v1/chat/completions"] * 3 + ["/v1/completions"] * 3
    for body in server.bodies():
        assert body["n"] == 1 and body["stop"] == ["\n"] and body["max_tokens"] == 5 and body["model"] == "m"
        assert "logprobs" not in body and "return_tokens_as_token_ids" not in body
    assert all(c.logprobs is None and c.token_ids == [] for row in results for c in row)


def test_n_per_request_mode_sends_one_request_per_prompt():
    server = FakeServer()
    results = make_engine(server, per_sample_requests=False).generate(PROMPTS, SamplingParams(n=4, seed=7))
    assert [(b["n"], b["seed"]) for b in server.bodies()] == [(4, 7), (4, 7)]
    # The fake server derives each choice's text from its index, so order and placement are checked.
    assert [c.text for c in results[0]] == [f"Name an animal.|seed={7 + j}" for j in range(4)]
    assert [c.meta["sample_index"] for c in results[1]] == [0, 1, 2, 3]


def test_logprobs_and_token_ids_are_parsed_from_both_layouts():
    server = FakeServer()
    engine = make_engine(server, logprobs=True, token_ids=True)
    results = engine.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=2))
    chat_body, raw_body = server.bodies()[0], server.bodies()[-1]
    assert chat_body["logprobs"] is True and raw_body["logprobs"] == 1
    assert chat_body["return_tokens_as_token_ids"] is True
    for row in results:
        for j, completion in enumerate(row):
            assert completion.token_ids == [len(completion.text), j]
            assert completion.logprobs == [-0.5, -1.0]
            assert completion.finish_reason == "length"


def test_logprobs_without_token_ids_keep_the_values_only():
    results = make_engine(FakeServer(), logprobs=True).generate(PROMPTS, SamplingParams())
    assert [(c.token_ids, c.logprobs) for row in results for c in row] == [([], [-0.5, -1.0])] * 2


def test_missing_token_ids_are_an_error_not_an_empty_list():
    with pytest.raises(ValueError, match="return_tokens_as_token_ids"):
        parse_logprobs({"tokens": ["a"], "token_logprobs": [-1.0]}, chat=False, with_token_ids=True)


def test_retries_429_5xx_and_connection_errors_then_succeeds():
    faults: list[int | Exception] = [429, 500, 503, httpx.ConnectError("refused")]
    server = FakeServer(faults)
    engine = make_engine(server, max_retries=4, max_concurrency=1)
    results = engine.generate(PROMPTS[:1], SamplingParams())
    assert results[0][0].text == "Name an animal.|seed=0"
    assert engine.stats.num_http_requests == 5
    assert engine.stats.retry_reasons == {"HTTP 429": 1, "HTTP 500": 1, "HTTP 503": 1, "ConnectError": 1}


def test_timeouts_are_retried():
    calls = []

    async def slow_then_fast(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            await asyncio.sleep(5)
        return FakeServer()(request)

    engine = make_engine(slow_then_fast, timeout_s=0.2)
    assert engine.generate(PROMPTS[:1], SamplingParams())[0][0].text.startswith("Name an animal.")
    assert engine.stats.retry_reasons == {"TimeoutError": 1}


def test_gives_up_after_max_retries():
    engine = make_engine(FakeServer([500] * 10), max_retries=2)
    with pytest.raises(RuntimeError, match="failed 3 times, last with HTTP 500"):
        engine.generate(PROMPTS[:1], SamplingParams())
    assert engine.stats.num_http_requests == 3


@pytest.mark.parametrize(
    ("status", "hint"), [(400, "check the request"), (401, "OPENAI_API_KEY"), (404, "openai.model")]
)
def test_client_errors_fail_at_once_with_the_server_message(status, hint):
    server = FakeServer([status])
    with pytest.raises(ValueError, match=f"HTTP {status}: fault {status}.*{hint}"):
        make_engine(server).generate(PROMPTS[:1], SamplingParams())
    assert len(server.requests) == 1


def test_backoff_doubles_with_jitter_and_respects_cap_and_retry_after():
    for attempt in range(6):
        expected = min(1.0, 0.1 * 2**attempt)
        assert expected * 0.5 <= backoff_delay(attempt, 0.1, 1.0) <= expected
    assert backoff_delay(0, 0.1, 1.0, retry_after="0.7") >= 0.7
    assert backoff_delay(0, 0.1, 1.0, retry_after="60") <= 1.0
    assert backoff_delay(0, 0.1, 1.0, retry_after="Wed, 21 Oct 2015 07:28:00 GMT") <= 0.1


def test_wrong_number_of_choices_is_an_error():
    def one_choice(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]})

    with pytest.raises(RuntimeError, match="1 choices for n=2"):
        make_engine(one_choice, per_sample_requests=False).generate(PROMPTS[1:], SamplingParams(n=2))


def test_cache_answers_repeated_requests_without_the_server(tmp_path):
    cache_path = str(tmp_path / "cache.sqlite")
    server = FakeServer()
    first = make_engine(server, cache_path=cache_path).generate(PROMPTS, SamplingParams(n=2))
    assert len(server.requests) == 4

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("server down")

    engine = make_engine(down, cache_path=cache_path)
    assert engine.generate(PROMPTS, SamplingParams(n=2)) == first
    assert (engine.stats.num_cache_hits, engine.stats.num_http_requests) == (4, 0)
    # A third sample is a new request (new seed, new sample index): only it goes to the server.
    engine = make_engine(server, cache_path=cache_path)
    assert engine.generate(PROMPTS, SamplingParams(n=3))[0][:2] == first[0]
    assert (engine.stats.num_cache_hits, len(server.requests)) == (4, 6)


def test_cache_keys_cover_model_prompt_sampling_and_sample_index():
    base = build_requests(PROMPTS[:1], SamplingParams(n=2), fast_config())
    keys = {r.cache_key for r in base}
    assert len(keys) == 2
    for config, sampling in [
        (fast_config(model="other"), SamplingParams(n=2)),
        (fast_config(), SamplingParams(n=2, temperature=0.5)),
        (fast_config(), SamplingParams(n=2, max_new_tokens=9)),
        (fast_config(logprobs=True), SamplingParams(n=2)),
    ]:
        assert not keys & {r.cache_key for r in build_requests(PROMPTS[:1], sampling, config)}
    # Same request built again: same keys, whatever the config fields that do not reach the server.
    again = build_requests(PROMPTS[:1], SamplingParams(n=2), fast_config(max_concurrency=3, timeout_s=9))
    assert {r.cache_key for r in again} == keys


def test_request_cache_round_trip_and_first_write_wins(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    key = request_key({"b": 1, "a": [1, 2]})
    assert key == request_key({"a": [1, 2], "b": 1}) != request_key({"a": [2, 1], "b": 1})
    assert cache.get(key) is None
    cache.put(key, {"choices": ["é"]})
    cache.put(key, {"choices": ["other"]})
    assert cache.get(key) == {"choices": ["é"]} and len(cache) == 1
    cache.close()
    assert RequestCache(tmp_path / "c.sqlite").get(key) == {"choices": ["é"]}


def test_api_key_is_sent_but_never_stored_or_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MY_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    server = FakeServer([429])
    config = fast_config(api_key_env="MY_KEY", cache_path=str(tmp_path / "cache" / "c.sqlite"))
    engine = OpenAIEngine(config, transport=httpx.MockTransport(server))
    engine.generate(PROMPTS, SamplingParams())
    assert {r.headers["Authorization"] for r in server.requests} == {f"Bearer {SECRET}"}
    assert "retry 1" in caplog.text and SECRET not in caplog.text
    assert SECRET not in repr(config) and SECRET not in repr(vars(engine))
    files = list((tmp_path / "cache").iterdir())
    assert files and all(SECRET.encode() not in f.read_bytes() for f in files)


def test_no_authorization_header_when_the_key_variable_is_unset(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = FakeServer()
    make_engine(server).generate(PROMPTS[:1], SamplingParams())
    assert "Authorization" not in server.requests[0].headers


def test_generate_works_inside_a_running_event_loop():
    async def main() -> str:
        return make_engine(FakeServer()).generate(PROMPTS[:1], SamplingParams())[0][0].text

    assert asyncio.run(main()) == "Name an animal.|seed=0"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": ""}, "openai.model"),
        ({"base_url": "localhost:8000/v1"}, "openai.base_url"),
        ({"token_ids": True}, "openai.logprobs"),
        ({"max_concurrency": 0}, "openai.max_concurrency"),
        ({"max_retries": -1}, "openai.max_retries"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        OpenAIEngine(OpenAIConfig(**({"model": "m"} | overrides)))


def test_prompt_without_text_or_messages_is_an_error():
    with pytest.raises(ValueError, match="neither `text` nor `messages`"):
        make_engine(FakeServer()).generate([Prompt(id="empty", messages=[])], SamplingParams())


def test_cache_file_is_plain_sqlite_with_json_values(tmp_path: Path):
    import sqlite3

    path = tmp_path / "c.sqlite"
    make_engine(FakeServer(), cache_path=str(path)).generate(PROMPTS[:1], SamplingParams())
    rows = sqlite3.connect(path).execute("SELECT key, response FROM responses").fetchall()
    assert len(rows) == 1 and len(rows[0][0]) == 64 and json.loads(rows[0][1])["choices"][0]["index"] == 0
