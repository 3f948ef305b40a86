"""Tiny Llama-architecture models for the tiny world, built from a config with random weights.

The four sizes are the ones measured in TINYWORLD.md section 1 (parameter counts with a vocabulary
of 320): xs 143,680, s 1,025,152, m 3,307,968, l 7,950,592. Embeddings are tied, so the output
layer adds no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class TinySize:
    """The shape of one tiny model."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    """Key/value heads (grouped-query attention when fewer than `num_heads`)."""
    ffn_size: int
    """Inner width of the SwiGLU MLP (`intermediate_size`)."""


TINY_SIZES: dict[str, TinySize] = {
    "xs": TinySize(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, ffn_size=256),
    "s": TinySize(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, ffn_size=512),
    "m": TinySize(hidden_size=192, num_layers=6, num_heads=6, num_kv_heads=2, ffn_size=768),
    "l": TinySize(hidden_size=256, num_layers=8, num_heads=8, num_kv_heads=4, ffn_size=1024),
}


def build_tiny_llama(
    size: str,
    vocab_size: int,
    *,
    bos_token_id: int,
    eos_token_id: int,
    pad_token_id: int,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised fp32 `LlamaForCausalLM` of the named size, with tied embeddings.

    The weights depend only on `seed` (and the arguments): initialisation runs under a forked torch
    RNG, so building a model neither reads nor advances the caller's random state.
    """
    if size not in TINY_SIZES:
        raise ValueError(f"size must be one of {sorted(TINY_SIZES)}, got {size!r}")
    shape = TINY_SIZES[size]
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.ffn_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(torch.float32)
