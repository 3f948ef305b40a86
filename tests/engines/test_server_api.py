"""`selftaught serve`'s vLLM-style surface through the official `openai` client: streaming, lists of
prompts, top logprobs, echo, `/metrics`, `/tokenize` and `/detokenize`, and the fields it refuses."""

from __future__ import annotations

import json
import re
import socket
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
from tests.engines.test_server import MODEL, HoldingEngine, chat, client_for, head, wait_until


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


def greedy_text(engine: HFEngine, text: str, max_tokens: int) -> str:
    sampling = SamplingParams(temperature=0, max_new_tokens=max_tokens)
    return engine.generate([Prompt(id="p", messages=[], text=text)], sampling)[0][0].text


def test_a_streamed_completion_equals_the_unstreamed_one_and_ends_with_usage(server, engine):
    client = client_for(server)
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": "12 + 7 =", "max_tokens": 6, "temperature": 0}
    whole = client.completions.create(**kwargs, logprobs=2)
    chunks = list(
        client.completions.create(**kwargs, logprobs=2, stream=True, stream_options={"include_usage": True})
    )
    assert {c.object for c in chunks} == {"text_completion"} and len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("cmpl-")
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and set(finishes[:-1]) == {None}
    streamed_logprobs = [
        lp
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for lp in c.choices[0].logprobs.token_logprobs
    ]
    assert streamed_logprobs == pytest.approx(whole.choices[0].logprobs.token_logprobs)
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_a_streamed_chat_sends_role_content_and_finish_per_choice(server, engine):
    client = client_for(server)
    kwargs: dict[str, Any] = {"model": MODEL, "messages": chat("Name an animal."), "max_tokens": 5}
    whole = client.chat.completions.create(**kwargs, n=2, seed=3, temperature=1.0)
    chunks = list(client.chat.completions.create(**kwargs, n=2, seed=3, temperature=1.0, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    for choice in whole.choices:
        deltas = [c.choices[0] for c in chunks if c.choices[0].index == choice.index]
        assert deltas[0].delta.role == "assistant"
        assert "".join(d.delta.content or "" for d in deltas) == choice.message.content
        assert [d.finish_reason for d in deltas][-1] == choice.finish_reason


def test_the_stream_is_chunked_server_sent_events_ending_with_done(server):
    body = {"model": MODEL, "prompt": "1 +", "max_tokens": 3, "stream": True}
    with httpx.Client() as client:
        for _ in range(2):  # the connection is reused: the chunked answer ended cleanly
            with client.stream("POST", f"{server.url}/completions", json=body) as response:
                assert response.headers["content-type"] == "text/event-stream"
                assert response.headers["transfer-encoding"] == "chunked"
                assert "content-length" not in response.headers
                events = [line for line in response.iter_lines() if line]
            assert all(line.startswith("data: ") for line in events)
            assert events[-1] == "data: [DONE]"
            assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"] is not None


def test_a_streaming_client_that_hangs_up_is_abandoned(tokenizer_only):
    engine = HoldingEngine()
    with EngineServer(engine, tokenizer_only, MODEL, port=0).start() as server:
        body = json.dumps({"model": MODEL, "prompt": "1+1=", "stream": True}).encode()
        host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(head("POST", "/v1/completions", f"Content-Length: {len(body)}") + body)
            assert engine.running.wait(10)
        assert engine.saw_cancel.wait(10), "the engine was never told that the client left"
        assert server.metrics.abandoned == 1


def test_a_list_of_prompts_gets_one_choice_per_prompt_per_n_in_openai_order(server, engine):
    prompts = ["1 + 1 =", "The quick brown"]
    response = client_for(server).completions.create(
        model=MODEL, prompt=prompts, n=2, max_tokens=4, temperature=0
    )
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    expected = [greedy_text(engine, p, 4) for p in prompts]
    assert [c.text for c in response.choices] == [expected[0], expected[0], expected[1], expected[1]]
    prompt_tokens = sum(len(engine.encode_prompt(Prompt(id="p", messages=[], text=p))) for p in prompts)
    assert response.usage.prompt_tokens == prompt_tokens


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": [1, 2, 3]}, "token-id prompts are not supported"),
        ({"prompt": []}, "empty list"),
        ({"prompt": ["a", "b", "c"], "n": 2}, "3 prompts x `n` 2 = 6 samples; this server allows at most 4"),
    ],
)
def test_bad_prompt_lists_are_refused(engine, kwargs, message):
    from selftaught.engines.openai_protocol import RequestLimits

    limits = RequestLimits(max_n=4)
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, request_limits=limits).start() as server:
        with pytest.raises(openai.BadRequestError, match=re.escape(message)):
            client_for(server).completions.create(model=MODEL, max_tokens=2, **kwargs)


