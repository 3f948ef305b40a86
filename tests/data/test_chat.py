"""Chat rendering: the loss mask covers exactly the assistant replies, prompts are prefixes of training ids."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from selftaught.data.chat import (
    DEFAULT_CHAT_TEMPLATE,
    apply_template,
    encode_prompt,
    encode_text,
    render_conversation,
    render_prompt,
)
from selftaught.types import Prompt

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def backend() -> Tokenizer:
    """A byte-level BPE tokenizer trained in memory on a few chat-like lines."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["<|user|>\nWhat is 2+3?\n<|assistant|>\nThe answer is 5.", "<|system|>\nBe brief.\n"] * 20
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


@pytest.fixture
def tokenizer(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def trained_spans(tokenizer, ids: list[int], loss_mask: list[bool]) -> list[str]:
    """Decoded text of each maximal run of trained tokens."""
    spans: list[list[int]] = []
    for position, (token_id, trained) in enumerate(zip(ids, loss_mask, strict=True)):
        if trained:
            if position == 0 or not loss_mask[position - 1]:
                spans.append([])
            spans[-1].append(token_id)
    return [tokenizer.decode(span) for span in spans]


def test_default_template_trains_exactly_the_reply_and_eos(tokenizer):
    assert tokenizer.chat_template is None
    messages = [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "The answer is 5."},
    ]
    ids, loss_mask = render_conversation(tokenizer, messages)
    assert len(ids) == len(loss_mask)
    assert ids[0] == tokenizer.bos_token_id and not loss_mask[0]
    assert ids[-1] == tokenizer.eos_token_id and loss_mask[-1]
    assert trained_spans(tokenizer, ids, loss_mask) == ["The answer is 5.</s>"]
    assert tokenizer.decode(ids) == "<s><|user|>\nWhat is 2+3?\n<|assistant|>\nThe answer is 5.</s>"
    assert apply_template(tokenizer, messages, add_generation_prompt=False) == tokenizer.decode(ids)
    assert "<|assistant|>" in DEFAULT_CHAT_TEMPLATE


def test_every_assistant_turn_is_trained(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And 2+4?"},
        {"role": "assistant", "content": "The answer is 6."},
    ]
    ids, loss_mask = render_conversation(tokenizer, messages)
    assert trained_spans(tokenizer, ids, loss_mask) == ["5</s>", "The answer is 6.</s>"]
    untrained = tokenizer.decode([i for i, trained in zip(ids, loss_mask, strict=True) if not trained])
    assert (
        untrained
        == "<s><|system|>\nBe brief.\n<|user|>\nWhat is 2+3?\n<|assistant|>\n<|user|>\nAnd 2+4?\n<|assistant|>\n"
    )


def test_prompt_ids_are_a_prefix_of_conversation_ids(tokenizer):
    messages = [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "The answer is 5."},
    ]
    prompt_ids = render_prompt(tokenizer, messages[:1])
    ids, loss_mask = render_conversation(tokenizer, messages)
    assert ids[: len(prompt_ids)] == prompt_ids
    assert not any(loss_mask[: len(prompt_ids)])
    assert all(loss_mask[len(prompt_ids) :])


def test_tokenizer_template_is_used_when_present(tokenizer):
    tokenizer.chat_template = CHATML_TEMPLATE
    messages = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}]
    ids, loss_mask = render_conversation(tokenizer, messages)
    assert tokenizer.decode(ids).startswith("<|im_start|>user\n")
    assert trained_spans(tokenizer, ids, loss_mask) == ["5<|im_end|>\n"]
    assert ids[: len(render_prompt(tokenizer, messages[:1]))] == render_prompt(tokenizer, messages[:1])


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "non-empty list"),
        ([USER, {"content": "hello"}], r"messages\[1\] must be a dict with 'role'"),
        ([{"role": "tool", "content": "x"}, ASSISTANT], r"messages\[0\]\['role'\] must be one of"),
        (
            [USER, {"role": "assistant", "content": 5}],
            r"messages\[1\]\['content'\] must be a string, got int",
        ),
        ([USER], "at least one assistant turn"),
        ([ASSISTANT, USER, ASSISTANT], r"messages\[0\] is an assistant turn"),
    ],
)
def test_bad_messages_are_named(tokenizer, messages, expected):
    with pytest.raises(ValueError, match=expected):
        render_conversation(tokenizer, messages)


def test_encode_prompt_uses_raw_text_with_bos_else_the_chat_template(tokenizer):
    raw = Prompt(id="raw", messages=[USER], text="Q: 2+3?\nA:")
    chat = Prompt(id="chat", messages=[USER])
    raw_ids = encode_prompt(tokenizer, raw)
    assert raw_ids == encode_text(tokenizer, "Q: 2+3?\nA:", add_bos=True)
    assert raw_ids[0] == tokenizer.bos_token_id and raw_ids.count(tokenizer.bos_token_id) == 1
    assert encode_prompt(tokenizer, chat) == render_prompt(tokenizer, [USER])
    with_bos = Prompt(id="bos", messages=[], text="<s>Q: 2+3?\nA:")
    assert encode_prompt(tokenizer, with_bos) == raw_ids  # a BOS already there is not doubled


def test_render_prompt_validates_messages(tokenizer):
    with pytest.raises(ValueError, match=r"messages\[0\]\['role'\]"):
        render_prompt(tokenizer, [{"role": "human", "content": "hi"}])


def test_template_that_is_not_prefix_stable_raises(tokenizer):
    # The turn count comes first, so rendering the first turns is not a prefix of rendering them all.
    tokenizer.chat_template = "{{ messages | length }}" + DEFAULT_CHAT_TEMPLATE
    with pytest.raises(ValueError, match="not prefix-stable"):
        render_conversation(tokenizer, [USER, ASSISTANT])


def test_emphasis_weights_mark_the_tokens_of_each_match(tokenizer):
    from selftaught.data.chat import emphasis_weights

    messages = [
        {"role": "user", "content": "Is 2+2=4?"},
        {"role": "assistant", "content": "yes it is [[A]]"},
    ]
    ids, loss_mask = render_conversation(tokenizer, messages)
    weights = emphasis_weights(tokenizer, ids, loss_mask, {r"\[\[[AB]\]\]": 5.0, r"yes|\[\[": 2.0})
    assert all(w == 0.0 for w, trained in zip(weights, loss_mask, strict=True) if not trained)
    heavy = tokenizer.decode([i for i, w in zip(ids, weights, strict=True) if w == 5.0])
    double = tokenizer.decode([i for i, w in zip(ids, weights, strict=True) if w == 2.0])
    assert heavy.strip() == "[[A]]" and double.strip() == "yes"  # `[[` takes the larger weight
    plain = [i for i, w, trained in zip(ids, weights, loss_mask, strict=True) if trained and w == 1.0]
    assert " it is" in tokenizer.decode(plain)
    assert emphasis_weights(tokenizer, ids, loss_mask, {"no match": 9.0}) == [float(m) for m in loss_mask]
