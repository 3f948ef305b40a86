"""`selftaught serve` through the official `openai` client: answers equal HFEngine's own, logprobs and
token ids, usage, errors, the bearer key, dynamic batching, and the CLI on a free loopback port."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.http_server import HttpLimits
from selftaught.engines.openai_protocol import RequestLimits
from selftaught.engines.server import EngineServer
from selftaught.models.io import load_model
from selftaught.types import Completion, Prompt
from tests.engines.faults import Fault, FaultInjector

MODEL = "tiny"


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir: str) -> tuple[Any, Any]:
    return load_model(tiny_model_dir)


@pytest.fixture
def tokenizer_only(model_and_tokenizer) -> Any:
    return model_and_tokenizer[1]


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
        ({"response_format": {"type": "json_object"}}, openai.BadRequestError, "structured output"),
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
    assert httpx.post(f"{server.url}/embeddings", json={}).json()["error"]["type"] == "not_found_error"
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
def test_cli_serve_on_a_free_loopback_port_stops_on_sigint_and_sigterm(tiny_model_dir, tmp_path, stop):
    """Started the way a background job starts (SIGINT inherited as ignored), Ctrl+C and a
    supervisor's SIGTERM still stop the server cleanly. The limit and reload flags reach the server."""
    env = {**os.environ, "SERVE_KEY": "k-123"}
    command = [sys.executable, "-m", "selftaught.cli", "serve", "--model", tiny_model_dir, "--port", "0"]
    command += ["--served-model-name", MODEL, "--api-key-env", "SERVE_KEY", "--max-n", "2"]
    command += ["--allow-reload", str(tmp_path), "--timeout-s", "30", "--max-connections", "8"]
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
        with pytest.raises(openai.BadRequestError, match="at most 2"):
            client.chat.completions.create(model=MODEL, messages=chat("hi"), max_tokens=3, n=3)
        reload = httpx.post(
            f"{match.group(1)}/admin/reload",
            json={"model": tiny_model_dir, "policy_version": 1},
            headers={"Authorization": "Bearer k-123"},
        )
        assert reload.status_code == 403 and "not an allowed" in reload.text  # outside --allow-reload
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


def test_cli_serve_refuses_reload_without_a_key_and_bad_limits(capsys):
    from selftaught.cli import main

    assert main(["serve", "--model", "unused", "--allow-reload", "/tmp"]) == 2
    assert "--allow-reload needs --api-key-env" in capsys.readouterr().err
    assert main(["serve", "--model", "unused", "--max-body-bytes", "0"]) == 2
    assert "--max-body-bytes must be > 0" in capsys.readouterr().err


def test_cli_limit_defaults_are_the_servers():
    from selftaught.cli import build_parser

    args = build_parser().parse_args(["serve", "--model", "m"])
    request, http = RequestLimits(), HttpLimits()
    assert (args.max_n, args.max_tokens, args.max_prompt_tokens) == (
        request.max_n,
        request.max_tokens,
        request.max_prompt_tokens,
    )
    assert (args.max_body_bytes, args.timeout_s, args.idle_timeout_s, args.max_connections) == (
        http.max_body_bytes,
        http.timeout_s,
        http.idle_timeout_s,
        http.max_connections,
    )
    assert args.allow_reload == []


def raw_exchange(server: EngineServer, request: bytes, timeout: float = 5.0) -> tuple[int, dict, dict]:
    """Send `request` bytes as they are; `(status, headers, JSON body)` of the answer (bounded wait)."""
    host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.headers), json.loads(response.read())


def head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: localhost", *headers, "", ""]).encode()


