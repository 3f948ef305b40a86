"""Real text as token blocks (CoCoMix on Gemma): BOS-led blocks, the held-out tail, seeded batches."""

import json

import numpy as np
import pytest

from selftaught.data.text_blocks import load_text_blocks, read_texts
from selftaught.world.concepts import build_concept_tokenizer


def test_jsonl_records_become_bos_led_blocks_with_a_held_out_tail(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"question": " ".join(f"t{i}" for i in range(1, 9)), "answer": "t9 t10", "id": 3}] * 6
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert read_texts(path)[0] == "t1 t2 t3 t4 t5 t6 t7 t8\nt9 t10"
    tokenizer = build_concept_tokenizer(16)
    blocks = load_text_blocks(path, tokenizer, length=5, num_held_out=2, max_tokens=1000)
    assert blocks.train.shape[1] == blocks.held_out.shape[1] == 5
    assert (blocks.train[:, 0] == tokenizer.bos_token_id).all()
    assert blocks.train[0, 1:].tolist() == [1, 2, 3, 4] and len(blocks.held_out) == 2
    a, b = blocks.batch(0, 3, 4), blocks.batch(0, 3, 4)
    assert np.array_equal(a, b) and a.shape == (4, 5)


def test_too_little_text_is_an_error(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("t1 t2 t3")
    with pytest.raises(ValueError, match="raise corpus.text_tokens"):
        load_text_blocks(path, build_concept_tokenizer(8), length=4, num_held_out=2, max_tokens=100)
    with pytest.raises(ValueError, match="does not exist"):
        read_texts(tmp_path / "missing.jsonl")