def test_completion_top_logprobs_are_the_engines(server, engine):
    sampling = SamplingParams(temperature=0, max_new_tokens=5, top_logprobs=3)
    (expected,) = engine.generate([Prompt(id="p", messages=[], text="12 + 7 =")], sampling)[0:1]
    response = client_for(server).completions.create(
        model=MODEL,
        prompt="12 + 7 =",
        max_tokens=5,
        temperature=0,
        logprobs=3,
        extra_body={"return_tokens_as_token_ids": True},
    )
    top = response.choices[0].logprobs.top_logprobs
    want = [{f"token_id:{i}": lp for i, lp in step} for step in expected[0].meta["top_logprobs"]]
    assert [list(d) for d in top] == [list(d) for d in want]
    for got, wanted in zip(top, want, strict=True):
        assert list(got.values()) == pytest.approx(list(wanted.values()), abs=1e-5)
    # The greedy token is the most likely one.
    assert [max(d, key=d.get) for d in top] == response.choices[0].logprobs.tokens


def test_chat_top_logprobs_and_their_refusals(server, tokenizer_only):
    client = client_for(server)
    response = client.chat.completions.create(
        model=MODEL, messages=chat("hi"), max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    for entry in response.choices[0].logprobs.content:
        assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)  # greedy
    with pytest.raises(openai.BadRequestError, match="`top_logprobs` needs `logprobs: true`"):
        client.chat.completions.create(model=MODEL, messages=chat("hi"), max_tokens=2, top_logprobs=2)
    with pytest.raises(openai.BadRequestError, match="between 0 and 20"):
        client.chat.completions.create(model=MODEL, messages=chat("hi"), logprobs=True, top_logprobs=21)
    with EngineServer(HoldingEngine(), tokenizer_only, MODEL, port=0).start() as other:
        with pytest.raises(openai.BadRequestError, match="does not compute top logprobs"):
            client_for(other).completions.create(model=MODEL, prompt="1", logprobs=2)


