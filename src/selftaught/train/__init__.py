"""Training utilities (layer L5): AdamW and lr schedules, padded batches under a token budget, and one
optimizer step with gradient accumulation that equals a bigger batch."""

from selftaught.train.batching import Batch, Example, collate, token_budget_batches
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler, lr_multiplier
from selftaught.train.step import LossFn, MicroBatch, clip_grad_norm, train_step

__all__ = [
    "Batch",
    "Example",
    "LossFn",
    "MicroBatch",
    "OptimConfig",
    "build_optimizer",
    "build_scheduler",
    "clip_grad_norm",
    "collate",
    "lr_multiplier",
    "token_budget_batches",
    "train_step",
]
