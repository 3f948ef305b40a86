"""GRPO, one online step (sampling + scoring + update): ours (`online_rl` at s = 1) against TRL's
`GRPOTrainer`, in one process.

Same initial weights (the cached tiny-world student by default: it answers about 55% of L1-L3
problems, so groups have mixed rewards), prompts in the same order (`online_rl.step_prompts`; TRL's
prompt token ids are checked equal to ours at every step), `--batch-size` prompts x `--samples`
samples per step at temperature 1, top-p 1, top-k off, at most `--max-new-tokens` new tokens, the
same reward function (`world_answer_reward`), AdamW settings (constant lr, clipping at 1.0), fp32,
`--threads` torch threads, no vLLM (TRL samples with `model.generate`, ours with `HFEngine`).

The loss is the same function on both sides: advantages r - mean(r) per group (TRL
`scale_rewards="none"`), the ratio clipped at 0.2 (inactive: one update per batch, TRL
`num_iterations=1`), k3 KL to the initial model with weight `--kl` (TRL `beta`), no length
normalisation: summed over tokens and divided by the step's sequences. In TRL that is
`loss_type="luspo"` with `importance_sampling_level="token"`, `(per_token_loss * mask).sum(-1)
.mean()` divided by the accumulation steps (TRL warns that LUSPO is meant for sequence-level
ratios; at ratio 1 the level does not matter). TRL's `dr_grpo` divides by `max_completion_length`
more, which changes the update through gradient clipping.

Each side trains on a step's sequences in one batch by default. `--max-tokens` cuts ours into
length-sorted micro-batches under a padded-token budget; `--trl-micro-batch` cuts TRL's into
micro-batches of that many sequences with gradient accumulation (it still samples them in one call).

Runs alternate (ours, TRL, ours, TRL, ...). Time per step is the mean over steps 2..N; its split
is sampling (ours: `HFEngine.generate`; TRL: `GRPOTrainer._generate_single_turn`, wrapped with a
timer) and the rest (scoring, reference and policy passes, optimizer).

    python bench/grpo_vs_trl.py --steps 10 --repeats 3 --threads 1
    python bench/grpo_vs_trl.py --steps 10 --repeats 3 --threads 1 --max-tokens 1024 --trl-micro-batch 32
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from selftaught.engines.hf import HFEngine  # noqa: E402
from selftaught.losses import token_logps  # noqa: E402
from selftaught.losses.grpo import AdvantageType  # noqa: E402
from selftaught.recipes.online_rl import (  # noqa: E402
    OnlineRLConfig,
    RolloutConfig,
    build_loss_fn,
    build_micro_batches,
    generate_rollouts,
)
from selftaught.rewards import Rubric  # noqa: E402
from selftaught.selection.rollouts import RolloutGroup  # noqa: E402
from selftaught.train.online import frozen_copy  # noqa: E402
from selftaught.train.policy_gradient import group_advantages  # noqa: E402


def build_config(args: Any) -> OnlineRLConfig:
    """Our GRPO settings at s = 1 (strictly on-policy), from the command line."""
    return OnlineRLConfig(
        loss="grpo",
        sync_every=1,
        num_steps=args.steps,
        rollouts=RolloutConfig(
            num_prompts=args.batch_size,
            samples_per_prompt=args.samples,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=args.max_new_tokens,
        ),
        kl_coef=args.kl,
        advantage="group_mean",
        grpo_normalization="none",
        clip=0.2,
        micro_batch_tokens=args.max_tokens or 0,
        optim=common.OptimConfig(lr=args.lr, eps=1e-8, max_grad_norm=1.0, schedule="constant"),
        seed=args.seed,
    )


def trl_grpo_args(cfg: OnlineRLConfig, micro_batch: int | None) -> dict[str, Any]:
    """`GRPOConfig` fields equal to `cfg` (see the module doc for the loss). TRL trains on a step's
    sequences in micro-batches of `micro_batch` (None: one batch) with gradient accumulation; it
    still samples them in one `generate` call (`steps_per_generation` = the accumulation steps)."""
    rollouts = cfg.rollouts
    num_sequences = rollouts.num_prompts * rollouts.samples_per_prompt
    micro_batch = micro_batch or num_sequences
    assert num_sequences % micro_batch == 0, "main checks --trl-micro-batch"
    loop = common.LoopConfig(steps=cfg.num_steps, batch_size=micro_batch, optim=cfg.optim)
    training_args = common.trl_training_args(loop)
    del training_args["max_length"]  # GRPO limits the completion instead
    return dict(
        training_args,
        gradient_accumulation_steps=num_sequences // micro_batch,
        num_generations=rollouts.samples_per_prompt,
        max_completion_length=rollouts.max_new_tokens,
        temperature=rollouts.temperature,
        top_p=rollouts.top_p,
        top_k=0,
        beta=cfg.kl_coef,
        epsilon=cfg.clip,
        num_iterations=1,
        scale_rewards="none",
        loss_type="luspo",
        importance_sampling_level="token",
        use_bias_correction_kl=False,  # TRL's default True adds KL * grad(ratio): another KL gradient
        shuffle_dataset=False,
    )


def check_same_loss(bench: common.OnlineBench) -> float:
    """Our GRPO loss and TRL's (`trl_grpo_args`) on one batch of our rollouts, from a perturbed policy
    so that the KL term is not 0: their gradients must agree, or the timings compare two algorithms.
    Returns the largest relative difference of a parameter's gradient."""
    from trl import GRPOConfig, GRPOTrainer

    cfg, tokenizer = bench.cfg, bench.tokenizer
    model = bench.load_model()
    reference = frozen_copy(model)
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=noise))
    groups = generate_rollouts(cfg, HFEngine(model, tokenizer), Rubric({"arith": [common.RewardLog()]}), [1])
    (batch,), _ = build_micro_batches(replace(cfg, micro_batch_tokens=0), groups, reference, tokenizer)
    loss_fn = build_loss_fn(cfg, reference)
    ours = gradients(model, lambda: loss_fn(model, batch, len(batch.advantages))[0])
    inputs = trl_loss_inputs(groups, bench.prompt_ids[0], reference, tokenizer.pad_token_id, cfg.advantage)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[common.RewardLog()],
            args=GRPOConfig(output_dir=out_dir, **trl_grpo_args(cfg, None)),
            train_dataset=bench.trl_dataset(),
            processing_class=tokenizer,
        )
        trainer.current_gradient_accumulation_steps = 1  # otherwise set by its training loop
        theirs = gradients(model, lambda: trainer._compute_loss(model, inputs))
    return max(float((a - b).norm() / b.norm()) for a, b in zip(ours, theirs, strict=True))


