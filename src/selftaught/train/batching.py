"""Examples -> padded tensor batches, and grouping examples into micro-batches under a token budget.

An example is `(input_ids, loss_mask)` as `selftaught.data.chat.render_conversation` returns it:
`loss_mask[t]` is True when token `t` is trained (its log-probability given tokens `< t` enters the
loss). Padding never changes the result: pads get `attention_mask = 0` and `loss_mask = False`, and
`position_ids` count real tokens only, so a left-padded, right-padded or unpadded sequence gives the
same logits for its real tokens (tests/train/test_step.py checks loss and gradients).

There is no packed (padding-free) collate. HF Llama does treat `position_ids` that restart at 0 as
separate sequences, exactly, but only when the forward gets `attention_mask=None` *and*
`use_cache=False`; with the default `use_cache=True` it silently attends across sequences. On CPU it
is also slower than sorted padded micro-batches (no varlen kernel: the block mask is materialised,
so attention cost grows with the packed row length squared). Measured forward + backward of 64
sequences of 15-45 tokens on the xs model, 2 threads: 35 ms as two sorted padded micro-batches,
41 ms as one unsorted padded batch, 63 ms packed into 4 rows, 133 ms packed into 1 row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from selftaught.data.padding import pad_rows, pad_sequences, position_ids

Example = tuple[list[int], list[bool]]
"""`(input_ids, loss_mask)` of one sequence; the two lists have the same length."""
WeightedExample = tuple[list[int], list[bool], list[float]]
"""`(input_ids, loss_mask, loss_weights)`: a weight per token (`data.chat.emphasis_weights`: 1 on plain
trained tokens, 0 off the mask); the three lists have the same length."""


@dataclass
class Batch:
    """Padded tensors for one micro-batch of B sequences of padded length T."""

    input_ids: torch.Tensor
    """[B, T] long; pads hold `pad_id`."""
    attention_mask: torch.Tensor
    """[B, T] long; 1 on real tokens, 0 on pads (the HF convention)."""
    loss_mask: torch.Tensor
    """[B, T] bool; True on trained tokens, always False on pads."""
    position_ids: torch.Tensor
    """[B, T] long; 0 at each sequence's first real token, whichever side the padding is on."""
    loss_weights: torch.Tensor | None = None
    """[B, T] float, each trained token's weight in the loss (0 on pads and untrained tokens), or None:
    every trained token weighs 1. The loss is still divided by the trained-token count."""

    unit: ClassVar[str] = "tokens"
    """What `train_step` counts in a `Batch` (`train.step.MicroBatch`): trained tokens."""

    @property
    def num_tokens(self) -> int:
        """Trained tokens in this micro-batch (`loss_mask.sum()`)."""
        return int(self.loss_mask.sum())

    @property
    def num_units(self) -> int:
        """The units `train_step` normalises the loss by: the trained tokens (`num_tokens`)."""
        return self.num_tokens

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on `device`."""
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.loss_mask.to(device),
            self.position_ids.to(device),
            None if self.loss_weights is None else self.loss_weights.to(device),
        )


def collate(
    examples: Sequence[Example | WeightedExample], pad_id: int, *, side: Literal["right", "left"] = "right"
) -> Batch:
    """Pad `examples` to their longest length into one `Batch`.

    `pad_id` must be a valid token id (the model embeds pads, then masks them); its value does not
    change the result. `side="left"` puts the pads before the tokens (generation-style prompts); for
    training both sides give the same loss. Raises a ValueError naming the example when `input_ids` and `loss_mask` differ
    in length or a sequence is empty.
    """
    if side not in ("right", "left"):
        raise ValueError(f"collate: side must be 'right' or 'left', got {side!r}")
    if not examples:
        raise ValueError("collate: got no examples; pass at least one (input_ids, loss_mask) pair")
    for i, (ids, mask, *weights) in enumerate(examples):
        if not ids or len(ids) != len(mask) or any(len(w) != len(ids) for w in weights):
            raise ValueError(
                f"collate: examples[{i}] has {len(ids)} input_ids, {len(mask)} loss_mask entries and "
                f"{[len(w) for w in weights]} loss weights; they must be equal and non-zero (render with "
                "selftaught.data.chat.render_conversation)"
            )
    input_ids, attention_mask = pad_sequences([e[0] for e in examples], pad_id, side=side)  # [B, T]
    loss_mask = pad_rows([e[1] for e in examples], False, side=side, dtype=torch.bool)  # [B, T]
    loss_weights = None
    if any(len(e) == 3 for e in examples):
        rows = [e[2] if len(e) == 3 else [float(m) for m in e[1]] for e in examples]  # type: ignore[misc]
        loss_weights = pad_rows(rows, 0.0, side=side, dtype=torch.float32)  # [B, T]
    return Batch(input_ids, attention_mask, loss_mask, position_ids(attention_mask), loss_weights)


def token_budget_batches(
    lengths: Sequence[int], max_tokens: int, *, sort_window: int | None = None
) -> list[list[int]]:
    """Group sequences into micro-batches of at most `max_tokens` padded tokens; returns index lists.

    Within each window of `sort_window` consecutive sequences (`None`: all of them), indices are sorted
    by length, longest first (ties by index, so the result is deterministic), and cut greedily: a
    micro-batch takes sequences while `count * longest_length <= max_tokens`. Sorting puts similar
    lengths together, which cuts padding: pads cost as much compute as tokens.

    Pass the examples of one optimizer step with the default window: the step's gradient is the sum
    over its micro-batches (`train_step`), so their grouping does not change it. Pass a window only
    when grouping a long stream, to keep its order local. Indices (not examples) are returned so that
    per-sequence side data (advantages, pair ids) can follow the same grouping.

    Raises a ValueError naming the sequence when one alone exceeds `max_tokens`.
    """
    if max_tokens < 1:
        raise ValueError(f"token_budget_batches: max_tokens must be >= 1, got {max_tokens}")
    if sort_window is not None and sort_window < 1:
        raise ValueError(
            f"token_budget_batches: sort_window must be >= 1 or None (sort all), got {sort_window}"
        )
    too_long = [i for i, n in enumerate(lengths) if n > max_tokens]
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"sequence {i} has {lengths[i]} tokens > max_tokens={max_tokens} ({len(too_long)} such): it "
            "does not fit one micro-batch; raise the recipe's `micro_batch_tokens` (0: one micro-batch) "
            "or lower `data.max_length`"
        )
    window = sort_window or max(len(lengths), 1)
    batches: list[list[int]] = []
    for start in range(0, len(lengths), window):
        order = sorted(range(start, min(start + window, len(lengths))), key=lambda i: (-lengths[i], i))
        batches.extend(_cut_sorted(order, lengths, max_tokens))
    return batches


def _cut_sorted(order: list[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Greedy cut of indices sorted longest first: the first index of a batch sets its padded length."""
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
