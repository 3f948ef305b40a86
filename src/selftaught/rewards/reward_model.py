"""Reward models: a scalar score per (prompt, completion) from any sequence-classification model.

A reward model is an `AutoModelForSequenceClassification` with one label: its one logit for
`prompt + completion` is the reward (decoder models such as Llama read it at the last non-pad token,
encoders such as BERT at the first token). `RewardModel` wraps one as a reward
function with the TRL signature; `bradley_terry_loss` is the loss that trains it on preference
pairs (the `reward-model` recipe).

Sequences are rendered by `render_for_reward`, the same function the recipe trains with, and
right-padded in batches sorted by length. Right padding keeps each sequence's positions 0..L-1,
so a score does not depend on what else is in the batch, for any architecture (left padding would
need `position_ids`, which not every model accepts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from selftaught.data.chat import encode_text, render_conversation
from selftaught.data.padding import pad_sequences
from selftaught.rewards.base import TextOrChat, completion_text

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def render_for_reward(tokenizer: Any, prompt: TextOrChat, completion: TextOrChat) -> list[int]:
    """Token ids of `prompt` followed by `completion`, as a reward model reads them.

    A conversational prompt is rendered with the chat template together with the completion as
    the assistant turn (`render_conversation`, end-of-turn marker included); a text prompt is BOS +
    prompt + completion + EOS, as the SFT recipe renders `prompt`/`completion` records.
    """
    if isinstance(prompt, list):
        turns = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return render_conversation(tokenizer, [*prompt, *turns])[0]
    ids = [
        *encode_text(tokenizer, prompt, add_bos=True),
        *encode_text(tokenizer, completion_text(completion)),
    ]
    return ids if tokenizer.eos_token_id is None else [*ids, tokenizer.eos_token_id]


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, attention_mask)`, both [B, T] long, with the pads after each sequence (the
    padding this module's docstring explains; `selftaught.data.padding.pad_sequences`)."""
    return pad_sequences(sequences, pad_id, side="right")


def sequence_rewards(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """[B] fp32 rewards of right-padded [B, T] sequences: the model's one logit per sequence.

    HF decoder models pool at the rightmost token that is not `config.pad_token_id`
    (`ensure_pad_token_id` sets it). With a pad token equal to EOS, a final EOS counts as padding,
    so the score is read at the token before it, in training and scoring alike.
    """
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()  # [B]


def ensure_pad_token_id(model: PreTrainedModel, tokenizer: Any) -> int:
    """The model's pad token id, set from the tokenizer (pad, else EOS) when the config has none.

    Batched scoring needs it: without it HF cannot find the last real token of a padded row.
    """
    if model.config.pad_token_id is None:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError(
                "the reward model's tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token"
            )
        model.config.pad_token_id = pad_id
    return int(model.config.pad_token_id)


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, *, num_pairs: int | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley-Terry preference loss `-log sigmoid(r_c - r_r)`, summed over pairs and divided by `num_pairs`.

    The probability that the chosen response wins is `sigmoid(r_c - r_r)` (Bradley & Terry 1952);
    its negative log-likelihood is the reward-model loss of InstructGPT (Ouyang et al. 2022, Eq. 1).
    At equal rewards the loss is `log 2` per pair. Pass the pairs of the whole optimizer batch as
    `num_pairs` so micro-batch losses add up to the batch loss (default: this call's B).

    Args:
        chosen_rewards, rejected_rewards: [B] rewards of the chosen and rejected responses.

    Returns:
        loss: 0-dim tensor.
        metrics (detached, means over this call's pairs): `accuracy` (share with r_c > r_r, ties
        count as wrong), `margin` (r_c - r_r), `chosen_reward`, `rejected_reward`.
    """
    if chosen_rewards.shape != rejected_rewards.shape or chosen_rewards.dim() != 1:
        raise ValueError(
            f"chosen_rewards and rejected_rewards must both be [B]; got {tuple(chosen_rewards.shape)} "
            f"and {tuple(rejected_rewards.shape)}"
        )
    if num_pairs is not None and num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1 (the pairs of the whole batch), got {num_pairs}")
    margin = chosen_rewards - rejected_rewards  # [B]
    loss = -F.logsigmoid(margin).sum() / (num_pairs or len(margin))
    metrics = {
        "accuracy": (margin > 0).float().mean().detach(),
        "margin": margin.mean().detach(),
        "chosen_reward": chosen_rewards.mean().detach(),
        "rejected_reward": rejected_rewards.mean().detach(),
    }
    return loss, metrics


class RewardModel:
    """A sequence-classification model as a reward function: `rm(prompts, completions) -> list[float | None]`.

    A sequence longer than `max_length` tokens is not scored (None), not truncated: a reward
    model's judgement of a cut sequence would be a guess.
    """

    def __init__(
        self, model: PreTrainedModel, tokenizer: Any, *, batch_size: int = 32, max_length: int | None = None
    ):
        """`max_length` defaults to the model's `max_position_embeddings` (no limit when it has none)."""
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(
                f"a reward model has one output (num_labels=1); this model has {model.config.num_labels} labels"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = ensure_pad_token_id(model, tokenizer)
        self.batch_size = batch_size
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", None)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32", **kwargs: Any
    ) -> RewardModel:
        """Load a reward model directory (config.json + safetensors + tokenizer), e.g. the recipe's output."""
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=DTYPES[dtype])
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model.to(device).eval(), tokenizer, **kwargs)

    def __call__(
        self, prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> list[float | None]:
        """Rewards of `prompts[i] + completions[i]`; None for a sequence over `max_length` tokens."""
        if len(prompts) != len(completions):
            raise ValueError(f"RewardModel: got {len(prompts)} prompts for {len(completions)} completions")
        sequences = [
            render_for_reward(self.tokenizer, p, c) for p, c in zip(prompts, completions, strict=True)
        ]
        return self.score_ids(sequences)

    @torch.no_grad()
    def score_ids(self, sequences: list[list[int]]) -> list[float | None]:
        """Rewards of token-id sequences, in batches of similar length; None for over-long or empty ones."""
        rewards: list[float | None] = [None] * len(sequences)
        scorable = [
            i
            for i, ids in enumerate(sequences)
            if ids and (self.max_length is None or len(ids) <= self.max_length)
        ]
        order = sorted(scorable, key=lambda i: -len(sequences[i]))
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, attention_mask = pad_right([sequences[i] for i in rows], self.pad_id)
                values = sequence_rewards(self.model, input_ids.to(device), attention_mask.to(device))
                for i, value in zip(rows, values.tolist(), strict=True):
                    rewards[i] = value
        finally:
            self.model.train(was_training)
        return rewards
