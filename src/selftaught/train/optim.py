"""AdamW and the learning-rate schedule: linear warmup, then constant, linear or cosine decay.

Typical use (the tiny-world SFT settings):

>>> cfg = OptimConfig(lr=3e-3, schedule="cosine", warmup_steps=50, min_lr_ratio=0.1)
>>> optimizer = build_optimizer(model, cfg)  # doctest: +SKIP
>>> scheduler = build_scheduler(optimizer, cfg, total_steps=3000)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import torch

from selftaught.configs.train import SCHEDULES as SCHEDULES
from selftaught.configs.train import OptimConfig as OptimConfig
from selftaught.configs.train import Schedule as Schedule


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model`; weight decay only on tensors with >= 2 dims.

    Norm weights and biases (1-dim) are not decayed: pulling a norm gain toward 0 changes the
    function, not its complexity. Embeddings (2-dim) are decayed. Tied weights appear once.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "build_optimizer: the model has no parameters with requires_grad=True; nothing to train"
        )
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": group, "weight_decay": wd}
        for group, wd in ((decay, cfg.weight_decay), (no_decay, 0.0))
        if group
    ]
    fused = cfg.fused if cfg.fused is not None else all(map(_fusable, params))
    low_precision = [p for p in params if p.dtype in LOW_PRECISION]
    if not low_precision:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)
    if any(type(p) is not torch.nn.Parameter for p in low_precision):
        raise ValueError(
            "precision=bf16 keeps fp32 master weights of plain parameters only, not of FSDP2-sharded "
            "ones; use precision=bf16-autocast with parallel.strategy=fsdp2"
        )
    return MasterWeightAdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)


LOW_PRECISION = (torch.bfloat16, torch.float16)
"""Parameter dtypes that `build_optimizer` gives fp32 master weights (`MasterWeightAdamW`)."""


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW for low-precision (bf16) parameters: the update is computed on an fp32 master copy of
    each one, with fp32 `exp_avg` / `exp_avg_sq`, and the parameter becomes the master rounded to
    its dtype (round to nearest).

    Why: an AdamW update is about `lr` relative to the weight (1e-5 for RL); bf16 has 8 bits of
    mantissa (relative spacing 2^-8 = 4e-3), so applied to bf16 weights most updates round away and
    training stalls. The master accumulates them exactly as fp32 training does; only the forward
    and backward see the rounded weights. Memory per bf16 parameter: 2 (weight) + 2 (gradient) +
    4 (master) + 8 (AdamW state) bytes, the same 16 as fp32 training (plus an fp32 copy of the
    gradients while the step runs); bf16 training saves activation memory and time, not parameter
    memory (with LoRA the frozen base is bf16 and has no master).

    The masters live in the optimizer state (`state[p]["master"]`), keyed by the model's own
    parameters, so checkpoints (`torch.distributed.checkpoint`'s optimizer state dict) save and
    restore them with the rest; `load_state_dict` keeps them and the AdamW state in fp32 (the base
    class casts floating-point state to the parameter's dtype). fp32 parameters in the same groups
    are updated as plain AdamW would. The gradients stay in the parameters' dtype: micro-batch
    gradients accumulate in bf16 (tests/train/test_precision.py bounds the effect).
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        """One AdamW step of the masters (each low-precision parameter stands in as its fp32 master,
        with an fp32 gradient, while the base class steps), then each parameter = its master."""
        swapped = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None or param.dtype not in LOW_PRECISION:
                    continue
                state = self.state[param]
                master = state.pop("master", None)  # absent while AdamW's state is still empty
                if master is None:
                    master = param.detach().float()
                low, grad = param.data, param.grad
                param.grad = None
                param.data = master
                param.grad = grad.float()
                swapped.append((param, low, grad, master))
        try:
            loss = super().step(closure)
        finally:
            for param, low, grad, master in swapped:
                self.state[param]["master"] = master
                low.copy_(master)
                param.grad = None
                param.data = low
                param.grad = grad
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The base class's load, then the masters and the AdamW state of low-precision parameters
        put back in fp32 (the base class casts floating-point state to the parameter's dtype)."""
        super().load_state_dict(state_dict)
        saved_ids = (i for g in state_dict["param_groups"] for i in g["params"])
        params = (p for g in self.param_groups for p in g["params"])
        for saved_id, param in zip(saved_ids, params, strict=True):
            if param.dtype not in LOW_PRECISION:
                continue
            for key, value in state_dict["state"].get(saved_id, {}).items():
                if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                    self.state[param][key] = value.to(device=param.device, dtype=torch.float32, copy=True)


def _fusable(param: torch.Tensor) -> bool:
    """Whether AdamW's fused kernel should take this tensor: a plain floating-point parameter on
    CUDA, or on CPU in a single process (with 2 gloo ranks on CPU, runs using the fused kernel
    aborted at exit in 2 of 9 tries, `std::terminate` in both ranks; for-each in 0 of 18)."""
    if type(param) is not torch.nn.Parameter or not param.is_floating_point():
        return False
    if param.device.type == "cuda":
        return True
    return param.device.type == "cpu" and not torch.distributed.is_initialized()


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning rate: `lr * lr_multiplier(step, ...)`; call `scheduler.step()` once per step."""
    if total_steps < 1:
        raise ValueError(f"build_scheduler: total_steps must be >= 1, got {total_steps}")
    if cfg.warmup_steps > total_steps:
        raise ValueError(
            f"optim.warmup_steps ({cfg.warmup_steps}) must be <= the number of training steps ({total_steps}); "
            "lower warmup_steps or train longer"
        )

    def multiplier(step: int) -> float:
        return lr_multiplier(step, total_steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def lr_multiplier(
    step: int, total_steps: int, warmup_steps: int, schedule: Schedule, min_lr_ratio: float
) -> float:
    """Fraction of the peak lr used by update `step` (0-based) of `total_steps`.

    Warmup: `(step + 1) / warmup_steps`, so update `warmup_steps - 1` is the first at the peak. Decay:
    progress `p = (step - warmup_steps) / (total_steps - 1 - warmup_steps)` in [0, 1] (1 for steps
    past the end), and with `m = min_lr_ratio`

        constant: 1      linear: 1 - (1 - m) p      cosine: m + (1 - m) (1 + cos(pi p)) / 2

    so the first update after warmup uses the peak lr and the last one (`total_steps - 1`) exactly
    `m * lr` (when there are at least two updates after warmup; a single one uses the peak).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    past_the_end = step >= total_steps  # e.g. resumed with more steps: stay at the floor
    progress = 1.0 if past_the_end else (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    if schedule == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"optim.schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
