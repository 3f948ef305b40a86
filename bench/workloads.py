"""Models and data of the benchmarks: the initial weights every contender loads, the tiny-world
records both sides read, and the order in which our recipes visit them.

Every run of every contender loads the same initial weights from one model directory: ours names
it as the recipe's `model`, TRL gets the loaded model (TRL's `GRPOTrainer` also builds its
reference from the directory). Records are written to a JSONL file that our recipe reads as its
data source; TRL gets the same records in the order our recipe trains on them.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from selftaught.data.catalog import load_records
from selftaught.data.chat import chat_template
from selftaught.data.order import batch_indices
from selftaught.data.sources import write_jsonl
from selftaught.models.io import load_model, resolve_model_source, save_model
from selftaught.models.tiny import TINY_SIZES, TinySize, build_tiny_llama
from selftaught.world.tokenizer import build_tokenizer

LEVELS = (1, 2, 3)
MAX_LENGTH = 128
"""Longest sequence either side keeps; L1-L3 world sequences have 15-50 tokens, so nothing is cut."""
LARGE_SHAPES = {"20m": TinySize(hidden_size=512, num_layers=6, num_heads=8, num_kv_heads=4, ffn_size=1536)}
"""Beyond the tiny presets: a 19M-parameter Llama with the 320-token world vocabulary."""
SHAPES = (*TINY_SIZES, *LARGE_SHAPES)
GSM8K_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
"""The data of the real-model benchmarks (`--model`)."""


def build_model(shape: str, tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A randomly initialised fp32 Llama of `shape` (`SHAPES`), tied embeddings; weights depend on `seed` only."""
    token_ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if shape in TINY_SIZES:
        return build_tiny_llama(shape, len(tokenizer), seed=seed, **token_ids)
    if shape not in LARGE_SHAPES:
        raise ValueError(f"--shape must be one of {list(SHAPES)}, got {shape!r}")
    size = LARGE_SHAPES[shape]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.ffn_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads,
        num_key_value_heads=size.num_kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        **token_ids,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).float()


def num_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


class InitialWeights:
    """The initial weights in a temporary model directory (`path`, the recipes' `model`), with the
    tokenizer as it loads back from there (left padding, as every recipe gets it)."""

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
        self.name = name
        self.num_params = num_params(model)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-weights-")
        save_model(model, tokenizer, self._dir.name)
        self.path = self._dir.name
        _, self.tokenizer = load_model(self.path)

    @classmethod
    def random(cls, shape: str, seed: int) -> InitialWeights:
        """A random model of `shape` with the world tokenizer."""
        tokenizer = build_tokenizer()
        return cls(build_model(shape, tokenizer, seed), tokenizer, f"random {shape}")

    @classmethod
    def named(cls, spec: str) -> InitialWeights:
        """A real model (`gemma-3-270m`) from its own directory, not copied; the tokenizer renders
        conversations with the template our recipes use (`data.chat.chat_template`: a base model's
        own, or ours when it has none), so that TRL tokenises them as ours does."""
        weights = cls.__new__(cls)
        weights.name, weights.path = spec, str(resolve_model_source(spec))
        with torch.device("meta"):  # the parameter count without loading the weights
            weights.num_params = num_params(
                AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(weights.path))
            )
        weights.tokenizer = AutoTokenizer.from_pretrained(weights.path)
        weights.tokenizer.padding_side = "left"  # as `load_model` gives it to the recipes
        if weights.tokenizer.pad_token is None:
            raise ValueError(f"--model {spec}: the tokenizer has no pad token")
        weights.tokenizer.chat_template = chat_template(weights.tokenizer)
        return weights

    @classmethod
    def student(cls) -> InitialWeights:
        """The cached tiny-world student (xs; trained on first use)."""
        from selftaught.recipes.world_pretrain import pretrained_student

        model, tokenizer = load_model(str(pretrained_student()))
        return cls(model, tokenizer, "tiny-world student (xs)")

    def load(self) -> PreTrainedModel:
        """A fresh copy of the initial weights, in train mode."""
        return load_model(self.path)[0].train()


def release_tokenizer(bench: Any) -> None:
    """In ours' own process (`--model`, `--child`), drop the bench's tokenizer before the recipe
    runs: the recipe loads its own, as `selftaught <recipe>` does, while TRL trains with the bench's,
    so each side's peak RSS then counts one (Gemma 3's 262k-token tokenizer is ~0.3 GiB of RSS)."""
    if getattr(bench.args, "child", None):
        bench.tokenizer = bench.weights.tokenizer = None
        gc.collect()


def world_records(source: str, num: int, seed: int) -> list[dict[str, Any]]:
    """`num` records of a tiny-world source (`world:sft`, `world:pairs`, `world:prompts`), levels 1-3."""
    return load_records(source, num=num, levels=list(LEVELS), seed=seed)


def gsm8k_records(num: int) -> list[dict[str, Any]]:
    """The first `num` GSM8K train records (`question`, `answer`)."""
    records = load_records(str(GSM8K_TRAIN), limit=num)
    if len(records) < num:
        raise ValueError(f"{GSM8K_TRAIN} holds {len(records)} records, fewer than the {num} asked for")
    return records


def write_records(records: list[dict[str, Any]], path: Path) -> str:
    """`records` as a JSONL file at `path` (a recipe's data source); returns the path."""
    write_jsonl(path, records)
    return str(path)


def step_order(num_steps: int, batch_size: int, num_examples: int, seed: int) -> list[int]:
    """The example indices our SFT and DPO recipes train on in steps 1..`num_steps`, in order: the
    recipes' own seeded stream (`selftaught.data.order.batch_indices`, one process)."""
    return [
        i
        for step in range(num_steps)
        for i in batch_indices(step * batch_size, batch_size, num_examples, seed)
    ]
