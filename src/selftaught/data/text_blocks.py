"""Real text as fixed-length token blocks for pretraining-style recipes (CoCoMix on Gemma 3).

A JSONL file (each record's string fields joined: GSM8K's `question` and `answer`) or a plain text
file is tokenized with the model's tokenizer, records joined by EOS, and cut into blocks of `length`
tokens, each starting with BOS. The last `num_held_out` blocks are the validation set; a training
batch is a pure function of (seed, step), drawn with replacement from the other blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class TextBlocks:
    train: np.ndarray
    """[N, length] int64 token ids."""
    held_out: np.ndarray
    """[M, length] int64: the last M blocks of the file."""

    def batch(self, seed: int, step: int, num_sequences: int) -> np.ndarray:
        """`[num_sequences, length]`: step `step`'s blocks of the stream `seed`."""
        rng = np.random.default_rng([seed, step])
        return self.train[rng.integers(len(self.train), size=num_sequences)]


def read_texts(path: str | Path) -> list[str]:
    """One text per JSONL record (its string values joined by a newline), or the whole of a text file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"corpus.text_file {str(path)!r} does not exist; name a .jsonl or text file")
    if path.suffix != ".jsonl":
        return [path.read_text()]
    texts = []
    for line in path.read_text().splitlines():
        if line.strip():
            record: dict[str, Any] = json.loads(line)
            texts.append("\n".join(v for v in record.values() if isinstance(v, str)))
    return texts


def load_text_blocks(
    path: str | Path, tokenizer: Any, length: int, num_held_out: int, max_tokens: int
) -> TextBlocks:
    """Blocks of `length` tokens from the first `max_tokens` tokens of `path` (module doc)."""
    ids: list[int] = []
    for text in read_texts(path):
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) >= max_tokens:
            break
    body = length - 1
    count = min(len(ids), max_tokens) // body
    if count <= num_held_out:
        raise ValueError(
            f"corpus.text_file gives {count} blocks of {length} tokens, not more than the {num_held_out} "
            "held out; raise corpus.text_tokens or lower corpus.val_sequences / corpus.seq_len"
        )
    blocks = np.asarray(ids[: count * body], dtype=np.int64).reshape(count, body)
    bos = np.full((count, 1), tokenizer.bos_token_id, dtype=np.int64)
    blocks = np.concatenate([bos, blocks], axis=1)
    return TextBlocks(train=blocks[:-num_held_out], held_out=blocks[-num_held_out:])