def test_echo_prepends_the_prompt_text(server, engine):
    client = client_for(server)
    response = client.completions.create(
        model=MODEL, prompt="1 + 1 =", max_tokens=4, temperature=0, echo=True
    )
    assert response.choices[0].text == "1 + 1 =" + greedy_text(engine, "1 + 1 =", 4)
    streamed = client.completions.create(
        model=MODEL, prompt="1 + 1 =", max_tokens=4, temperature=0, echo=True, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == response.choices[0].text


def test_echo_with_logprobs_scores_the_prompt_as_lm_eval_asks(server, engine, tokenizer_only):
    """lm-evaluation-harness's loglikelihood request: echo, logprobs=1, greedy, one new token. The
    prompt's tokens come first, the first with null logprob and null alternatives, the others with
    the engine's teacher-forced logprobs (`HFEngine.prompt_logprobs`, checked against decoding in
    test_hf)."""
    prompt = Prompt(id="p", messages=[], text="12 + 7 =")
    sampling = SamplingParams(temperature=0, max_new_tokens=3)
    (completion,) = engine.generate([prompt], sampling)[0]
    prompt_ids = engine.encode_prompt(prompt)
    response = client_for(server).completions.create(
        model=MODEL,
        prompt=[prompt.text, prompt.text + completion.text],
        max_tokens=1,
        temperature=0,
        echo=True,
        logprobs=1,
        extra_body={"return_tokens_as_token_ids": True},
    )
    first, second = (choice.logprobs for choice in response.choices)
    assert first.tokens[: len(prompt_ids)] == [f"token_id:{t}" for t in prompt_ids]
    assert first.token_logprobs[0] is None and first.top_logprobs[0] is None
    assert len(first.tokens) == len(prompt_ids) + 1 == len(first.top_logprobs)
    # The second prompt's tokens carry the engine's teacher-forced logprobs.
    echoed_ids = engine.encode_prompt(Prompt(id="q", messages=[], text=prompt.text + completion.text))
    expected, _ = engine.prompt_logprobs(echoed_ids)
    assert second.tokens[: len(echoed_ids)] == [f"token_id:{t}" for t in echoed_ids]
    assert second.token_logprobs[: len(echoed_ids)] == pytest.approx(expected, abs=1e-5)
    assert response.choices[1].text.startswith(prompt.text + completion.text)
    with EngineServer(HoldingEngine(), tokenizer_only, MODEL, port=0).start() as other:
        with pytest.raises(
            openai.BadRequestError, match="`echo` with `logprobs` needs the prompt's logprobs"
        ):
            client_for(other).completions.create(model=MODEL, prompt="1", echo=True, logprobs=0)


@pytest.mark.parametrize(
    ("chat_api", "kwargs", "message"),
    [
        (
            True,
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            "`tools`: tool and function calling",
        ),
        (True, {"tool_choice": "auto"}, "`tool_choice`: tool and function calling"),
        (True, {"response_format": {"type": "json_object"}}, "`response_format`: structured output"),
        (True, {"logit_bias": {"5": 1}}, "`logit_bias`"),
        (True, {"presence_penalty": 0.5}, "`presence_penalty`: presence_penalty is not supported"),
        (True, {"frequency_penalty": 0.5}, "`frequency_penalty`"),
        (True, {"extra_body": {"top_k": 5}}, "`top_k`"),
        (True, {"extra_body": {"guided_json": {}}}, "`guided_json` is not supported by chat completions"),
        (
            True,
            {"stream_options": {"include_usage": True}},
            "`stream_options` is only allowed with `stream: true`",
        ),
        (False, {"suffix": "end"}, "`suffix`"),
        (False, {"best_of": 2}, "`best_of`: best_of other than n"),
        (False, {"extra_body": {"messages": chat("hi")}}, "`messages` is not supported by completions"),
    ],
)
def test_unsupported_fields_are_refused_by_name(server, chat_api, kwargs, message):
    client = client_for(server)
    with pytest.raises(openai.BadRequestError, match=re.escape(message)) as raised:
        if chat_api:
            client.chat.completions.create(model=MODEL, messages=chat("hi"), max_tokens=2, **kwargs)
        else:
            client.completions.create(model=MODEL, prompt="1", max_tokens=2, **kwargs)
    assert raised.value.body["param"] in message


def test_no_op_values_of_refused_fields_are_accepted(server):
    client = client_for(server)
    no_ops = {"presence_penalty": 0, "frequency_penalty": 0, "logit_bias": {}, "tool_choice": "none"}
    assert client.chat.completions.create(
        model=MODEL, messages=chat("hi"), max_tokens=2, user="u", **no_ops
    ).choices
    assert client.completions.create(model=MODEL, prompt="1", max_tokens=2, best_of=1, suffix="").choices


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name{labels}` in a Prometheus exposition `text`."""
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name + (f"{{{label_text}}}" if labels else "")) + r" (\S+)$"
    (value,) = re.findall(pattern, text, flags=re.MULTILINE)
    return float(value)


def test_metrics_count_requests_tokens_and_latency_behind_the_key(engine):
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, api_key="k").start() as server:
        client = client_for(server, api_key="k")
        answers = [client.completions.create(model=MODEL, prompt="1 +", max_tokens=3) for _ in range(2)]
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=MODEL, prompt="1 +", max_tokens=3, suffix="x")
        base = server.url.removesuffix("/v1")
        assert httpx.get(f"{base}/metrics").status_code == 401
        httpx.get(f"{base}/no/such/path", headers={"Authorization": "Bearer k"})
        response = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer k"})
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    text = response.text
    assert metric(text, "selftaught_requests_total", endpoint="/v1/completions", status="200") == 2
    assert metric(text, "selftaught_requests_total", endpoint="/v1/completions", status="400") == 1
    assert metric(text, "selftaught_requests_total", endpoint="/metrics", status="401") == 1
    assert metric(text, "selftaught_requests_total", endpoint="other", status="404") == 1
    assert metric(text, "selftaught_prompt_tokens_total") == sum(a.usage.prompt_tokens for a in answers)
    assert metric(text, "selftaught_completion_tokens_total") == sum(
        a.usage.completion_tokens for a in answers
    )
    assert metric(text, "selftaught_requests_abandoned_total") == 0
    assert metric(text, "selftaught_queue_length") == 0
    assert metric(text, "selftaught_open_connections") >= 1
    count = metric(text, "selftaught_request_duration_seconds_count", endpoint="/v1/completions")
    assert (
        count
        == 3
        == metric(text, "selftaught_request_duration_seconds_bucket", endpoint="/v1/completions", le="+Inf")
    )
    assert metric(text, "selftaught_request_duration_seconds_sum", endpoint="/v1/completions") > 0
    assert "# TYPE selftaught_request_duration_seconds histogram" in text


def test_tokenize_and_detokenize_follow_vllm(server, engine):
    base = server.url.removesuffix("/v1")
    prompt_ids = engine.encode_prompt(Prompt(id="p", messages=[], text="12 + 7 ="))
    answer = httpx.post(f"{base}/tokenize", json={"model": MODEL, "prompt": "12 + 7 ="}).json()
    assert answer == {"tokens": prompt_ids, "count": len(prompt_ids), "max_model_len": engine.max_positions}
    no_bos = httpx.post(f"{base}/tokenize", json={"prompt": "12 + 7 =", "add_special_tokens": False}).json()
    assert no_bos["tokens"] == prompt_ids[1:]
    chat_ids = engine.encode_prompt(Prompt(id="p", messages=chat("hi")))
    assert (
        httpx.post(f"{base}/tokenize", json={"model": MODEL, "messages": chat("hi")}).json()["tokens"]
        == chat_ids
    )
    text = httpx.post(f"{base}/detokenize", json={"model": MODEL, "tokens": no_bos["tokens"]}).json()
    assert text == {"prompt": "12 + 7 ="}
    refusals = [
        ("/tokenize", {"model": "other", "prompt": "x"}, 404, "not served here"),
        ("/tokenize", {"prompt": "x", "messages": chat("x")}, 400, "exactly one of"),
        ("/tokenize", {"prompt": "x", "foo": 1}, 400, "`foo` is not supported"),
        ("/detokenize", {"tokens": [10**9]}, 400, "token ids in [0, "),
        ("/detokenize", {"tokens": "1 2"}, 400, "`tokens` must be list"),
    ]
    for path, body, status, message in refusals:
        response = httpx.post(f"{base}{path}", json=body)
        assert response.status_code == status and message in response.json()["error"]["message"], body


class StreamingHoldingEngine(HoldingEngine):
    """A streaming engine that reports one token, then holds until released or cancelled."""

    supports_streaming = True

    def __init__(self, token_id: int) -> None:
        super().__init__()
        self.token_id = token_id

    def generate_cancellable(self, prompts, sampling, cancelled, on_token=None):
        for i in range(len(prompts)):
            if on_token is not None:
                on_token(i, 0, self.token_id, -0.5, None)
        return super().generate_cancellable(prompts, sampling, cancelled)


def test_tokens_stream_while_generating_and_a_client_leaving_mid_stream_is_abandoned(tokenizer_only):
    token_id = tokenizer_only.encode("cat", add_special_tokens=False)[0]
    engine = StreamingHoldingEngine(token_id)
    with EngineServer(engine, tokenizer_only, MODEL, port=0).start() as server:
        stream = client_for(server).chat.completions.create(
            model=MODEL, messages=chat("hi"), stream=True, logprobs=True
        )
        chunks = iter(stream)
        assert next(chunks).choices[0].delta.role == "assistant"
        first = next(chunks).choices[0]  # arrives while the engine still holds the request
        assert first.delta.content == tokenizer_only.decode([token_id])
        assert first.logprobs.content[0].logprob == -0.5 and not engine.release.is_set()
        stream.close()  # the client leaves mid-stream
        assert engine.saw_cancel.wait(10), "the engine was never told that the client left"
        assert wait_until(lambda: server.metrics.abandoned == 1)


def test_streamed_text_never_shows_a_stop_string(server):
    client = client_for(server)
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": "The quick", "max_tokens": 12, "temperature": 0}
    full = client.completions.create(**kwargs).choices[0].text
    assert len(full) > 6, "the completion is long enough to cut"
    for stop in [full[4:6], full[5], [full[3:6], "zzzz"]]:
        whole = client.completions.create(**kwargs, stop=stop).choices[0]
        chunks = list(client.completions.create(**kwargs, stop=stop, stream=True))
        assert "".join(c.choices[0].text for c in chunks) == whole.text
        assert chunks[-1].choices[0].finish_reason == whole.finish_reason == "stop"


def test_a_long_completion_streams_in_several_chunks(server, engine):
    kwargs: dict[str, Any] = {"model": MODEL, "prompt": "The quick", "max_tokens": 12, "temperature": 0}
    chunks = list(client_for(server).completions.create(**kwargs, stream=True, logprobs=0))
    texts = [c.choices[0].text for c in chunks]
    assert sum(bool(t) for t in texts) > 2, texts
    assert "".join(texts) == greedy_text(engine, "The quick", 12)
    streamed = [lp for c in chunks if c.choices[0].logprobs for lp in c.choices[0].logprobs.token_logprobs]
    (completion,) = engine.generate(
        [Prompt(id="p", messages=[], text="The quick")], SamplingParams(temperature=0, max_new_tokens=12)
    )[0]
    assert streamed == pytest.approx(completion.logprobs, abs=1e-5)
