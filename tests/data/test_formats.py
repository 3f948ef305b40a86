"""TRL records <-> prompts, SFT examples and preference pairs, in one place (`data.formats`), and the
named sources every recipe reads (`data.catalog`, `world.sources`, `data.prompt_source`)."""

import json

import pytest

from selftaught.data import gsm8k
from selftaught.data.catalog import load_records
from selftaught.data.formats import (
    gsm8k_preference_records,
    is_preference_records,
    preference_records,
    prompt_from_record,
    prompt_record,
    prompts_from_records,
    sft_example,
)
from selftaught.data.prompt_source import PromptSource, load_prompt_source
from selftaught.types import Prompt
from selftaught.world.arith import sample_problems, sample_sft_examples, to_prompt
from selftaught.world.tokenizer import build_tokenizer

GSM = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}


def test_prompt_records_of_every_shape():
    text = prompt_from_record({"prompt": "2+2=", "answer": 4, "target": "x"}, 0, "f")
    assert (text.id, text.text, text.messages, text.answer, text.meta) == (
        "0",
        "2+2=",
        [],
        "4",
        {"target": "x"},
    )
    chat = prompt_from_record({"id": "a", "prompt": [{"role": "user", "content": "hi"}], "task": "t"}, 1, "f")
    assert (chat.id, chat.messages[0]["content"], chat.task) == ("a", "hi", "t")
    convo = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert prompt_from_record({"messages": convo}, 2, "f").messages == convo[:1]
    gsm = prompt_from_record(GSM, 3, "f", num_shots=2)
    assert (
        gsm.answer == "7"
        and gsm.task == "gsm8k"
        and gsm.text.startswith("Question:")
        and gsm.text.endswith("Answer:")
    )
    assert prompt_from_record(GSM, 3, "f").text is None  # 0 shots: a chat turn
    with pytest.raises(ValueError, match="record 4 has no `prompt`"):
        prompt_from_record({"text": "x"}, 4, "f")


def test_world_prompt_records_read_back_as_the_worlds_prompts():
    records = load_records("world:prompts", num=30, levels=[1, 2], seed=4)
    expected = [to_prompt(p) for p in sample_problems("train", 30, [1, 2], 4)]
    assert prompts_from_records(records, "world:prompts") == expected
    assert [prompt_from_record(prompt_record(p), 0, "x") for p in expected] == expected
    valid = load_records("world:prompts:valid", num=5, levels=[1], seed=0)
    assert {r["split"] for r in valid} == {"valid"}


def test_world_sources_pass_each_builder_only_its_options():
    sft = load_records(
        "world:sft", num=20, levels=[1], seed=3, bug=0.5, off_by_one=True
    )  # off_by_one: not sft's
    assert sft == sample_sft_examples(20, [1], 3, None, bug=0.5)
    pairs = load_records("world:pairs", num=10, seed=3, levels=[1, 2, 3])
    assert len(pairs) == 10 and {p["kind"] for p in pairs} == {"carry"}
    judge = load_records("world:judge-pairs:test", num=4)
    assert len(judge) == 4 and all("corruption" in r for r in judge)
    with pytest.raises(ValueError, match="unknown world source 'world:nope'"):
        load_records("world:nope")
    with pytest.raises(ValueError, match="train split only"):
        load_records("world:sft:valid")


def test_sft_examples_from_every_format():
    tokenizer = build_tokenizer()
    chat = sft_example(
        {"messages": [{"role": "user", "content": "1+1"}, {"role": "assistant", "content": "2"}]},
        tokenizer,
        "r",
    )
    plain = sft_example({"prompt": "1+1=", "completion": "2"}, tokenizer, "r")
    gsm = sft_example(GSM, tokenizer, "r")
    for ids, mask in (chat, plain, gsm):
        assert len(ids) == len(mask) and any(mask) and not mask[0]
    assert tokenizer.decode([i for i, m in zip(*gsm, strict=True) if m]).startswith(
        "3 + 4 = 7\nThe answer is 7."
    )
    with pytest.raises(ValueError, match="expected `messages`"):
        sft_example({"text": "x"}, tokenizer, "rec 0")


def test_preference_records_check_columns_and_build_gsm8k_pairs():
    assert is_preference_records([{"prompt": "a", "chosen": "b", "rejected": "c"}]) and is_preference_records(
        [GSM]
    )
    assert not is_preference_records([{"prompt": "a"}])
    pairs = preference_records([GSM, GSM], "f", seed=0)
    assert pairs == gsm8k_preference_records([GSM, GSM], 0)
    chosen, rejected = pairs[0]["chosen"][0]["content"], pairs[0]["rejected"][0]["content"]
    assert chosen == gsm8k.solution(GSM["answer"]) and rejected != chosen
    assert rejected.rsplit(" ", 1)[0] == chosen.rsplit(" ", 1)[0]  # only the final number differs
    with pytest.raises(ValueError, match="no column 'rejected'"):
        preference_records([{"prompt": "a", "chosen": "b"}], "f", seed=0)


def test_prompt_source_is_a_pure_function_of_the_step(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{i}="}) + "\n" for i in range(5)))
    source = load_prompt_source(str(path), per_step=3, seed=1, pool_size=999)
    again = load_prompt_source(str(path), per_step=3, seed=1, pool_size=999)
    assert [source.at(s) for s in (1, 2, 3)] == [again.at(s) for s in (1, 2, 3)]
    first_epoch = source.at(1) + source.at(2)[:2]
    assert sorted(p.id for p in first_epoch) == ["0", "1", "2", "3", "4"]  # an epoch visits every prompt
    with pytest.raises(ValueError, match="empty"):
        PromptSource([], 1, 0)
    assert isinstance(source.at(1)[0], Prompt)
