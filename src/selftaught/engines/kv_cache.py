"""A KV cache written in place, for `HFEngine`'s decode loop.

transformers' `DynamicCache` appends each step's keys and values with `torch.cat`, so every decode
step copies the whole cache into fresh tensors (on a CPU, fresh memory is paid again in page faults).
`BufferedCache` allocates each layer's [B, kv_heads, prompt width + `CACHE_GROWTH`, head_dim] once
(growing by `CACHE_GROWTH` positions when full) and writes each step's entries in place; attention
reads a view of the filled part (the values are `DynamicCache`'s, only where they live differs).

`assemble_cache` also joins the prefills of several groups of prompts (`prefill_groups`), each
padded only to its own longest prompt, into one left-padded batch: 32 GSM8K questions (32-117
tokens) fill 3,744 positions padded to the longest, for 2,063 real tokens.

Only plain attention layers (`DynamicLayer`, and `DynamicSlidingWindowLayer` while the whole
sequence fits its window) are handled; for anything else `assemble_cache` returns None and the
engine keeps transformers' own cache.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer, DynamicSlidingWindowLayer

PREFILL_PAD_SLACK = 1.25
"""A prefill group of prompts grows while its padded positions stay within this factor of its real tokens."""


def prefill_groups(lengths: list[int]) -> list[list[int]]:
    """Indices of prompts of `lengths` in groups prefilled together, longest first: a group takes the
    next longest prompt while, padded to its longest, it stays within `PREFILL_PAD_SLACK` x its
    real tokens. Each group costs a forward of its own, so prompts of equal length stay together."""
    groups: list[list[int]] = []
    real = 0  # tokens of the last group
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= PREFILL_PAD_SLACK * (
            real + lengths[index]
        ):
            groups[-1].append(index)
            real += lengths[index]
        else:
            groups.append([index])
            real = lengths[index]
    return groups


CACHE_GROWTH = 128
"""Positions a `BufferedCache` allocates past the prompts, and adds each time it is full: memory
follows the longest sample, as transformers' cache does, at one copy per `CACHE_GROWTH` steps."""


