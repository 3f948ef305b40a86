"""GRPO, one online step (sampling + scoring + update): the `online-rl` recipe (`online_rl.run` at
s = 1) against TRL's `GRPOTrainer`, in one process.

Ours is what `selftaught online-rl loss=grpo sync_every=1` executes, with eval, checkpoints and
per-step logging off (`online.OnlineBench`). Same initial weights (the cached tiny-world student by
default: it answers about 55% of L1-L3 problems, so groups have mixed rewards), the same prompt
file in the same order (the recipe's seeded order; TRL's prompt token ids are checked equal to ours
at every step), `--batch-size` prompts x `--samples` samples per step at temperature 1, top-p 1,
top-k off, at most `--max-new-tokens` new tokens, the same reward function (`world_answer_reward`),
AdamW settings (constant lr, clipping at 1.0), fp32, `--threads` torch threads, no vLLM (TRL
samples with `model.generate`, ours with `HFEngine`).

The loss is the same function on both sides: advantages r - mean(r) per group (TRL
`scale_rewards="none"`), the ratio clipped at 0.2 (inactive: one update per batch, TRL
`num_iterations=1`), k3 KL to the initial model with weight `--kl` (TRL `beta`), no length
normalisation: summed over tokens and divided by the step's sequences. In TRL that is
`loss_type="luspo"` with `importance_sampling_level="token"`, `(per_token_loss * mask).sum(-1)
.mean()` divided by the accumulation steps (TRL warns that LUSPO is meant for sequence-level
ratios; at ratio 1 the level does not matter). TRL's `dr_grpo` divides by `max_completion_length`
more, which changes the update through gradient clipping. Before timing, both losses are computed
on one batch of our rollouts from a perturbed policy, and their gradients must agree.

Each side trains on a step's sequences in one batch by default. `--max-tokens` cuts ours into
length-sorted micro-batches under a padded-token budget (`micro_batch_tokens`); `--trl-micro-batch`
cuts TRL's into micro-batches of that many sequences with gradient accumulation (it still samples
them in one call).

Runs alternate (ours, TRL, ours, TRL, ...). Time per step is the mean over steps 2..N; its split
is sampling (ours: `HFEngine.generate`; TRL: `GRPOTrainer._generate_single_turn`, wrapped with a
timer) and the rest (scoring, reference and policy passes, optimizer).

    python bench/grpo_vs_trl.py --steps 10 --repeats 3 --threads 1
    python bench/grpo_vs_trl.py --steps 10 --repeats 3 --threads 1 --max-tokens 1024 --trl-micro-batch 32
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from typing import Any

import harness
import peers
import torch
from online import (
    OnlineBench,
    OnlineRunResult,
    describe_online,
    online_arg_parser,
    print_online_table,
    trl_online_result,
)
from timing import StepClock, label_forward, timed_calls

from selftaught.data.chat import encode_prompt
from selftaught.engines.hf import HFEngine
from selftaught.losses import token_logps
from selftaught.losses.grpo import AdvantageType, LossNormalization
from selftaught.recipes.online_rl import OnlineRLConfig, RolloutConfig, build_objective
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.objectives import Objective
from selftaught.train.online import frozen_copy
from selftaught.train.optim import OptimConfig
from selftaught.train.policy_gradient import group_advantages
from selftaught.train.rollouts import build_rollout_source

MAX_GRADIENT_DIFFERENCE = 1e-3
"""Largest relative difference of a parameter's gradient between our loss and TRL's."""


def build_config(args: Any) -> OnlineRLConfig:
    """Our GRPO settings at s = 1 (strictly on-policy), from the command line."""
    return OnlineRLConfig(
        loss=Objective.GRPO,
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
        advantage=AdvantageType.GROUP_MEAN,
        grpo_normalization=LossNormalization.NONE,
        clip=0.2,
        micro_batch_tokens=args.max_tokens or 0,
        optim=OptimConfig(lr=args.lr, eps=1e-8, max_grad_norm=1.0, schedule="constant"),
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
    return dict(
        peers.trl_training_args(cfg.num_steps, micro_batch, cfg.optim, bf16=cfg.precision != "fp32"),
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


def check_same_loss(bench: OnlineBench) -> float:
    """Our GRPO loss (the recipe's objective) and TRL's (`trl_grpo_args`) on one batch of our rollouts,
    from a perturbed policy so that the KL term is not 0: their gradients must agree, or the timings
    compare two algorithms. Returns the largest relative difference of a parameter's gradient."""
    from trl import GRPOConfig, GRPOTrainer

    cfg, tokenizer = replace(bench.cfg, micro_batch_tokens=0), bench.tokenizer
    model = bench.weights.load()
    reference = frozen_copy(model)
    perturb(model)
    engine = HFEngine(model, tokenizer)
    groups = build_rollout_source(cfg.rollouts, cfg.tasks, None, seed=cfg.seed).sample(engine, [1])
    objective = build_objective(cfg, reference)
    (batch,), _ = objective.micro_batches(groups, tokenizer)
    ours = gradients(model, lambda: objective.loss_fn(model, batch, objective.num_units([batch]))[0])
    inputs = trl_loss_inputs(groups, tokenizer, reference, cfg)
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[peers.RewardLog()],
            args=GRPOConfig(output_dir=out_dir, **trl_grpo_args(cfg, None)),
            train_dataset=bench.trl_dataset(),
            processing_class=tokenizer,
        )
        trainer.current_gradient_accumulation_steps = 1  # otherwise set by its training loop
        theirs = gradients(model, lambda: trainer._compute_loss(model, inputs))
    return max(float((a - b).norm() / b.norm()) for a, b in zip(ours, theirs, strict=True))


