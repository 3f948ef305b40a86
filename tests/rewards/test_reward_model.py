"""Reward models: Bradley-Terry golden values, batch- and padding-invariant scoring, loading."""

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from selftaught.data.chat import render_conversation
from selftaught.rewards.reward_model import RewardModel, bradley_terry_loss, pad_right, render_for_reward

PROMPTS = [[{"role": "user", "content": p}] for p in ("33-25-7", "1+1", "45+64+36+96", "9-9")]
COMPLETIONS = ["33-25=8 8-7=1 Answer: 1", "Answer: 2", "45+64=109 109+36=145 145+96=241 Answer: 241", "0"]


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).eval()
    return RewardModel(model, AutoTokenizer.from_pretrained(tiny_model_dir))


def test_bradley_terry_is_log_2_at_equal_rewards_with_gradient_minus_half_over_b():
    """l = -log sigmoid(r_c - r_r) = log 2 at a zero margin; dl/dr_c = -sigmoid(-0) = -1/2 per pair,
    divided by the B = 3 pairs of the batch mean; +1/(2B) on the rejected rewards."""
    chosen = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    rejected = chosen.detach().clone().requires_grad_()
    loss, metrics = bradley_terry_loss(chosen, rejected)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2))
    torch.testing.assert_close(chosen.grad, torch.full((3,), -1 / 6))
    torch.testing.assert_close(rejected.grad, torch.full((3,), 1 / 6))
    assert metrics["accuracy"] == 0.0  # a tie is not a win


def test_bradley_terry_is_softplus_of_minus_margin_and_accumulates_by_num_pairs():
    """-log sigmoid(m) = log(1 + e^-m); with num_pairs = 4, two halves add up to the whole batch."""
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0, 3.0]), torch.tensor([0.0, 1.0, -1.5, 3.0])
    margins = [2.0, -1.0, 0.5, 0.0]
    loss, metrics = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(sum(math.log1p(math.exp(-m)) for m in margins) / 4)
    assert metrics["accuracy"].item() == 0.5 and metrics["margin"].item() == pytest.approx(1.5 / 4)
    first, _ = bradley_terry_loss(chosen[:2], rejected[:2], num_pairs=4)
    second, _ = bradley_terry_loss(chosen[2:], rejected[2:], num_pairs=4)
    assert (first + second).item() == pytest.approx(loss.item())
    with pytest.raises(ValueError, match="must both be"):
        bradley_terry_loss(chosen, rejected[:3])


def test_scores_do_not_depend_on_batch_size_order_or_tokenizer_padding_side(reward_model):
    one = RewardModel(reward_model.model, reward_model.tokenizer, batch_size=1)(PROMPTS, COMPLETIONS)
    together = RewardModel(reward_model.model, reward_model.tokenizer, batch_size=4)(PROMPTS, COMPLETIONS)
    reversed_order = reward_model(PROMPTS[::-1], COMPLETIONS[::-1])[::-1]
    reward_model.tokenizer.padding_side = "left"  # load_model's generation default; scoring pads itself
    left = reward_model(PROMPTS, COMPLETIONS)
    assert (
        len(
            set(
                map(
                    len,
                    (
                        render_for_reward(reward_model.tokenizer, p, c)
                        for p, c in zip(PROMPTS, COMPLETIONS, strict=True)
                    ),
                )
            )
        )
        > 1
    )
    for other in (together, reversed_order, left):
        torch.testing.assert_close(torch.tensor(other), torch.tensor(one), atol=1e-5, rtol=0)


def test_the_score_is_the_last_real_token_with_left_or_right_padding(reward_model):
    """HF pools at the rightmost non-pad token: the unpadded score, whichever side the pads are on
    (left padding also needs position ids counted over real tokens)."""
    model, pad = reward_model.model, reward_model.pad_id
    ids = [render_for_reward(reward_model.tokenizer, p, c) for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([x])).logits[:, 0] for x in ids])
        right = model(*pad_right(ids, pad)).logits[:, 0]
        width = max(map(len, ids))
        left_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        left_mask = (left_ids != pad).long()
        left = model(
            input_ids=left_ids, attention_mask=left_mask, position_ids=(left_mask.cumsum(-1) - 1).clamp(min=0)
        )
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(left.logits[:, 0], alone, atol=1e-5, rtol=0)


def test_over_long_or_empty_sequences_are_not_scored(reward_model):
    short = RewardModel(reward_model.model, reward_model.tokenizer, max_length=12)
    values = short.score_ids([[1, 5, 6], list(range(3, 30)), []])
    assert values[0] is not None and values[1:] == [None, None]


def test_rendering_matches_the_chat_template_or_bos_text_eos(reward_model):
    tokenizer = reward_model.tokenizer
    chat = render_for_reward(tokenizer, PROMPTS[0], COMPLETIONS[0])
    assert (
        chat
        == render_conversation(tokenizer, [*PROMPTS[0], {"role": "assistant", "content": COMPLETIONS[0]}])[0]
    )
    assert (
        render_for_reward(tokenizer, PROMPTS[0], [{"role": "assistant", "content": COMPLETIONS[0]}]) == chat
    )
    text = render_for_reward(tokenizer, "Q: 1+1\nA:", " 2")
    assert text[0] == tokenizer.bos_token_id and text[-1] == tokenizer.eos_token_id


def test_from_pretrained_round_trip_and_pad_id(reward_model, tmp_path):
    reward_model.model.save_pretrained(tmp_path)
    reward_model.tokenizer.save_pretrained(tmp_path)
    loaded = RewardModel.from_pretrained(tmp_path)
    assert loaded.pad_id == reward_model.tokenizer.pad_token_id
    torch.testing.assert_close(
        torch.tensor(loaded(PROMPTS, COMPLETIONS)), torch.tensor(reward_model(PROMPTS, COMPLETIONS))
    )


def test_a_model_with_several_labels_is_refused(tiny_model_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
    with pytest.raises(ValueError, match="one output"):
        RewardModel(model, AutoTokenizer.from_pretrained(tiny_model_dir))


@pytest.mark.parametrize("architecture", ["gpt2", "bert"])
def test_other_architectures_score_batch_invariantly(architecture, tiny_model_dir):
    """Any sequence-classification model works: GPT-2 (absolute positions, last-token pooling) and
    BERT (first-token pooling) give the same scores alone and in a right-padded batch."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
    )

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    size = {"vocab_size": len(tokenizer), "num_labels": 1, "pad_token_id": tokenizer.pad_token_id}
    torch.manual_seed(0)
    if architecture == "gpt2":
        model = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=2, n_head=2, **size))
    else:
        config = BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **size
        )
        model = BertForSequenceClassification(config)
    one = RewardModel(model.eval(), tokenizer, batch_size=1)(PROMPTS, COMPLETIONS)
    together = RewardModel(model, tokenizer, batch_size=4)(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(torch.tensor(together), torch.tensor(one), atol=1e-5, rtol=0)
