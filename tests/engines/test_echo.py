"""The echo engine (benchmarks and tests of the serving path) and `selftaught serve --model scripted:echo`."""

from __future__ import annotations

from selftaught.engines.base import SamplingParams
from selftaught.engines.echo import ECHO_MODEL, echo_engine
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.types import Prompt
from tests.engines.test_fleet_serve import serve

PROMPTS = [
    Prompt(id="chat", messages=[{"role": "user", "content": "Name an animal. Then stop."}]),
    Prompt(id="raw", messages=[], text="12 + 7 = 19"),
]


def test_echo_repeats_the_prompt_cut_at_stop_strings_and_max_tokens():
    engine, tokenizer = echo_engine()
    results = engine.generate(PROMPTS, SamplingParams(n=2, stop=[" Then"], max_new_tokens=64))
    assert [[c.text for c in row] for row in results] == [["Name an animal."] * 2, ["12 + 7 = 19"] * 2]
    assert all(
        c.finish_reason == "stop" and c.num_tokens == len(c.logprobs) > 0 for row in results for c in row
    )
    assert results[1][0].token_ids == tokenizer.encode("12 + 7 = 19", add_special_tokens=False)
    [[cut]] = engine.generate(PROMPTS[1:], SamplingParams(max_new_tokens=3))
    assert cut.finish_reason == "length" and cut.num_tokens == 3 and "12 + 7 = 19".startswith(cut.text)


def test_serve_scripted_echo_answers_over_http():
    with serve(ECHO_MODEL) as (url, _):
        with_ids = OpenAIEngine(OpenAIConfig(model="tiny", base_url=url, logprobs=True, token_ids=True))
        [chat] = with_ids.generate(PROMPTS[:1], SamplingParams(n=2, max_new_tokens=64))
        [raw] = OpenAIEngine(OpenAIConfig(model="tiny", base_url=url)).generate(PROMPTS[1:], SamplingParams())
    assert [c.text for c in chat] == ["Name an animal. Then stop."] * 2 and chat[0].num_tokens > 0
    assert [c.text for c in raw] == ["12 + 7 = 19"]
