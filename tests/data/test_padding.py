"""The one padder: pads on either side, masks that mark real tokens, positions that ignore pads."""

import pytest
import torch

from selftaught.data.padding import pad_rows, pad_sequences, position_ids

ROWS = [[5, 6, 7], [8], [9, 10]]


def test_right_padding_puts_pads_after_the_tokens():
    input_ids, attention_mask = pad_sequences(ROWS, pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert attention_mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert input_ids.dtype == attention_mask.dtype == torch.long


def test_left_padding_puts_pads_before_the_tokens():
    input_ids, attention_mask = pad_sequences(ROWS, pad_id=-1, side="left")
    assert input_ids.tolist() == [[5, 6, 7], [-1, -1, 8], [-1, 9, 10]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]


def test_tuples_and_a_device_are_accepted():
    input_ids, attention_mask = pad_sequences([(1, 2), (3,)], pad_id=0, device="cpu")
    assert input_ids.tolist() == [[1, 2], [3, 0]] and attention_mask.device.type == "cpu"


def test_positions_count_real_tokens_on_either_side():
    _, right = pad_sequences(ROWS, pad_id=0)
    _, left = pad_sequences(ROWS, pad_id=0, side="left")
    assert position_ids(right).tolist() == [[0, 1, 2], [0, 0, 0], [0, 1, 1]]
    assert position_ids(left).tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 1]]


def test_pad_rows_pads_any_field_like_the_ids():
    loss_mask = pad_rows([[True, False], [True]], False, side="left", dtype=torch.bool)
    assert loss_mask.tolist() == [[True, False], [False, True]]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no rows"):
        pad_sequences([], pad_id=0)
    with pytest.raises(ValueError, match="side must be 'right' or 'left'"):
        pad_sequences(ROWS, pad_id=0, side="middle")  # type: ignore[arg-type]
