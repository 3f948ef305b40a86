"""Token-id rows of different lengths -> rectangular tensors: the one padder of the package.

Training batches (`train.batching.collate`), generation prompts (`engines.hf`, left-padded) and
reward-model scoring (`rewards.reward_model`, right-padded) all pad here, so pads are placed, masked
and positioned the same way everywhere. Rows are filled on the CPU and moved once, which costs one
host-to-device copy per tensor instead of one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

Side = Literal["right", "left"]
"""Where the pads go: after the tokens (training, scoring) or before them (generation prompts)."""


def pad_sequences(
    rows: Sequence[Sequence[int]],
    pad_id: int,
    *,
    side: Side = "right",
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, attention_mask)`, both [B, T] long with T the longest row, pads on `side`.

    `attention_mask` is 1 on real tokens and 0 on pads (the HF convention). `device` None keeps
    the tensors on the CPU. Raises a ValueError when `rows` is empty or `side` is unknown.
    """
    input_ids = pad_rows(rows, pad_id, side=side, dtype=torch.long)  # [B, T]
    lengths = torch.tensor([len(row) for row in rows])  # [B]
    columns = torch.arange(input_ids.shape[1])  # [T]
    if side == "right":
        attention_mask = columns < lengths[:, None]
    else:
        attention_mask = columns >= input_ids.shape[1] - lengths[:, None]
    return _to(input_ids, device), _to(attention_mask.long(), device)


def pad_rows(
    rows: Sequence[Sequence[Any]], pad_value: Any, *, side: Side = "right", dtype: torch.dtype
) -> torch.Tensor:
    """[B, T] tensor of `dtype` holding each row on `side` and `pad_value` elsewhere (T: longest row).

    For any per-token field that must be padded like the ids (a loss mask: `pad_value=False`).
    """
    if side not in ("right", "left"):
        raise ValueError(f"padding side must be 'right' or 'left', got {side!r}")
    if not rows:
        raise ValueError("got no rows to pad; pass at least one sequence")
    width = max(len(row) for row in rows)
    padded = torch.full((len(rows), width), pad_value, dtype=dtype)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        padded[i, span] = torch.tensor(row, dtype=dtype)
    return padded


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] long positions that count real tokens only: 0 at each row's first real token, whichever
    side the pads are on, so a sequence gets the same positions however it is padded or batched.
    A pad gets the position of its nearest real token (0 before the first one); it is masked, so
    any valid position does."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def _to(tensor: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    return tensor if device is None else tensor.to(device)