def perturb(model: torch.nn.Module) -> None:
    """Add seeded noise (std 0.01) to every parameter, so the policy is not its reference."""
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01 * torch.randn(param.shape, generator=noise))


def trl_loss_inputs(
    groups: list[RolloutGroup], tokenizer: Any, reference: Any, cfg: OnlineRLConfig
) -> dict[str, torch.Tensor]:
    """The rollouts of `groups` as `GRPOTrainer._compute_loss` takes them: prompts (as the engines
    render them) left-padded, completions right-padded, advantages, reference log-probs."""
    from trl.trainer.utils import pad

    def padded(rows: list[list[int]], value: int, side: str) -> torch.Tensor:
        return pad([torch.tensor(row) for row in rows], padding_value=value, padding_side=side)

    pad_id = tokenizer.pad_token_id
    completions = [c for g in groups for c in g.completions]
    prompts = [encode_prompt(tokenizer, g.prompt) for g in groups for _ in g.completions]
    advantages = [a for g in groups for a in group_advantages(g, cfg.advantage)]
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
    grads = [param.grad for param in model.parameters()]
    if any(grad is None for grad in grads):
        raise AssertionError("a parameter got no gradient: the loss does not depend on every weight")
    return [grad.clone() for grad in grads if grad is not None]


def run_trl(bench: OnlineBench, micro_batch: int | None) -> OnlineRunResult:
    """TRL's `GRPOTrainer` on our prompts in our order, its sampling call timed and checked."""
    from trl import GRPOConfig, GRPOTrainer

    model = bench.weights.load()
    reward_log = bench.reward_log()
    profile = bench.args.profile
    clock = StepClock([0] * bench.cfg.num_steps, "trl" if profile else None)
    samples = bench.cfg.rollouts.samples_per_prompt
    expected = [[ids for ids in step for _ in range(samples)] for step in bench.prompt_ids]
    check = peers.check_prompt_ids(expected, lambda args, _: args[1])  # (self, prompt_ids, ...)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward_log],
            args=GRPOConfig(output_dir=out_dir, **trl_grpo_args(bench.cfg, micro_batch)),
            train_dataset=bench.trl_dataset(),
            processing_class=bench.tokenizer,
            callbacks=peers.trl_callbacks(clock),
            peft_config=peers.trl_lora(bench.cfg.lora),
        )
        setup_seconds = time.perf_counter() - start
        if profile:
            label_forward(model.model, "forward: policy (+ a LoRA policy's reference pass)")
        region = "sampling" if profile else None
        with timed_calls(GRPOTrainer, "_generate_single_turn", check, region) as generation_seconds:
            peers.quiet(trainer).train()
    return trl_online_result(clock, generation_seconds, reward_log, len(expected[0]), setup_seconds)


def main() -> None:
    parser = online_arg_parser(__doc__, batch_size=16, lr=3e-5, contenders=["ours", "trl"])
    parser.add_argument(
        "--samples", type=harness.at_least(2), default=8, help="samples per prompt (group size)"
    )
    parser.add_argument(
        "--trl-micro-batch",
        type=harness.at_least(1),
        default=None,
        help="TRL: sequences per micro-batch, with gradient accumulation (default: one batch)",
    )
    parser.add_argument("--kl", type=float, default=0.001, help="k3 KL weight (TRL beta)")
    args = parser.parse_args()
    if args.trl_micro_batch and (args.batch_size * args.samples) % args.trl_micro_batch:
        parser.error(
            f"--trl-micro-batch must divide the {args.batch_size * args.samples} sequences of a step"
        )
    harness.setup_torch(args.threads)
    if not args.child:
        harness.print_machine(args.threads)
    bench = OnlineBench(args, build_config(args))
    if not args.child:
        print(
            f"GRPO {bench.weights.name}: {bench.weights.num_params:,} params, {args.steps} steps x "
            f"{args.batch_size} prompts x {args.samples} samples, max {args.max_new_tokens} new tokens; "
            f"{loss_check(bench, args)}"
        )
    runners = {"ours": bench.run_ours, "trl": lambda: run_trl(bench, args.trl_micro_batch)}
    results = harness.run_contenders(args, runners, describe=describe_online)
    if results:
        print_online_table(results, baseline="trl")


def loss_check(bench: OnlineBench, args: Any) -> str:
    """Check, before timing, that our GRPO loss and TRL's have the same gradient (`check_same_loss`),
    on the tiny model; a real model's check (two full backward passes) is left to the tiny one."""
    if args.model:
        return f"{harness.tuning(args)}; same loss checked on the tiny model only"
    difference = check_same_loss(bench)
    if difference > MAX_GRADIENT_DIFFERENCE:
        raise AssertionError(
            f"our GRPO gradient and TRL's differ by {difference:.1e} (relative): not the same loss"
        )
    return f"gradient of our loss = TRL's to {difference:.0e} (relative)"


if __name__ == "__main__":
    main()
