"""The OpenAI protocol without HTTP: request bodies -> prompt + sampling, refusals named, and which
engines can reload weights."""

import pytest

from selftaught.engines.base import ReloadableEngine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai_protocol import (
    ApiError,
    RequestLimits,
    check_prompt_tokens,
    parse_reload_request,
    parse_request,
)
from selftaught.engines.scripted import ScriptedEngine

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_a_chat_request_maps_to_prompt_and_sampling():
    body = CHAT | {"n": 2, "temperature": 0, "max_completion_tokens": 7, "stop": "\n", "seed": 3}
    call = parse_request(body, chat=True, model_name="m", default_max_tokens=256)
    assert call.chat and call.seeded and call.prompt.messages == CHAT["messages"]
    assert call.prompt.id.startswith("chatcmpl-") and call.prompt.text is None
    assert call.sampling == SamplingParams(temperature=0, max_new_tokens=7, n=2, stop=["\n"], seed=3)


def test_a_completion_request_is_raw_text_with_default_max_tokens():
    call = parse_request({"model": "m", "prompt": "1 + 1 =", "logprobs": 1}, False, "m", default_max_tokens=9)
    assert (call.prompt.text, call.logprobs, call.seeded) == ("1 + 1 =", True, False)
    assert call.sampling.max_new_tokens == 9


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([], 400, "must be a JSON object"),
        (CHAT | {"model": "other"}, 404, "'other' is not served here"),
        (CHAT | {"tools": [{"type": "function"}]}, 400, "`tools`: tool and function calling"),
        (CHAT | {"n": True}, 400, "`n` must be int, got true"),
        (CHAT | {"max_tokens": 0}, 400, "max_tokens must be >= 1"),
        ({"model": "m", "messages": [{"role": "bot", "content": "x"}]}, 400, "must be one of"),
        ({"model": "m"}, 400, "`messages` is required"),
    ],
)
def test_bad_requests_are_refused_with_the_field_named(body, status, message):
    with pytest.raises(ApiError, match=message) as raised:
        parse_request(body, chat=True, model_name="m", default_max_tokens=256)
    assert raised.value.status == status and raised.value.body()["error"]["code"] == status


def test_a_reload_request_needs_a_directory_and_a_version():
    assert parse_reload_request({"model": "/ckpt", "policy_version": 4}) == ("/ckpt", 4)
    with pytest.raises(ApiError, match="`policy_version` is required"):
        parse_reload_request({"model": "/ckpt"})


def test_hf_engines_are_reloadable_and_scripted_ones_are_not(model, tokenizer):
    assert isinstance(HFEngine(model, tokenizer), ReloadableEngine)
    assert not isinstance(ScriptedEngine({"p": ["x"]}), ReloadableEngine)


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (CHAT | {"n": 5}, "n", "`n` is 5; this server allows at most 4"),
        (CHAT | {"max_tokens": 9}, "max_tokens", "is 9; this server allows at most 8"),
        (CHAT | {"max_completion_tokens": 9}, "max_tokens", "is 9; this server allows at most 8"),
    ],
)
def test_requests_beyond_the_limits_are_refused_with_the_field_and_cap(body, param, message):
    limits = RequestLimits(max_n=4, max_tokens=8, max_prompt_tokens=16)
    with pytest.raises(ApiError, match=message) as raised:
        parse_request(body, chat=True, model_name="m", default_max_tokens=8, limits=limits)
    assert (raised.value.status, raised.value.param) == (400, param)
    call = parse_request(CHAT | {"n": 4, "max_tokens": 8}, True, "m", 8, limits)
    assert (call.sampling.n, call.sampling.max_new_tokens) == (4, 8)


def test_prompt_tokens_are_capped_and_limits_must_be_positive():
    limits = RequestLimits(max_prompt_tokens=16)
    check_prompt_tokens(16, chat=False, limits=limits)
    with pytest.raises(ApiError, match="`prompt` has 17 tokens; this server allows at most 16"):
        check_prompt_tokens(17, chat=False, limits=limits)
    with pytest.raises(ValueError, match="max_n must be >= 1"):
        RequestLimits(max_n=0)


def test_error_types_follow_openai():
    assert ApiError(403, "x").body()["error"]["type"] == "permission_error"
    assert ApiError(500, "x").body()["error"]["type"] == "server_error"
    assert ApiError(413, "x").body()["error"]["type"] == "invalid_request_error"


def test_a_list_of_prompts_maps_to_one_prompt_each_and_caps_the_total_samples():
    call = parse_request({"model": "m", "prompt": ["a", "b"], "n": 2}, False, "m", 4)
    assert [p.text for p in call.prompts] == ["a", "b"] and call.id.startswith("cmpl-")
    assert [p.id for p in call.prompts] == [f"{call.id}-0", f"{call.id}-1"]
    with pytest.raises(ApiError, match="2 prompts x `n` 2 = 4 samples"):
        parse_request({"model": "m", "prompt": ["a", "b"], "n": 2}, False, "m", 4, RequestLimits(max_n=3))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"presence_penalty": 1}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"repetition_penalty": 1.1}, "repetition_penalty"),
        ({"top_k": 40}, "top_k"),
        ({"min_p": 0.1}, "min_p"),
        ({"echo": True}, "echo"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_every_unsupported_chat_field_is_refused_by_name(extra, param):
    with pytest.raises(ApiError) as raised:
        parse_request(CHAT | extra, True, "m", 8)
    assert (raised.value.status, raised.value.param) == (400, param)
    assert f"`{param}`" in str(raised.value)


def test_null_and_no_op_values_are_accepted():
    no_ops = {"tools": [], "tool_choice": "none", "logit_bias": {}, "presence_penalty": 0, "top_k": -1}
    assert parse_request(CHAT | no_ops | {"functions": None, "user": "u"}, True, "m", 8).chat
    body = {"model": "m", "prompt": "x", "best_of": 2, "n": 2, "suffix": "", "echo": False}
    assert parse_request(body, False, "m", 8).sampling.n == 2


def test_stream_chunks_follow_openai_and_end_with_usage(tokenizer):
    from selftaught.engines.openai_protocol import stream_chunks
    from selftaught.types import Completion

    call = parse_request(CHAT | {"stream": True, "stream_options": {"include_usage": True}}, True, "m", 8)
    done = Completion(prompt_id="", text="hey", token_ids=[5, 6], finish_reason="length")
    chunks = list(stream_chunks(call, [[done]], "m", tokenizer))
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 4
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "hey"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:3]] == [None, None, "length"]
    assert all(c["usage"] is None for c in chunks[:3])
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ([], "What is 12 + 35?"),
        (["12"], "What is "),
        (["+ 3", "zzzzzz"], "What is 12 "),
        (["?"], "What is 12 + 35"),
    ],
)
def test_incremental_text_sends_a_prefix_of_the_final_text_and_no_stop_string(tokenizer, stop, expected):
    from selftaught.engines.openai_protocol import IncrementalText

    text = IncrementalText(tokenizer, stop)
    deltas = [text.add(token) for token in tokenizer.encode("What is 12 + 35?", add_special_tokens=False)]
    sent = "".join(deltas)
    assert expected.startswith(sent) and not any(s in sent for s in stop)
    assert sent + text.rest(expected) == expected
    if not stop:
        assert sent == expected and sum(bool(d) for d in deltas) > 3
