"""The number format of training: `fp32`, `bf16-autocast` and `bf16` (`RunConfig.precision`).

What each setting does where (the recipes call the helpers below; nothing else branches on it):

| | fp32 | bf16-autocast | bf16 |
|---|---|---|---|
| trained weights, gradients | fp32 | fp32 | bf16 (`cast_for_training`) |
| AdamW state | fp32 | fp32 | fp32, with an fp32 master copy of each bf16 weight (`train.optim.MasterWeightAdamW`) |
| loss forward (`train_step`'s `loss_fn`) | fp32 | `torch.autocast(device, bfloat16)` (`forward_context`) | bf16 (the weights' dtype) |
| backward | fp32 | the forward's dtypes (outside autocast, as PyTorch recommends) | bf16 |
| log-softmax of the head, losses | fp32 | fp32 | fp32 |
| reference model / reference log-probs (a LoRA policy's: itself, adapters off) | fp32 | as the policy: fp32 weights under autocast | bf16 |
| in-process generator (online-rl) | the policy itself | a bf16 copy | the policy itself |
| frozen model (adaptive-decoding) | fp32 | bf16 weights | bf16 weights |
| engines sharing the policy (validation, DPO's pair sampling), the saved model | fp32 | fp32 (the weights as they are, no autocast) | bf16 |

Why the reference follows the policy rather than being a bf16 copy under autocast: then at step 0
the policy's and the reference's log-probs are the same computation (the DPO margin and the GRPO
KL start at 0, up to the rounding of differently batched bf16 matmuls: the tiny DPO runs start at
log 2 to 2e-5); a bf16 copy would differ from the autocast forward in the embeddings and norms
(autocast keeps those in fp32): on the trained tiny-world student by 1.7e-3 nats per token on
average and up to 0.2 on single tokens (fp32 differs from autocast by 1.0e-3, up to 0.14). The
generator is another matter: sampling needs no gradient and no master weights, so a bf16 copy
halves the generator's memory and the bytes every decode step reads, and the engine needs no
autocast of its own; at s != 1 its log-probs (GRPO's old log-probs) then differ from the policy's
by that bf16 noise, as a bf16 vLLM generator's do. Validation runs the weights as they are, so a
bf16-autocast run is validated (and saved) as the fp32 model it produces.

The fused log-prob head (`selftaught.losses.fused_head`) reads autocast's dtype: under bf16-autocast
its vocabulary matmuls run in bf16 and its log-sum-exp, gradients of the logits and the weight
gradient accumulate in fp32 (tests/train/test_precision.py checks the dtypes). With a frozen head
(LoRA) it builds the hidden-state gradient in the forward pass as `(1 - p_target) W_target -
sum_(j != target) p_j W_j`, so a confident token's gradient is not the difference of two bf16-rounded
near-equal vectors (tests/losses/test_fused_head.py: no worse than the plain path under autocast).

Tolerances against fp32 (tests/train/test_precision.py): on the tiny model, a loss within 1e-3
relative and gradients within 2e-2 relative L2 error (measured: 4e-5 and 0.4-0.6%); a 6-step SFT
or DPO run's loss within 5e-3 relative at every step (measured: at most 6e-4); on Gemma 3 270M
(slow), full fine-tuning, a loss within 1e-2 relative and gradients within 1e-1 (measured:
bf16-autocast 2.3e-3 and 3.8%, bf16 2.7e-3 and 4.2%).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from selftaught.configs.train import Precision as Precision
from selftaught.models.io import DTYPES


def forward_context(precision: Precision, device: torch.device | str) -> AbstractContextManager[Any]:
    """The context a loss forward runs in: bf16 autocast on `device`'s type for `bf16-autocast`,
    else none (fp32 and bf16 compute in the weights' dtype)."""
    if not precision.autocast:
        return nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of `model`'s first parameter (CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def cast_for_training(model: Any, precision: Precision) -> Any:
    """`model` with its floating-point weights in `precision.weights_dtype` (bf16 for `bf16`; fp32
    otherwise, unchanged). Call it before LoRA adapters are added (peft keeps them in fp32 over a
    bf16 base) and before the optimizer is built (it keeps fp32 masters of bf16 weights)."""
    dtype = DTYPES[precision.weights_dtype]
    if dtype == torch.float32:
        return model
    return model.to(dtype)


def generator_dtype(precision: Precision) -> torch.dtype:
    """The dtype of an in-process generator copy of the policy (see the module doc)."""
    return DTYPES[precision.generator_dtype]


def check_weights(model: torch.nn.Module, precision: Precision) -> None:
    """A ValueError when `precision` is `bf16` but no weight of `model` is bf16: the recipe built or
    loaded the model without `cast_for_training` / `load_policy(dtype=...)`, and would silently
    train in fp32."""
    if precision is Precision.BF16 and not any(p.dtype == torch.bfloat16 for p in model.parameters()):
        raise ValueError(
            "precision=bf16 but the model's weights are fp32: load it with "
            "load_policy(..., dtype=precision.weights_dtype) or pass it through cast_for_training"
        )
