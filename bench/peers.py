"""The peer, TRL, with our settings: its training arguments, a clock callback, a logged reward
function, and the check that it sampled from our prompts.

TRL defaults that differ from ours are turned off on the tiny shapes: bf16 autocast (fp32 there)
and gradient checkpointing (ours keeps activations). On a real model (`--model`) TRL keeps its
bf16 autocast when ours trains in a bf16 precision, and the `trl-gc` contender adds its gradient
checkpointing. No logging, saving, eval or shuffling: both sides see the same batches in order.
TRL keeps its default AdamW implementation (fused).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from timing import StepClock, timed_calls

from selftaught.models.policy import LoraConfig
from selftaught.rewards import world_answer_reward
from selftaught.train.optim import OptimConfig


def trl_training_args(
    steps: int, batch_size: int, optim: OptimConfig, bf16: bool = False, gradient_checkpointing: bool = False
) -> dict[str, Any]:
    """`transformers.TrainingArguments` fields (of TRL's configs) equal to our settings: AdamW
    betas, eps and weight decay, clipping, constant lr, `batch_size` sequences (SFT), pairs (DPO)
    or prompts (online DPO) per device step, `steps` steps, on the CPU, in order. `bf16` (autocast)
    and `gradient_checkpointing` are TRL's defaults, off unless asked for."""
    return dict(
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=optim.lr,
        adam_beta1=optim.betas[0],
        adam_beta2=optim.betas[1],
        adam_epsilon=optim.eps,
        weight_decay=optim.weight_decay,
        max_grad_norm=optim.max_grad_norm,
        lr_scheduler_type="constant",
        train_sampling_strategy="sequential",
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        dataloader_pin_memory=False,
    )


def trl_lora(lora: LoraConfig) -> Any:
    """TRL's `peft_config` for our `lora` (same rank, alpha, dropout and target modules), or None for
    full fine-tuning."""
    if not lora.r:
        return None
    import peft

    return peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def trl_callbacks(clock: StepClock) -> list[Any]:
    """A `TrainerCallback` that drives `clock`: start at `on_train_begin`, tick at every `on_step_end`."""
    from transformers import TrainerCallback

    class ClockCallback(TrainerCallback):
        def on_train_begin(self, *_: Any, **__: Any) -> None:
            clock.start()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            clock.tick()

    return [ClockCallback()]


class StepLosses(timed_calls):
    """Context manager: while open, the loss that each `trainer_class.training_step` call returns (one
    call per step without gradient accumulation) is appended to `.losses`."""

    def __init__(self, trainer_class: Any) -> None:
        self.losses: list[float] = []
        super().__init__(trainer_class, "training_step", lambda _a, _k, loss: self.losses.append(float(loss)))

    def __enter__(self) -> StepLosses:  # type: ignore[override]
        super().__enter__()
        return self


def quiet(trainer: Any) -> Any:
    """`trainer` without its printer callback (it prints the metrics of every step)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


class RewardLog:
    """A reward function of TRL's signature (`world_answer_reward` by default) that keeps the mean
    reward of each call. TRL scores a step's samples in one call, so `means[k]` belongs to step k + 1."""

    def __init__(self, reward: Callable[..., list[Any]] = world_answer_reward) -> None:
        self.reward = reward
        self.__name__ = reward.__name__  # the name TRL reports it under
        self.means: list[float] = []

    def __call__(self, prompts: list[Any], completions: list[Any], answer: list[Any], **_: Any) -> list[Any]:
        rewards = self.reward(prompts, completions, answer)
        scored = [r for r in rewards if r is not None]
        self.means.append(sum(scored) / len(scored) if scored else float("nan"))
        return rewards


def check_prompt_ids(
    expected: Sequence[list[list[int]]], prompt_ids_of: Callable[[tuple, Any], list[list[int]]]
) -> Callable[[tuple, dict, Any], None]:
    """A `timing.timed_calls` check: TRL's k-th generation call must sample from exactly our prompt
    token ids of step k + 1, `expected[k]`, read from its arguments and result by `prompt_ids_of`."""
    calls = iter(expected)

    def check(args: tuple, _: dict, result: Any) -> None:
        got, want = prompt_ids_of(args, result), next(calls)
        if got != want:
            raise AssertionError(f"TRL sampled from other prompt ids than ours: {got[:2]} != {want[:2]}")

    return check
