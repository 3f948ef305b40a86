"""The order in which a run visits its data: a pure function of the position, so resuming needs no RNG state."""

from __future__ import annotations

import random


def batch_indices(position: int, batch_size: int, num_examples: int, seed: int) -> list[int]:
    """Example indices `position .. position + batch_size` of an endless stream of shuffled epochs.

    Epoch e is `range(num_examples)` shuffled by `Random(seed * 1_000_003 + e)`; a batch may span two
    epochs. A pure function of its arguments: resuming only needs `position`.
    """
    indices: list[int] = []
    while len(indices) < batch_size:
        epoch, offset = divmod(position + len(indices), num_examples)
        order = list(range(num_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        indices.extend(order[offset : offset + batch_size - len(indices)])
    return indices
