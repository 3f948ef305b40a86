from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selftaught.train.batching import Batch, Example, collate
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.step import train_step

PAD_ID = 0


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=PAD_ID,
        use_cache=False,
    )
    return LlamaForCausalLM(config).float().train()


def make_examples(lengths: list[int], seed: int = 0) -> list[Example]:
    """Random sequences; the first token is never trained (nothing predicts it), the rest mostly are."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for n in lengths:
        ids = torch.randint(1, 64, (n,), generator=generator).tolist()
        loss_mask = [False] + (torch.rand(n - 1, generator=generator) < 0.7).tolist()
        loss_mask[-1] = True
        examples.append((ids, loss_mask))
    return examples


def nll_loss(
    model: torch.nn.Module, batch: Batch, num_tokens: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed NLL of the trained tokens divided by the step's token count (token t is predicted at t - 1)."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
    ).logits  # [B, T, V]
    token_logps = (
        torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    )
    trained = batch.loss_mask[:, 1:]  # [B, T-1]
    nll_sum = -torch.where(trained, token_logps, 0.0).sum()
    return nll_sum / num_tokens, {"nll": float(nll_sum / trained.sum())}


def loss_and_grads(
    model: torch.nn.Module, batches: list[Batch], num_tokens: float
) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    total = 0.0
    for batch in batches:
        loss, _ = nll_loss(model, batch, num_tokens)
        loss.backward()
        total += loss.item()
    return total, [p.grad.clone() for p in model.parameters() if p.grad is not None]


def run_step(model, micro_batches, cfg: OptimConfig, loss_fn=nll_loss, **kwargs) -> dict[str, float]:
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=10)
    return train_step(
        model, micro_batches, loss_fn, optimizer, scheduler, max_grad_norm=cfg.max_grad_norm, **kwargs
    )


LENGTHS = [5, 11, 7, 3]


def test_accumulation_equals_bigger_batch():
    """Batch 4 x accumulation 1 == batch 1 x accumulation 4, over two AdamW steps with decay and clipping."""
    examples = make_examples(LENGTHS)
    big, small = tiny_llama(), tiny_llama()
    cfg = OptimConfig(lr=1e-3, weight_decay=0.1, max_grad_norm=1.0, eps=1e-6)
    big_opt, small_opt = build_optimizer(big, cfg), build_optimizer(small, cfg)
    big_sched, small_sched = build_scheduler(big_opt, cfg, 2), build_scheduler(small_opt, cfg, 2)
    for _ in range(2):
        big_metrics = train_step(
            big, [collate(examples, PAD_ID)], nll_loss, big_opt, big_sched, max_grad_norm=cfg.max_grad_norm
        )
        small_metrics = train_step(
            small,
            [collate([e], PAD_ID) for e in examples],
            nll_loss,
            small_opt,
            small_sched,
            max_grad_norm=cfg.max_grad_norm,
        )
        assert big_metrics["loss"] == pytest.approx(small_metrics["loss"], rel=1e-6)
        assert big_metrics["grad_norm"] == pytest.approx(small_metrics["grad_norm"], rel=1e-5)
        assert big_metrics["num_tokens"] == small_metrics["num_tokens"]
    for (name, p_big), p_small in zip(big.named_parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(p_big, p_small, rtol=0, atol=1e-6, msg=name)
    assert not torch.equal(big.model.embed_tokens.weight, tiny_llama().model.embed_tokens.weight)


def test_padded_batch_equals_unpadded_sequences():
    examples = make_examples(LENGTHS, seed=1)
    model = tiny_llama()
    num_tokens = collate(examples, PAD_ID).num_tokens
    padded_loss, padded_grads = loss_and_grads(model, [collate(examples, PAD_ID)], num_tokens)
    single_loss, single_grads = loss_and_grads(model, [collate([e], PAD_ID) for e in examples], num_tokens)
    assert padded_loss == pytest.approx(single_loss, rel=1e-6)
    for padded, single in zip(padded_grads, single_grads, strict=True):
        torch.testing.assert_close(padded, single, rtol=1e-5, atol=1e-7)


def test_right_and_left_padding_give_the_same_loss_and_grads():
    examples = make_examples(LENGTHS, seed=2)
    model = tiny_llama()
    right_loss, right_grads = loss_and_grads(model, [collate(examples, PAD_ID, side="right")], 20)
    left_loss, left_grads = loss_and_grads(model, [collate(examples, PAD_ID, side="left")], 20)
    assert left_loss == pytest.approx(right_loss, rel=1e-6)
    for right, left in zip(right_grads, left_grads, strict=True):
        assert torch.isfinite(left).all()
        torch.testing.assert_close(left, right, rtol=1e-5, atol=1e-7)


def test_step_updates_params_and_reports_metrics():
    examples = make_examples(LENGTHS, seed=3)
    model = tiny_llama()
    before = [p.detach().clone() for p in model.parameters()]
    cfg = OptimConfig(lr=1e-2, warmup_steps=4)
    batches = [collate(examples[:2], PAD_ID), collate(examples[2:], PAD_ID)]
    metrics = run_step(model, batches, cfg)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    num_tokens = sum(b.num_tokens for b in batches)
    assert metrics["num_tokens"] == num_tokens
    # loss_fn metrics are per-micro-batch means; the step reports their token-weighted mean
    assert metrics["nll"] == pytest.approx(metrics["loss"], rel=1e-6)
    assert metrics["lr"] == pytest.approx(1e-2 / 4)  # the lr of this update, first warmup step
    assert metrics["loss"] == pytest.approx(loss_and_grads(tiny_llama(), batches, num_tokens)[0], rel=1e-6)
    assert metrics["seconds"] > 0 and metrics["tokens_per_s"] == pytest.approx(
        num_tokens / metrics["seconds"]
    )
    assert "num_units" not in metrics and "units_per_s" not in metrics


def test_global_token_count_scales_the_loss():
    batches = [collate(make_examples(LENGTHS, seed=4), PAD_ID)]
    cfg = OptimConfig(lr=1e-3, max_grad_norm=None)
    local = run_step(tiny_llama(), batches, cfg)
    doubled = run_step(tiny_llama(), batches, cfg, num_units=2 * batches[0].num_units)
    assert doubled["loss"] == pytest.approx(local["loss"] / 2, rel=1e-6)
    assert doubled["grad_norm"] == pytest.approx(local["grad_norm"] / 2, rel=1e-5)
    assert doubled["num_tokens"] == local["num_tokens"] == batches[0].num_tokens  # this process's tokens
    old_name = run_step(tiny_llama(), batches, cfg, num_tokens=2 * batches[0].num_units)
    assert old_name["loss"] == doubled["loss"]
    with pytest.raises(ValueError, match="not both"):
        run_step(tiny_llama(), batches, cfg, num_units=1, num_tokens=1)


@pytest.mark.parametrize("max_grad_norm", [1e-3, None, 0.0])
def test_grad_clipping_caps_the_norm(max_grad_norm):
    model = tiny_llama()
    batches = [collate(make_examples(LENGTHS, seed=5), PAD_ID)]
    metrics = run_step(model, batches, OptimConfig(lr=1e-3, max_grad_norm=max_grad_norm))
    _, grads = loss_and_grads(tiny_llama(), batches, batches[0].num_tokens)
    unclipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
    stepped = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])
    )
    assert metrics["grad_norm"] == pytest.approx(unclipped, rel=1e-5)
    assert unclipped > 1e-2
    assert stepped.item() == pytest.approx(max_grad_norm or unclipped, rel=1e-4)


def test_no_sync_wraps_all_but_the_last_micro_batch():
    inside: list[bool] = []
    state = {"active": False}

    @contextmanager
    def no_sync():
        state["active"] = True
        yield
        state["active"] = False

    def recording_loss(model, batch, num_tokens):
        inside.append(state["active"])
        return nll_loss(model, batch, num_tokens)

    model = tiny_llama()
    cfg = OptimConfig(lr=1e-3)
    optimizer = build_optimizer(model, cfg)
    batches = [collate([e], PAD_ID) for e in make_examples(LENGTHS)]
    scheduler = build_scheduler(optimizer, cfg, 1)
    train_step(model, batches, recording_loss, optimizer, scheduler, max_grad_norm=1.0, no_sync=no_sync)
    assert inside == [True, True, True, False]


def test_step_errors():
    model = tiny_llama()
    with pytest.raises(ValueError, match="no micro-batches"):
        run_step(model, [], OptimConfig())
    untrained = collate([([1, 2, 3], [False, False, False])], PAD_ID)
    with pytest.raises(ValueError, match="no trained tokens"):
        run_step(model, [untrained], OptimConfig())


@dataclass
class Rows:
    """A micro-batch that counts sequences: the unit names `train_step`'s counts."""

    batch: Batch
    unit: ClassVar[str] = "sequences"

    @property
    def num_units(self) -> int:
        return self.batch.input_ids.shape[0]