def test_the_key_is_checked_before_a_body_is_read(engine):
    """A client without the key that declares a large body and never sends it is refused at once."""
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, api_key="s3cret").start() as server:
        status, headers, body = raw_exchange(
            server, head("POST", "/v1/completions", "Content-Length: 1000000")
        )
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert headers["Connection"] == "close"


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        (["Content-Length: 1000000"], 413, "at most 1000 bytes"),
        ([], 411, "needs a Content-Length"),
        (["Transfer-Encoding: chunked"], 411, "no Transfer-Encoding"),
        (["Content-Length: 12abc"], 400, "one non-negative integer"),
        (["Content-Length: -5"], 400, "one non-negative integer"),
        (["Content-Length: 5", "Content-Length: 6"], 400, "one non-negative integer"),
    ],
)
def test_bodies_too_large_or_without_a_valid_length_are_refused_unread(engine, headers, status, message):
    limits = HttpLimits(max_body_bytes=1000)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        got, _, body = raw_exchange(server, head("POST", "/v1/completions", *headers))
    assert got == status and message in body["error"]["message"]


def test_a_body_within_the_cap_is_served_and_one_over_it_is_not(engine):
    request = json.dumps({"model": MODEL, "prompt": "1 +", "max_tokens": 2}).encode()
    limits = HttpLimits(max_body_bytes=len(request))
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        assert httpx.post(f"{server.url}/completions", content=request).status_code == 200
        assert httpx.post(f"{server.url}/completions", content=request + b" ").status_code == 413


def test_a_stalled_body_times_out_with_408(engine):
    limits = HttpLimits(timeout_s=0.3)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        status, _, body = raw_exchange(server, head("POST", "/v1/completions", "Content-Length: 100") + b"{")
    assert status == 408 and "did not arrive within 0.3s" in body["error"]["message"]


def test_n_max_tokens_and_prompt_length_are_capped(engine):
    limits = RequestLimits(max_n=2, max_tokens=5, max_prompt_tokens=20)
    with EngineServer(
        engine, engine.tokenizer, MODEL, port=0, default_max_tokens=4, request_limits=limits
    ).start() as server:
        client = client_for(server)
        assert len(client.completions.create(model=MODEL, prompt="1 +", n=2, max_tokens=5).choices) == 2
        refusals = [
            ({"prompt": "1 +", "n": 3}, "`n` is 3; this server allows at most 2"),
            ({"prompt": "1 +", "max_tokens": 6}, "`max_tokens` is 6; this server allows at most 5"),
            ({"prompt": "word " * 30}, "`prompt` has [0-9]+ tokens; this server allows at most 20"),
        ]
        for kwargs, message in refusals:
            with pytest.raises(openai.BadRequestError, match=message):
                client.completions.create(model=MODEL, **kwargs)
        with pytest.raises(openai.BadRequestError, match="`messages` has .* at most 20"):
            client.chat.completions.create(model=MODEL, messages=chat("word " * 30))
    with pytest.raises(ValueError, match="default_max_tokens"):
        EngineServer(engine, engine.tokenizer, MODEL, port=0, request_limits=limits)


def test_other_methods_get_a_json_405(server):
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"]:
        response = httpx.request(method, f"{server.url}/completions", json={})
        assert response.status_code == 405, method
        assert response.json()["error"]["message"] == f"method {method} is not allowed here"
    response = httpx.get(f"{server.url}/completions")
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert httpx.head(f"{server.url}/models").status_code == 405


def test_an_unexpected_error_answers_a_generic_500(engine, caplog):
    def crash() -> None:
        raise RuntimeError("secret detail /home/someone/private")

    with EngineServer(engine, engine.tokenizer, MODEL, port=0, request_hook=crash).start() as server:
        response = httpx.post(f"{server.url}/completions", json={"model": MODEL, "prompt": "1"})
    assert response.status_code == 500
    assert "secret" not in response.text and "internal server error" in response.json()["error"]["message"]
    assert "secret detail" in caplog.text  # the details are in the server log


def test_connections_beyond_max_connections_wait_for_a_free_slot(engine):
    limits = HttpLimits(max_connections=1, timeout_s=5)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
        holder = socket.create_connection((host, int(port)), timeout=5)  # takes the one slot, busy:
        holder.sendall(head("POST", "/v1/completions", "Content-Length: 100"))  # its body is pending
        answers: list[int] = []
        waiter = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{server.url}/models").status_code)
        )
        waiter.start()
        waiter.join(timeout=0.5)
        assert answers == [], "a second connection was served while the first held the only slot"
        holder.close()
        waiter.join(timeout=5)
    assert answers == [200]


