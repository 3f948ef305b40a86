"""ScriptedEngine: scripted responses, cycling, callables, unknown ids, call records."""

from __future__ import annotations

import pytest

from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.scripted import ScriptedCall, ScriptedEngine
from selftaught.types import Prompt


def prompt(pid: str) -> Prompt:
    return Prompt(id=pid, messages=[{"role": "user", "content": f"question {pid}"}])


def test_dict_script_cycles_responses_per_prompt():
    engine = ScriptedEngine({"a": ["a0", "a1"], "b": ["b0"]})
    assert isinstance(engine, Engine)
    results = engine.generate([prompt("a"), prompt("b")], SamplingParams(n=3, seed=4))
    assert [[c.text for c in completions] for completions in results] == [["a0", "a1", "a0"], ["b0"] * 3]
    for pid, completions in zip("ab", results, strict=True):
        for j, completion in enumerate(completions):
            assert completion.prompt_id == pid
            assert completion.token_ids == []
            assert completion.logprobs is None
            assert completion.finish_reason == "stop"
            assert completion.meta == {"sample_index": j, "seed": 4}


def test_callable_script_gets_prompt_and_sample_index():
    engine = ScriptedEngine(lambda p, j: f"{p.messages[0]['content']}#{j}")
    [completions] = engine.generate([prompt("x")], SamplingParams(n=2))
    assert [c.text for c in completions] == ["question x#0", "question x#1"]


def test_unknown_prompt_id_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="'missing'"):
        ScriptedEngine({"a": ["a0"]}).generate([prompt("missing")], SamplingParams())


def test_empty_response_list_is_rejected():
    with pytest.raises(ValueError, match=r"\['b'\]"):
        ScriptedEngine({"a": ["a0"], "b": []})


def test_records_every_call():
    engine = ScriptedEngine({"a": ["a0"], "b": ["b0"]})
    first, second = SamplingParams(n=1), SamplingParams(n=2, temperature=0)
    engine.generate([prompt("a")], first)
    engine.generate([prompt("b"), prompt("a")], second)
    assert engine.calls == [
        ScriptedCall([prompt("a")], first),
        ScriptedCall([prompt("b"), prompt("a")], second),
    ]
    assert engine.generate([], first) == []
    assert len(engine.calls) == 3
