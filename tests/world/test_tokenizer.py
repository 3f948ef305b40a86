import random
import string

import pytest
from transformers import AutoTokenizer

from selftaught.data.chat import render_conversation, render_prompt
from selftaught.world.arith import STRATEGIES, sample_problems, solve, to_sft_example
from selftaught.world.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def world_texts() -> list[str]:
    problems = sample_problems("test", 40, (1, 2, 3, 4), seed=0)
    word_problems = sample_problems("test", 20, (2, 3), seed=0, word=True)
    solutions = [solve(p, s, bug=0.5, rng=random.Random(0)) for p in problems for s in STRATEGIES]
    return [p.text for p in problems + word_problems] + solutions


def test_build_is_deterministic(tokenizer):
    again = build_tokenizer()
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert again.get_vocab() == tokenizer.get_vocab()


def test_special_tokens_and_size(tokenizer):
    assert len(tokenizer) == 320
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(len(SPECIAL_TOKENS)))
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<s>", "</s>")
    assert set(SPECIAL_TOKENS) <= set(tokenizer.all_special_tokens)
    assert len(build_tokenizer(300)) == 300
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(100)


def test_decode_encode_round_trips(tokenizer):
    rng = random.Random(0)
    noise = ["".join(rng.choice(string.printable) for _ in range(60)) for _ in range(20)]
    for text in [*world_texts(), *noise, string.printable, "  two  spaces\nand lines\n", "x" * 3]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text


def test_digits_are_single_tokens(tokenizer):
    with_digits = [t for t in tokenizer.get_vocab() if set(t) & set(string.digits)]
    assert sorted(with_digits) == list(string.digits)
    for text in world_texts():
        tokens = [tokenizer.decode([i]) for i in tokenizer.encode(text, add_special_tokens=False)]
        digit_tokens = [t for t in tokens if set(t) & set(string.digits)]
        assert all(len(t) == 1 for t in digit_tokens)
        assert len(digit_tokens) == sum(c in string.digits for c in text)


def test_merges_compress_world_text(tokenizer):
    for text in world_texts():
        assert len(tokenizer.encode(text, add_special_tokens=False)) <= len(text)
    solution = "45+64=109 109+36=145 145+96=241 Answer: 241"
    assert len(tokenizer.encode(solution, add_special_tokens=False)) < len(solution)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_chat_template_masks_exactly_the_reply(tokenizer, strategy):
    for problem in sample_problems("train", 12, (1, 2, 3), seed=1, word=strategy == "grouped"):
        messages = to_sft_example(problem, strategy)["messages"]
        ids, loss_mask = render_conversation(tokenizer, messages)
        prompt_ids = render_prompt(tokenizer, messages[:1])
        assert ids[: len(prompt_ids)] == prompt_ids
        assert loss_mask == [False] * len(prompt_ids) + [True] * (len(ids) - len(prompt_ids))
        assert tokenizer.decode(prompt_ids) == f"<s><|user|>{problem.text}<|assistant|>"
        assert tokenizer.decode(ids[len(prompt_ids) :]) == messages[1]["content"] + "</s>"
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id


def test_chat_template_with_system_and_two_turns(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+2"},
        {"role": "assistant", "content": "Answer: 3"},
        {"role": "user", "content": "3-1"},
        {"role": "assistant", "content": "Answer: 2"},
    ]
    ids, loss_mask = render_conversation(tokenizer, messages)
    assert tokenizer.decode(ids) == (
        "<s><|system|>Be brief.<|user|>1+2<|assistant|>Answer: 3</s><|user|>3-1<|assistant|>Answer: 2</s>"
    )
    trained_ids = [i for i, trained in zip(ids, loss_mask, strict=True) if trained]
    assert tokenizer.decode(trained_ids) == "Answer: 3</s>Answer: 2</s>"
    assert render_prompt(tokenizer, messages[:4]) == ids[: len(render_prompt(tokenizer, messages[:4]))]


def test_save_and_load_round_trip(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    assert all(path.suffix in (".json", ".jinja") for path in tmp_path.iterdir())
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.all_special_ids == tokenizer.all_special_ids
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
    messages = to_sft_example(sample_problems("valid", 1, [3], seed=0)[0])["messages"]
    assert render_conversation(loaded, messages) == render_conversation(tokenizer, messages)
    texts = world_texts()
    expected_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assert loaded(texts, add_special_tokens=False)["input_ids"] == expected_ids