def test_health_answers_without_the_key_and_the_api_still_needs_it(engine):
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, api_key="s3cret").start() as server:
        health_status, _, health = raw_exchange(server, head("GET", "/health"))
        models_status, _, _ = raw_exchange(server, head("GET", "/v1/models"))
    assert health_status == 200 and health["status"] == "ok" and "policy_version" in health
    assert models_status == 401


class HoldingEngine:
    """A `CancellableEngine` whose calls run until `release` is set or all their prompts are cancelled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Event()
        self.saw_cancel = threading.Event()
        self.prompts: list[str] = []

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        return self.generate_cancellable(prompts, sampling, lambda i: False)

    def generate_cancellable(self, prompts, sampling, cancelled) -> list[list[Completion]]:
        self.prompts += [prompt.text for prompt in prompts]
        self.running.set()
        while not self.release.wait(0.01):
            if all(cancelled(i) for i in range(len(prompts))):
                self.saw_cancel.set()
                break
        return [[Completion(prompt_id=p.id, text="done", token_ids=[5])] * sampling.n for p in prompts]


def send_and_hang_up(server: EngineServer, prompt: str) -> None:
    body = json.dumps({"model": MODEL, "prompt": prompt}).encode()
    request = head("POST", "/v1/completions", f"Content-Length: {len(body)}") + body
    host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_running_request_stops_when_its_client_hangs_up(tokenizer_only):
    engine = HoldingEngine()
    with EngineServer(engine, tokenizer_only, MODEL, port=0).start() as server:
        send_and_hang_up(server, "1+1=")  # returns once sent: the socket closes at once
        assert engine.running.wait(10)
        assert engine.saw_cancel.wait(10), "the engine was never told that the client left"
        assert wait_until(lambda: server.batcher.num_abandoned == 1)


def test_a_queued_request_whose_client_hung_up_never_runs(tokenizer_only, caplog):
    engine = HoldingEngine()
    caplog.set_level(logging.INFO, logger="selftaught.engines.server")
    with EngineServer(engine, tokenizer_only, MODEL, port=0).start() as server:
        answers: list[str] = []
        first = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/completions", json={"model": MODEL, "prompt": "kept"}).json()[
                    "choices"
                ][0]["text"]
            )
        )
        first.start()
        assert engine.running.wait(10)  # the batcher is busy with "kept"
        send_and_hang_up(server, "gone")  # queued behind it, then abandoned
        assert wait_until(lambda: "its request was abandoned" in caplog.text)
        engine.release.set()
        first.join(10)
        assert answers == ["done"]
        assert wait_until(lambda: server.batcher.num_abandoned == 1)
    assert engine.prompts == ["kept"]


def test_idle_connections_cannot_lock_clients_out(engine):
    """All slots held by connections that send nothing (issue 16's probe: 300 of them locked a real
    client out for 58 s): a new client closes the longest idle one and is served at once."""
    limits = HttpLimits(max_connections=4, timeout_s=30, idle_timeout_s=30)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(6)]
        assert wait_until(lambda: server.num_open_connections == 4)
        answers: list[int] = []
        client = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{server.url}/models").status_code)
        )
        client.start()
        client.join(timeout=10)
        assert answers == [200], "a client waited behind idle connections"
        closed = sum(sock.recv(1) == b"" for sock in idle[:2])  # the two oldest were closed for others
        assert closed == 2
        for sock in idle:
            sock.close()


def test_a_connection_waiting_for_a_request_closes_after_the_idle_timeout(engine):
    limits = HttpLimits(idle_timeout_s=0.3)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, http_limits=limits).start() as server:
        host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            assert sock.recv(1) == b""  # closed by the server, well before the client's 10 s
