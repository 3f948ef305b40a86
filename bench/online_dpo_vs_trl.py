"""Online DPO, one step (sampling + scoring + update): the `online-rl` recipe (`online_rl.run` at
s = 1) against TRL's `trl.experimental.online_dpo.OnlineDPOTrainer`, in one process.

Ours is what `selftaught online-rl loss=dpo sync_every=1` executes, with eval, checkpoints and
per-step logging off (`online.OnlineBench`). TRL's online DPO samples 2 completions per prompt
(fixed), so ours does too. Same initial weights (the cached tiny-world student by default: it
answers about 55% of L1-L3 problems, so about half the prompts get one right and one wrong sample),
the same prompt file in the same order (the recipe's seeded order; TRL's prompt token ids are
checked equal to ours at every step), `--batch-size` prompts per step, temperature 1, top-p 1,
top-k off, at most `--max-new-tokens` new tokens, the same reward function (`world_answer_reward`,
given to TRL as `reward_funcs`), sigmoid DPO with beta 0.1 against the initial model, the loss
averaged over the step's pairs, AdamW settings (constant lr, clipping at 1.0), fp32, `--threads`
torch threads, no vLLM (TRL samples with `model.generate`, ours with `HFEngine`).

The pairs differ. TRL makes a pair of every prompt: the higher reward is chosen and, on a tie (both
right or both wrong), the first sample, so it also trains on pairs with no preference. Ours keeps
only prompts with one correct and one incorrect sample (`correct_vs_incorrect`, the recipe's rule)
and trains on fewer pairs. The `ours-ties` contender is the same recipe with TRL's rule as its pair
rule (`online.first_on_tie_pair_rule`, a user's `pair_rule`), so it does the same training work as
TRL.

Runs alternate (ours, ours-ties, TRL, ...). Time per step is the mean over steps 2..N; its split is
sampling (ours: `HFEngine.generate`; TRL: `OnlineDPOTrainer._generate`, wrapped with a timer) and
the rest (scoring, reference and policy passes, optimizer).

    python bench/online_dpo_vs_trl.py --steps 10 --repeats 3
    python bench/online_dpo_vs_trl.py --steps 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import harness
import peers
from online import (
    FIRST_ON_TIE_RULE,
    OnlineBench,
    OnlineRunResult,
    describe_online,
    online_arg_parser,
    print_online_table,
    trl_online_result,
)
from timing import StepClock, timed_calls
from workloads import MAX_LENGTH

from selftaught.recipes.online_rl import OnlineRLConfig, RolloutConfig
from selftaught.train.objectives import Objective
from selftaught.train.optim import OptimConfig

SAMPLES_PER_PROMPT = 2
"""Fixed by TRL's `OnlineDPOTrainer`."""


def build_config(args: Any) -> OnlineRLConfig:
    """Our online DPO settings at s = 1, from the command line."""
    return OnlineRLConfig(
        loss=Objective.DPO,
        sync_every=1,
        num_steps=args.steps,
        rollouts=RolloutConfig(
            num_prompts=args.batch_size,
            samples_per_prompt=SAMPLES_PER_PROMPT,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=args.max_new_tokens,
        ),
        beta=0.1,
        micro_batch_tokens=args.max_tokens or 0,
        optim=OptimConfig(lr=args.lr, eps=1e-8, max_grad_norm=1.0, schedule="constant"),
        seed=args.seed,
    )


def trl_online_dpo_args(cfg: OnlineRLConfig) -> dict[str, Any]:
    """`OnlineDPOConfig` fields equal to `cfg`."""
    rollouts = cfg.rollouts
    return dict(
        peers.trl_training_args(cfg.num_steps, rollouts.num_prompts, cfg.optim),
        max_length=MAX_LENGTH,
        max_new_tokens=rollouts.max_new_tokens,
        temperature=rollouts.temperature,
        top_p=rollouts.top_p,
        top_k=0,
        beta=[cfg.beta],
        loss_type="sigmoid",
    )


def generated_prompt_ids(_: tuple, result: Any) -> list[list[int]]:
    """The unpadded prompt ids of `OnlineDPOTrainer._generate`'s result (left-padded [2B, L] + mask)."""
    prompt_ids, prompt_mask = result[0], result[1].bool()
    return [row[mask].tolist() for row, mask in zip(prompt_ids, prompt_mask, strict=True)]


def run_trl(bench: OnlineBench) -> OnlineRunResult:
    """TRL's `OnlineDPOTrainer` on our prompts in our order, its sampling call timed and checked."""
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    model = bench.weights.load()
    reward_log = peers.RewardLog()
    clock = StepClock([0] * bench.cfg.num_steps)
    expected = [step + step for step in bench.prompt_ids]  # the prompts, then the prompts again
    check = peers.check_prompt_ids(expected, generated_prompt_ids)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        trainer = OnlineDPOTrainer(
            model=model,
            reward_funcs=[reward_log],
            args=OnlineDPOConfig(output_dir=out_dir, **trl_online_dpo_args(bench.cfg)),
            train_dataset=bench.trl_dataset(),
            processing_class=bench.tokenizer,
            callbacks=peers.trl_callbacks(clock),
        )
        setup_seconds = time.perf_counter() - start
        with timed_calls(OnlineDPOTrainer, "_generate", check) as generation_seconds:
            peers.quiet(trainer).train()
    return trl_online_result(
        clock, generation_seconds, reward_log, bench.cfg.rollouts.num_prompts, setup_seconds
    )


def main() -> None:
    parser = online_arg_parser(__doc__, batch_size=64, lr=3e-5, contenders=["ours", "ours-ties", "trl"])
    args = parser.parse_args()
    if args.model:
        parser.error(
            "--model: the online DPO benchmark runs the tiny world only (see grpo_vs_trl.py --model)"
        )
    harness.setup_torch(args.threads)
    harness.print_machine(args.threads)
    bench = OnlineBench(args, build_config(args))
    print(
        f"Online DPO {bench.weights.name}: {bench.weights.num_params:,} params, {args.steps} steps x "
        f"{args.batch_size} prompts x {SAMPLES_PER_PROMPT} samples, max {args.max_new_tokens} new tokens"
    )
    runners = {
        "ours": bench.run_ours,
        "ours-ties": lambda: bench.run_ours("ours-ties", FIRST_ON_TIE_RULE),
        "trl": lambda: run_trl(bench),
    }
    results = harness.run_alternating(
        runners, args.contenders.split(","), args.repeats, describe=describe_online
    )
    print_online_table(results, baseline="trl")


if __name__ == "__main__":
    main()