def row_loss(model: torch.nn.Module, rows: Rows, num_units: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The micro-batch's summed token NLL divided by the step's sequence count."""
    batch = rows.batch
    nll, _ = nll_loss(model, batch, 1.0)  # summed token NLL of the micro-batch
    return nll / num_units, {"rows": float(rows.num_units)}


def test_counts_are_named_after_the_micro_batch_unit():
    examples = make_examples(LENGTHS, seed=6)
    micro_batches = [Rows(collate(examples[:1], PAD_ID)), Rows(collate(examples[1:], PAD_ID))]
    metrics = run_step(tiny_llama(), micro_batches, OptimConfig(lr=1e-3), loss_fn=row_loss)
    assert metrics["num_sequences"] == 4 and "num_tokens" not in metrics and "tokens_per_s" not in metrics
    assert metrics["sequences_per_s"] == pytest.approx(4 / metrics["seconds"])
    assert metrics["rows"] == pytest.approx(1 * 1 / 4 + 3 * 3 / 4)  # weighted by each micro-batch's units


def test_micro_batches_of_different_units_are_an_error():
    batches = [collate(make_examples([5]), PAD_ID)]
    with pytest.raises(ValueError, match=r"different units \['sequences', 'tokens'\]"):
        run_step(tiny_llama(), [*batches, Rows(batches[0])], OptimConfig())
