import copy
import math
from dataclasses import replace

import pytest
import torch

from selftaught.config import apply_overrides
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler


def lr_curve(cfg: OptimConfig, total_steps: int, num_steps: int) -> list[float]:
    """The lr each of `num_steps` updates uses, read from the optimizer as a training loop would."""
    param = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.AdamW([param], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    lrs = []
    for _ in range(num_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_constant_with_warmup():
    # warmup (s + 1) / 2 for s = 0, 1, then flat
    cfg = OptimConfig(lr=0.1, schedule="constant", warmup_steps=2)
    assert lr_curve(cfg, total_steps=5, num_steps=5) == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1])


def test_linear_with_warmup_to_floor():
    # warmup 2 of 6 steps; decay progress p = (s - 2) / 3 for s = 2..5 = 0, 1/3, 2/3, 1;
    # multiplier 1 - 0.9 p = 1, 0.7, 0.4, 0.1; past the end it stays at the floor 0.1
    cfg = OptimConfig(lr=2.0, schedule="linear", warmup_steps=2, min_lr_ratio=0.1)
    expected = [1.0, 2.0, 2.0, 1.4, 0.8, 0.2, 0.2, 0.2]
    assert lr_curve(cfg, total_steps=6, num_steps=8) == pytest.approx(expected)


def test_cosine_without_warmup():
    # p = s / 4; multiplier (1 + cos(pi p)) / 2 = 1, (1 + 1/sqrt 2) / 2, 1/2, (1 - 1/sqrt 2) / 2, 0
    cfg = OptimConfig(lr=1.0, schedule="cosine", min_lr_ratio=0.0)
    half_root = 0.5 / math.sqrt(2)
    expected = [1.0, 0.5 + half_root, 0.5, 0.5 - half_root, 0.0]
    assert lr_curve(cfg, total_steps=5, num_steps=5) == pytest.approx(expected, abs=1e-12)


def test_cosine_floor_and_warmup_equal_to_total():
    cfg = OptimConfig(lr=1.0, schedule="cosine", warmup_steps=3, min_lr_ratio=0.25)
    assert lr_curve(cfg, total_steps=3, num_steps=4) == pytest.approx([1 / 3, 2 / 3, 1.0, 0.25])


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.norm = torch.nn.LayerNorm(3)
        self.proj = torch.nn.Linear(3, 5)
        self.frozen = torch.nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.proj.weight = self.embed.weight  # tied


def test_build_optimizer_groups_and_hyperparameters():
    model = Tiny()
    cfg = OptimConfig(lr=3e-4, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1)
    optimizer = build_optimizer(model, cfg)
    decay, no_decay = optimizer.param_groups
    assert {id(p) for p in decay["params"]} == {id(model.embed.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model.norm.weight),
        id(model.norm.bias),
        id(model.proj.bias),
    }
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(
        g["lr"] == 3e-4 and g["betas"] == (0.8, 0.95) and g["eps"] == 1e-4 for g in optimizer.param_groups
    )


def test_weight_decay_shrinks_only_matrices():
    model = Tiny()
    optimizer = build_optimizer(model, OptimConfig(lr=0.5, weight_decay=0.2))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's own update is 0, only decoupled decay moves weights
    optimizer.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["embed.weight"], before["embed.weight"] * (1 - 0.5 * 0.2))
    for name in ("norm.weight", "norm.bias", "proj.bias", "frozen.weight"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_build_optimizer_rejects_frozen_model():
    model = torch.nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        build_optimizer(model, OptimConfig())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", -1e-3),
        ("lr", 0.0),
        ("betas", (0.9, 1.0)),
        ("eps", 0.0),
        ("weight_decay", -0.1),
        ("max_grad_norm", -1.0),
        ("schedule", "exponential"),
        ("warmup_steps", -1),
        ("min_lr_ratio", 1.5),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"optim.{field}"):
        OptimConfig(**{field: value})


def test_warmup_longer_than_training_is_an_error():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="optim.warmup_steps"):
        build_scheduler(optimizer, OptimConfig(warmup_steps=11), total_steps=10)


def test_config_overrides_from_the_command_line():
    cfg = apply_overrides(OptimConfig(), ["schedule=cosine", "betas=[0.9, 0.98]", "max_grad_norm=null"])
    assert cfg.schedule == "cosine" and cfg.betas == (0.9, 0.98) and cfg.max_grad_norm is None
    with pytest.raises(ValueError, match="schedule"):
        apply_overrides(OptimConfig(), ["schedule=step"])


def test_single_step_after_warmup_uses_the_peak():
    cfg = OptimConfig(lr=1.0, schedule="linear", warmup_steps=2, min_lr_ratio=0.5)
    assert lr_curve(cfg, total_steps=3, num_steps=5) == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.5])


def test_the_fused_default_takes_the_same_steps_as_the_for_each_implementation():
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 1))]
    models.append(copy.deepcopy(models[0]))
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1)
    optimizers = [build_optimizer(models[0], cfg), build_optimizer(models[1], replace(cfg, fused=False))]
    assert optimizers[0].defaults["fused"] and not optimizers[1].defaults["fused"]
    for step in range(5):
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(step))
        for model, optimizer in zip(models, optimizers, strict=True):
            model(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    for fused, for_each in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(fused, for_each, rtol=1e-6, atol=1e-6)
        assert not torch.equal(fused, torch.zeros_like(fused))
