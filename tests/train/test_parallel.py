from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.tensor import DTensor
from transformers import LlamaConfig, LlamaForCausalLM

from selftaught import dist
from selftaught.runlog import RunLog, read_metrics
from selftaught.train.batching import Batch, Example, collate
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import (
    ParallelConfig,
    decoder_layers,
    global_num_tokens,
    no_sync_context,
    unwrap,
    wrap_model,
)
from selftaught.train.step import train_step
from tests.distributed_utils import run_distributed

PAD_ID = 0
LENGTHS = [5, 11, 7, 3]
"""The global batch: rank r of 2 trains sequences 2r and 2r + 1, one micro-batch each."""
STRATEGIES = ("ddp", "fsdp2")
OPTIM = OptimConfig(lr=1e-3, eps=1e-4, weight_decay=0.1, max_grad_norm=1.0)
"""eps 1e-4 (the online-RL paper's value) keeps the first AdamW update, about lr * g / (|g| + eps), from
amplifying float noise in gradients near 0 (up to lr / eps times); the gradients are compared directly."""


def tied_llama(seed: int = 0) -> LlamaForCausalLM:
    """vocab 64, hidden 32, 2 layers, tied embeddings (as the tiny world's models), fp32, no dropout."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        use_cache=False,
    )
    return LlamaForCausalLM(config).float().train()


def make_examples(lengths: list[int], seed: int = 0) -> list[Example]:
    """Random token sequences; every token but the first (which nothing predicts) is trained."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(1, 64, (n,), generator=generator).tolist(), [False] + [True] * (n - 1))
        for n in lengths
    ]


def nll_loss(
    model: torch.nn.Module, batch: Batch, num_tokens: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed NLL of the trained tokens (token t predicted at t - 1) divided by the step's `num_tokens`."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
    ).logits  # [B, T, V]
    token_logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(
        -1, batch.input_ids[:, 1:, None]
    )  # [B, T-1, 1]
    loss = -torch.where(batch.loss_mask[:, 1:], token_logps.squeeze(-1), 0.0).sum() / num_tokens
    return loss, {}


def step_once(model: torch.nn.Module, micro_batches, **kwargs) -> dict[str, float]:
    optimizer = build_optimizer(model, OPTIM)
    scheduler = build_scheduler(optimizer, OPTIM, total_steps=10)
    return train_step(
        model, micro_batches, nll_loss, optimizer, scheduler, max_grad_norm=OPTIM.max_grad_norm, **kwargs
    )


def full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def params_and_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full (unsharded) copies of every parameter and its gradient; collective under FSDP2."""
    out = {}
    for name, param in unwrap(model).named_parameters():
        out[f"param/{name}"] = full(param.detach()).clone()
        out[f"grad/{name}"] = full(param.grad).clone()
    return out


def distributed_steps(out_dir: str) -> None:
    """DDP, then FSDP2 (one launch: starting processes is most of the time)."""
    for strategy in STRATEGIES:
        distributed_step(Path(out_dir) / strategy, strategy)


def distributed_step(out_dir: Path, strategy: str) -> None:
    """Each rank: its half of the global batch, one step; rank 0 logs; every rank dumps its weights."""
    rank = dist.rank()
    model = wrap_model(tied_llama(seed=rank), ParallelConfig(strategy))  # wrapping broadcasts rank 0's
    micro_batches = [collate([e], PAD_ID) for e in make_examples(LENGTHS)[2 * rank : 2 * rank + 2]]
    num_tokens = global_num_tokens(sum(mb.num_tokens for mb in micro_batches))
    metrics = step_once(model, micro_batches, num_units=num_tokens, no_sync=no_sync_context(model))
    global_loss = dist.all_reduce_sum(metrics["loss"]) / dist.world_size()
    with RunLog(out_dir / f"run-rank{rank}", enabled=dist.is_main(), quiet=True) as log:
        log.log(1, loss=global_loss, grad_norm=metrics["grad_norm"])
        log.info("one step")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(params_and_grads(model), out_dir / f"rank{rank}.safetensors")


def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """World size 2 (each rank half the batch, two micro-batches) == world size 1 (the whole batch at once),
    for DDP and FSDP2; ranks start from different weights, which wrapping replaces by rank 0's."""
    run_distributed(distributed_steps, str(tmp_path), world_size=2)
    model = tied_llama(seed=0)
    metrics = step_once(model, [collate(make_examples(LENGTHS), PAD_ID)])
    expected = params_and_grads(model)
    assert metrics["grad_norm"] > OPTIM.max_grad_norm  # clipping is part of what is compared
    for strategy, rank in ((s, r) for s in STRATEGIES for r in (0, 1)):
        got = load_file(tmp_path / strategy / f"rank{rank}.safetensors")
        assert got.keys() == expected.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(
                got[name], tensor, rtol=0, atol=1e-6, msg=f"{strategy} rank {rank} {name}"
            )
        [record] = read_metrics(tmp_path / strategy / "run-rank0")
        assert record["loss"] == pytest.approx(metrics["loss"], rel=1e-6), strategy
        assert record["grad_norm"] == pytest.approx(metrics["grad_norm"], rel=1e-5), strategy
        assert (tmp_path / strategy / "run-rank0" / "log.txt").read_text().endswith("one step\n")
        assert not (tmp_path / strategy / "run-rank1").exists(), f"{strategy}: rank 1 wrote a run directory"


def test_single_process_leaves_the_model_alone():
    model = tied_llama()
    for strategy in ("none", "ddp", "fsdp2"):
        assert wrap_model(model, ParallelConfig(strategy)) is model
    assert no_sync_context(model) is None
    assert unwrap(model) is model
    assert global_num_tokens(17) == 17.0


def test_decoder_layers_and_config_errors():
    model = tied_llama()
    assert decoder_layers(model) == list(model.model.layers)
    with pytest.raises(ValueError, match="use strategy='ddp'"):
        decoder_layers(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="parallel.strategy"):
        ParallelConfig("fsdp")  # type: ignore[arg-type]
