"""The model a recipe trains: any model spec, optionally wrapped with LoRA adapters (peft).

A spec is what `selftaught.models.io.load_model` takes: an alias (`gemma-3-270m`, or `tiny-world`
once the recipes have registered it), a directory, a `.gguf` file, or a hub id.

`LoraConfig` is part of every recipe's config, so this module imports torch (through
`selftaught.models.io`) only inside the functions that load a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selftaught.config import check


@dataclass
class LoraConfig:
    """Low-rank adapters (peft). `r = 0` trains every weight (full fine-tuning)."""

    r: int = 0
    """Adapter rank; 0 disables LoRA."""
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Linear layers that get adapters (names of the Llama/Gemma projections)."""

    def __post_init__(self) -> None:
        check(self.r >= 0, "lora.r", ">= 0 (0: full fine-tuning)", self.r)
        check(self.alpha > 0, "lora.alpha", "> 0", self.alpha)
        check(0 <= self.dropout < 1, "lora.dropout", "in [0, 1)", self.dropout)


def policy_source(spec: str) -> str:
    """The directory (or hub id) a model spec loads from, building an alias on first use."""
    from selftaught.models.io import resolve_model_source

    return str(resolve_model_source(spec))


def load_policy(
    spec: str,
    lora: LoraConfig,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    activation_checkpointing: int = 0,
) -> tuple[Any, Any]:
    """Model (in train mode, with adapters when `lora.r > 0`) and tokenizer of a model spec; the
    weights in `dtype` (a `models.io.DTYPES` name: `RunConfig.precision.weights_dtype`). LoRA
    adapters over a bf16 base stay fp32 (peft's `autocast_adapter_dtype`). `activation_checkpointing`
    = n > 0 recomputes every n-th decoder layer in the backward pass (`RunConfig.activation_checkpointing`)."""
    from selftaught.models.io import load_model

    model, tokenizer = load_model(spec, dtype=dtype, device=device)
    if activation_checkpointing:
        enable_activation_checkpointing(model, activation_checkpointing)
    if lora.r > 0:
        model = add_lora(model, lora)
    model.train()
    return model, tokenizer


def add_lora(model: Any, lora: LoraConfig) -> Any:
    """`model` with trainable LoRA adapters on `lora.target_modules` (the base weights frozen)."""
    try:
        import peft
    except ImportError as err:
        raise ValueError("lora.r > 0 needs the `peft` package: pip install peft") from err
    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as err:  # peft: "Target modules {...} not found in the base model ..."
        last_parts = {name.rpartition(".")[2] for name, _ in model.named_modules()}
        names = sorted(n for n in last_parts if n and not n.isdigit())
        raise ValueError(
            f"config key 'lora.target_modules' {lora.target_modules}: {str(err).splitlines()[0]} "
            f"(the model's module names include {', '.join(names[:12])})"
        ) from err


def enable_activation_checkpointing(model: Any, every_n_layers: int = 1) -> None:
    """Keep only the inputs of every `every_n_layers`-th decoder layer in the forward pass and
    recompute the layer in the backward (non-reentrant `torch.utils.checkpoint`, through
    transformers' `activation_checkpointing_enable`): the activation memory of a step falls from
    all the layers' to about one layer's plus each checkpointed layer's input, for one more forward
    pass of those layers. Only in train mode (reference and sampling passes are unaffected)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"activation_checkpointing: {type(model).__name__} does not support it (a transformers model "
            "whose class sets supports_gradient_checkpointing does); set activation_checkpointing=0"
        )
    model.activation_checkpointing_enable(every_n_layers=every_n_layers)
