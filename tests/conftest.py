"""Shared fixtures: a random-init tiny-world model directory (no training, no cache needed)."""

from pathlib import Path

import pytest

from selftaught.models.io import save_model
from selftaught.models.tiny import build_tiny_llama
from selftaught.world.tokenizer import build_tokenizer


def write_tiny_model(out_dir: Path, size: str = "xs", seed: int = 0) -> str:
    tokenizer = build_tokenizer()
    model = build_tiny_llama(
        size,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=seed,
    )
    return str(save_model(model, tokenizer, out_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A saved random-init xs Llama with the world tokenizer."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(autouse=True)
def _torch_threads(request):
    """One torch thread for the fast tests: tiny models gain nothing from two, and on a shared
    machine two OpenMP threads per process can be tens of times slower. Slow tests keep two."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2 if request.node.get_closest_marker("slow") else 1)
    yield
    torch.set_num_threads(previous)