def trl_loss_inputs(
    groups: list[RolloutGroup], prompt_ids: list[list[int]], reference: Any, pad_id: int, advantage: str
) -> dict[str, torch.Tensor]:
    """The rollouts of `groups` (prompt i has ids `prompt_ids[i]`) as `GRPOTrainer._compute_loss` takes
    them: prompts left-padded, completions right-padded, advantages, reference log-probs."""
    from trl.trainer.utils import pad

    def padded(rows: list[list[int]], value: int, side: str) -> torch.Tensor:
        return pad([torch.tensor(row) for row in rows], padding_value=value, padding_side=side)

    completions = [c for g in groups for c in g.completions]
    prompts = [ids for ids, g in zip(prompt_ids, groups, strict=True) for _ in g.completions]
    advantages = [a for g in groups for a in group_advantages(g, AdvantageType(advantage))]
    inputs = {
        "prompt_ids": padded(prompts, pad_id, "left"),  # [B, P]
        "prompt_mask": padded([[1] * len(ids) for ids in prompts], 0, "left"),  # [B, P]
        "completion_ids": padded([c.token_ids for c in completions], pad_id, "right"),  # [B, C]
        "completion_mask": padded([[1] * c.num_tokens for c in completions], 0, "right"),  # [B, C]
        "advantages": torch.tensor(advantages),  # [B]
    }
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)  # [B, P + C]
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    with torch.no_grad():
        ref_logps = token_logps(reference, input_ids, attention_mask)  # [B, P + C]
    inputs["ref_per_token_logps"] = ref_logps[:, inputs["prompt_ids"].shape[1] :]  # [B, C]
    return inputs


def gradients(model: torch.nn.Module, loss_fn: Any) -> list[torch.Tensor]:
    """The gradient of `loss_fn()` for each parameter of `model`."""
    model.zero_grad()
    loss_fn().backward()
    return [param.grad.clone() for param in model.parameters()]


def run_trl(bench: common.OnlineBench, micro_batch: int | None) -> common.OnlineRunResult:
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    model = bench.load_model()
    reward_log = common.RewardLog()
    clock = common.StepClock([0] * bench.cfg.num_steps)
    samples = bench.cfg.rollouts.samples_per_prompt
    expected = [[ids for ids in step for _ in range(samples)] for step in bench.prompt_ids]
    check = common.check_prompt_ids(expected, lambda args, _: args[1])  # (self, prompt_ids, ...)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward_log],
            args=GRPOConfig(output_dir=out_dir, **trl_grpo_args(bench.cfg, micro_batch)),
            train_dataset=bench.trl_dataset(),
            processing_class=bench.tokenizer,
            callbacks=common.trl_callbacks(clock),
        )
        setup_seconds = time.perf_counter() - start
        trainer.remove_callback(PrinterCallback)
        with common.timed_calls(GRPOTrainer, "_generate_single_turn", check) as generation_seconds:
            trainer.train()
    return common.trl_online_result(clock, generation_seconds, reward_log, len(expected[0]), setup_seconds)


def main() -> None:
    parser = common.online_arg_parser(__doc__, batch_size=16, lr=3e-5, contenders=["ours", "trl"])
    parser.add_argument(
        "--samples", type=common.at_least(2), default=8, help="samples per prompt (group size)"
    )
    parser.add_argument(
        "--trl-micro-batch",
        type=common.at_least(1),
        default=None,
        help="TRL: sequences per micro-batch, with gradient accumulation (default: one batch)",
    )
    parser.add_argument("--kl", type=float, default=0.001, help="k3 KL weight (TRL beta)")
    args = parser.parse_args()
    if args.trl_micro_batch and (args.batch_size * args.samples) % args.trl_micro_batch:
        parser.error(
            f"--trl-micro-batch must divide the {args.batch_size * args.samples} sequences of a step"
        )
    common.setup_torch(args.threads)
    bench = common.OnlineBench(args, build_config(args))
    difference = check_same_loss(bench)
    if difference > 1e-3:
        raise AssertionError(
            f"our GRPO gradient and TRL's differ by {difference:.1e} (relative): not the same loss"
        )
    print(
        f"GRPO {bench.model_name}: {bench.num_params:,} params, {args.steps} steps x {args.batch_size} prompts x "
        f"{args.samples} samples, max {args.max_new_tokens} new tokens, {args.threads} threads, "
        f"load {common.load_average():.1f}; gradient of our loss = TRL's to {difference:.0e} (relative)"
    )
    runners = {"ours": bench.run_ours, "trl": lambda: run_trl(bench, args.trl_micro_batch)}
    results = common.run_alternating(
        runners, args.contenders.split(","), args.repeats, describe=common.describe_online
    )
    common.print_online_table(results, baseline="trl")


if __name__ == "__main__":
    main()