class _InPlace:
    """Keys and values as views of the filled part of preallocated [B, H, capacity, D] buffers."""

    key_buffer: torch.Tensor
    value_buffer: torch.Tensor
    keys: Any  # torch.Tensor once `_set`; typed as the transformers layer it is mixed into types it
    values: Any

    def _set(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        self.device = key_buffer.device
        self.is_initialized = True
        self.key_buffer, self.value_buffer = key_buffer, value_buffer
        self.keys = key_buffer[:, :, :length]
        self.values = value_buffer[:, :, :length]

    def _write(
        self, key_states: torch.Tensor, value_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.keys.shape[-2], self.keys.shape[-2] + key_states.shape[-2]
        if end > self.key_buffer.shape[-2]:  # full: move to buffers `CACHE_GROWTH` positions longer
            room = max(end, self.key_buffer.shape[-2] + CACHE_GROWTH)
            self._set(_longer(self.key_buffer, room), _longer(self.value_buffer, room), start)
        self.key_buffer[:, :, start:end] = key_states
        self.value_buffer[:, :, start:end] = value_states
        self._set(self.key_buffer, self.value_buffer, end)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._set(self.key_buffer[indices], self.value_buffer[indices], self.keys.shape[-2])


class _BufferedLayer(_InPlace, DynamicLayer):
    """A full-attention layer written in place."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        DynamicLayer.__init__(self)
        self._set(key_buffer, value_buffer, length)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._write(key_states, value_states)


class _BufferedSlidingLayer(_InPlace, DynamicSlidingWindowLayer):
    """A sliding-window layer written in place that never reaches its window (`assemble_cache`
    checks): like `DynamicSlidingWindowLayer` below its window, it attends to every cached position."""

    def __init__(
        self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int, sliding_window: int
    ) -> None:
        DynamicSlidingWindowLayer.__init__(self, sliding_window=sliding_window)
        self._set(key_buffer, value_buffer, length)
        self._sliding_window_tensor = self._sliding_window_tensor.to(self.device)
        self.cumulative_length = length

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.cumulative_length += key_states.shape[-2]
        if self.cumulative_length >= self.sliding_window:
            raise RuntimeError(
                f"a BufferedCache layer reached its sliding window ({self.sliding_window}); "
                "assemble_cache should have refused this sequence length"
            )
        return self._write(key_states, value_states)


class BufferedCache(DynamicCache):
    """A `DynamicCache` whose layers write in place into preallocated buffers (grown when full)."""

    def __init__(self, layers: list[Any]) -> None:  # `_BufferedLayer`s and `_BufferedSlidingLayer`s
        Cache.__init__(self, layers=layers)


def supports_buffered_cache(config: Any) -> tuple[bool, float]:
    """Whether a model of `config` can decode on a `BufferedCache` (plain attention layers), and the
    smallest sliding window of its layers (inf without one): the cache must stay below it."""
    layers = DynamicCache(config=config).layers
    if any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
        return False, math.inf
    windows = [layer.sliding_window for layer in layers if isinstance(layer, DynamicSlidingWindowLayer)]
    return True, min(windows, default=math.inf)


def assemble_cache(
    prefills: list[DynamicCache],
    groups: list[list[int]],
    row_to_unique: list[int],
    width: int,
    max_length: int,
) -> BufferedCache | None:
    """One cache for the batch's rows from the prefills of groups of distinct prompts, or None.

    `prefills[g]` holds group g's prompts (`groups[g]`, distinct-prompt indices) left-padded to its
    own longest; row r of the batch continues distinct prompt `row_to_unique[r]`. Each row is
    left-padded with zeros (masked) to `width` positions; sequences grow to at most `max_length`.
    None when a layer is not a plain attention layer or `max_length` would reach a sliding window.
    """
    capacity = min(max_length, width + CACHE_GROWTH)
    where = {u: (g, i) for g, group in enumerate(groups) for i, u in enumerate(group)}
    row_group = torch.tensor([where[u][0] for u in row_to_unique])
    row_index = torch.tensor([where[u][1] for u in row_to_unique])
    layers: list[Any] = []
    for index, template in enumerate(prefills[0].layers):
        kind = type(template)
        if kind not in (DynamicLayer, DynamicSlidingWindowLayer) or not getattr(
            template, "is_initialized", False
        ):
            return None
        sliding_window: int = getattr(template, "sliding_window", 0)
        if kind is DynamicSlidingWindowLayer and max_length >= sliding_window:
            return None
        keys, values = (
            _left_padded(
                [getattr(p.layers[index], name) for p in prefills], row_group, row_index, width, capacity
            )
            for name in ("keys", "values")
        )
        if kind is DynamicSlidingWindowLayer:
            layers.append(_BufferedSlidingLayer(keys, values, width, sliding_window))
        else:
            layers.append(_BufferedLayer(keys, values, width))
    return BufferedCache(layers)


def _longer(buffer: torch.Tensor, positions: int) -> torch.Tensor:
    """`buffer` [B, H, T, D] copied into the start of a new [B, H, positions, D] one."""
    longer = buffer.new_empty(buffer.shape[0], buffer.shape[1], positions, buffer.shape[3])
    longer[:, :, : buffer.shape[2]] = buffer
    return longer


def _left_padded(
    tensors: list[torch.Tensor], row_group: torch.Tensor, row_index: torch.Tensor, width: int, capacity: int
) -> torch.Tensor:
    """[B, H, capacity, D]: row r holds `tensors[row_group[r]][row_index[r]]` ending at position `width`."""
    first = tensors[0]
    out = first.new_zeros(len(row_group), first.shape[1], capacity, first.shape[3])
    for group, tensor in enumerate(tensors):
        rows = (row_group == group).nonzero().squeeze(-1)
        out[rows, :, width - tensor.shape[2] : width] = tensor[row_index[rows].to(tensor.device)]
    return out
