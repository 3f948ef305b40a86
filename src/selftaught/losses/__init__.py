"""Pure loss functions: tensors in, `(loss, metrics)` out, with an explicit denominator.

Every loss sums over its items (tokens, pairs, sequences) and divides by a denominator the caller
may pass for the whole optimizer batch, so the losses of micro-batches add up to the loss of the
batch: gradient accumulation is exact by construction. Metrics are detached 0-dim tensors.
"""

from selftaught.losses.dpo import DPOLossType, NLLNormalization, dpo_loss
from selftaught.losses.grpo import AdvantageType, LossNormalization, compute_advantages, grpo_loss
from selftaught.losses.logps import positions_from_mask, selective_log_softmax, token_logps
from selftaught.losses.sft import sft_loss

__all__ = [
    "AdvantageType",
    "DPOLossType",
    "LossNormalization",
    "NLLNormalization",
    "compute_advantages",
    "dpo_loss",
    "grpo_loss",
    "positions_from_mask",
    "selective_log_softmax",
    "sft_loss",
    "token_logps",
]
