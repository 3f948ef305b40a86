import random

import pytest
import torch

from selftaught.train.batching import collate, token_budget_batches

EXAMPLES = [
    ([1, 2, 3], [False, True, True]),
    ([4, 5, 6, 7, 8], [False, False, True, False, True]),
    ([9], [False]),
]


def test_collate_right_padding():
    batch = collate(EXAMPLES, pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert batch.loss_mask.dtype == torch.bool
    assert batch.loss_mask.tolist() == [
        [False, True, True, False, False],
        [False, False, True, False, True],
        [False] * 5,
    ]
    assert batch.position_ids[:, :3].tolist() == [[0, 1, 2], [0, 1, 2], [0, 0, 0]]
    assert batch.num_tokens == 4


def test_collate_left_padding_matches_right_on_real_tokens():
    left, right = collate(EXAMPLES, pad_id=-1, side="left"), collate(EXAMPLES, pad_id=-1)
    assert left.input_ids[2].tolist() == [-1, -1, -1, -1, 9]
    assert left.position_ids[0].tolist() == [0, 0, 0, 1, 2]
    for i, (ids, _) in enumerate(EXAMPLES):
        n = len(ids)
        for name in ("input_ids", "loss_mask", "position_ids"):
            assert getattr(left, name)[i, -n:].tolist() == getattr(right, name)[i, :n].tolist()
    assert not left.loss_mask[left.attention_mask == 0].any()


def test_collate_errors():
    with pytest.raises(ValueError, match=r"examples\[1\]"):
        collate([([1], [True]), ([1, 2], [True])], pad_id=0)
    with pytest.raises(ValueError, match=r"examples\[0\]"):
        collate([([], [])], pad_id=0)
    with pytest.raises(ValueError, match="no examples"):
        collate([], pad_id=0)
    with pytest.raises(ValueError, match="side"):
        collate(EXAMPLES, pad_id=0, side="middle")  # type: ignore[arg-type]


def test_batch_to_keeps_values():
    batch = collate(EXAMPLES, pad_id=0)
    moved = batch.to("cpu")
    assert batch.loss_weights is None and moved.loss_weights is None
    assert all(torch.equal(getattr(moved, k), getattr(batch, k)) for k in vars(batch) if k != "loss_weights")


def test_token_budget_small_case():
    # sorted longest first: 1 (8), 3 (8), 2 (5), 0 (3), 4 (2); [1, 3] pads to 2 * 8 = 16, [2, 0, 4] to 3 * 5 = 15
    assert token_budget_batches([3, 8, 5, 8, 2], max_tokens=16) == [[1, 3], [2, 0, 4]]


def padded_size(batch: list[int], lengths: list[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


def test_token_budget_invariants_and_less_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 60) for _ in range(200)]
    batches = token_budget_batches(lengths, max_tokens=256)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(padded_size(b, lengths) <= 256 for b in batches)
    assert batches == token_budget_batches(lengths, max_tokens=256)
    # the same greedy cut without sorting pads much more
    unsorted: list[list[int]] = [[]]
    for i in range(200):
        if padded_size(unsorted[-1] + [i], lengths) > 256:
            unsorted.append([])
        unsorted[-1].append(i)
    padding = sum(padded_size(b, lengths) for b in batches) - sum(lengths)
    padding_unsorted = sum(padded_size(b, lengths) for b in unsorted) - sum(lengths)
    assert padding < padding_unsorted / 3


def test_token_budget_window_keeps_order_local():
    lengths = [1, 9, 2, 8, 3, 7]
    batches = token_budget_batches(lengths, max_tokens=100, sort_window=2)
    assert batches == [[1, 0], [3, 2], [5, 4]]
    assert token_budget_batches(lengths, max_tokens=100) == [[1, 3, 5, 4, 2, 0]]


def test_token_budget_errors():
    with pytest.raises(ValueError, match="sequence 1 has 9 tokens > max_tokens=8"):
        token_budget_batches([3, 9], max_tokens=8)
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches([3], max_tokens=0)
    with pytest.raises(ValueError, match="sort_window"):
        token_budget_batches([3], max_tokens=8, sort_window=0)
    assert token_budget_batches([], max_tokens=8) == []


def test_collate_pads_loss_weights_and_gives_unweighted_examples_their_mask():
    weighted = ([5, 6, 7], [False, True, True], [0.0, 1.0, 5.0])
    plain = ([5, 6], [False, True])
    batch = collate([weighted, plain], pad_id=0)
    assert batch.loss_weights is not None
    assert batch.loss_weights.tolist() == [[0.0, 1.0, 5.0], [0.0, 1.0, 0.0]]
    assert collate([plain], pad_id=0).loss_weights is None
    assert batch.to("cpu").loss_weights is not None
    with pytest.raises(ValueError, match="loss weights"):
        collate([([1, 2], [True, True], [1.0])], pad_id=0)
