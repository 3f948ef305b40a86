"""Online DPO, one step (sampling + scoring + update): ours (`online_rl` at s = 1) against TRL's
`trl.experimental.online_dpo.OnlineDPOTrainer`, in one process.

TRL's online DPO samples 2 completions per prompt (fixed), so ours does too. Same initial weights
(the cached tiny-world student by default: it answers about 55% of L1-L3 problems, so about half
the prompts get one right and one wrong sample), prompts in the same order
(`online_rl.step_prompts`; TRL's prompt token ids are checked equal to ours at every step),
`--batch-size` prompts per step, temperature 1, top-p 1, top-k off, at most `--max-new-tokens`
new tokens, the same reward function (`world_answer_reward`, given to TRL as `reward_funcs`), sigmoid
DPO with beta 0.1 against the initial model, the loss averaged over the step's pairs, AdamW
settings (constant lr, clipping at 1.0), fp32, `--threads` torch threads, no vLLM (TRL samples with
`model.generate`, ours with `HFEngine`).

The pairs differ. TRL makes a pair of every prompt: the higher reward is chosen and, on a tie (both
right or both wrong), the first sample, so it also trains on pairs with no preference. Ours keeps
only prompts with one correct and one incorrect sample (`correct_vs_incorrect`, the recipe's rule)
and trains on fewer pairs. The `ours-ties` contender builds pairs as TRL does (our batching,
reference pass and loss), so it does the same training work as TRL.

Runs alternate (ours, ours-ties, TRL, ...). Time per step is the mean over steps 2..N; its split is
sampling (ours: `HFEngine.generate`; TRL: `OnlineDPOTrainer._generate`, wrapped with a timer) and
the rest (scoring, reference and policy passes, optimizer).

    python bench/online_dpo_vs_trl.py --steps 10 --repeats 3
    python bench/online_dpo_vs_trl.py --steps 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from selftaught.recipes.online_rl import OnlineRLConfig, RolloutConfig  # noqa: E402
from selftaught.selection.rollouts import RolloutGroup  # noqa: E402
from selftaught.train.online import rollout_examples  # noqa: E402
from selftaught.train.preference import PairBatch, build_pair_batches  # noqa: E402
from selftaught.train.reference import compute_sequence_logps  # noqa: E402

SAMPLES_PER_PROMPT = 2
"""Fixed by TRL's `OnlineDPOTrainer`."""


def build_config(args: Any) -> OnlineRLConfig:
    """Our online DPO settings at s = 1, from the command line."""
    return OnlineRLConfig(
        loss="dpo",
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
        optim=common.OptimConfig(lr=args.lr, eps=1e-8, max_grad_norm=1.0, schedule="constant"),
        seed=args.seed,
    )


def trl_online_dpo_args(cfg: OnlineRLConfig) -> dict[str, Any]:
    """`OnlineDPOConfig` fields equal to `cfg`."""
    rollouts = cfg.rollouts
    loop = common.LoopConfig(steps=cfg.num_steps, batch_size=rollouts.num_prompts, optim=cfg.optim)
    return dict(
        common.trl_training_args(loop),
        max_new_tokens=rollouts.max_new_tokens,
        temperature=rollouts.temperature,
        top_p=rollouts.top_p,
        top_k=0,
        beta=[cfg.beta],
        loss_type="sigmoid",
    )


def tie_pair_batches(
    cfg: OnlineRLConfig, groups: list[RolloutGroup], reference: Any, tokenizer: Any
) -> tuple[list[PairBatch], dict[str, float]]:
    """`online_rl.build_micro_batches` for DPO with TRL's pairs: every prompt's two samples, the
    higher reward chosen, the first on a tie (TRL: `first_half >= second_half`)."""
    pairs = []
    for group in groups:
        (first, second), (first_reward, second_reward) = group.completions, group.rewards
        assert first_reward is not None and second_reward is not None, "world rewards are never None"
        chosen, rejected = (first, second) if first_reward >= second_reward else (second, first)
        pairs.append(tuple(rollout_examples(tokenizer, group.prompt, [chosen, rejected])))
    sequences = [chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs]
    pad_id, budget = tokenizer.pad_token_id, cfg.micro_batch_tokens
    ref_logps = compute_sequence_logps(reference, sequences, pad_id=pad_id, micro_batch_tokens=budget)
    batches = build_pair_batches(pairs, ref_logps, pad_id=pad_id, micro_batch_tokens=budget)
    return batches, {"num_pairs": len(pairs)}


def generated_prompt_ids(_: tuple, result: Any) -> list[list[int]]:
    """The unpadded prompt ids of `OnlineDPOTrainer._generate`'s result (left-padded [2B, L] + mask)."""
    prompt_ids, prompt_mask = result[0], result[1].bool()
    return [row[mask].tolist() for row, mask in zip(prompt_ids, prompt_mask, strict=True)]


def run_trl(bench: common.OnlineBench) -> common.OnlineRunResult:
    from transformers.trainer_callback import PrinterCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    model = bench.load_model()
    reward_log = common.RewardLog()
    clock = common.StepClock([0] * bench.cfg.num_steps)
    expected = [step + step for step in bench.prompt_ids]  # the prompts, then the prompts again
    check = common.check_prompt_ids(expected, generated_prompt_ids)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        trainer = OnlineDPOTrainer(
            model=model,
            reward_funcs=[reward_log],
            args=OnlineDPOConfig(output_dir=out_dir, **trl_online_dpo_args(bench.cfg)),
            train_dataset=bench.trl_dataset(),
            processing_class=bench.tokenizer,
            callbacks=common.trl_callbacks(clock),
        )
        setup_seconds = time.perf_counter() - start
        trainer.remove_callback(PrinterCallback)
        with common.timed_calls(OnlineDPOTrainer, "_generate", check) as generation_seconds:
            trainer.train()
    return common.trl_online_result(
        clock, generation_seconds, reward_log, bench.cfg.rollouts.num_prompts, setup_seconds
    )


def main() -> None:
    parser = common.online_arg_parser(
        __doc__, batch_size=64, lr=3e-5, contenders=["ours", "ours-ties", "trl"]
    )
    args = parser.parse_args()
    common.setup_torch(args.threads)
    bench = common.OnlineBench(args, build_config(args))
    print(
        f"Online DPO {bench.model_name}: {bench.num_params:,} params, {args.steps} steps x {args.batch_size} "
        f"prompts x {SAMPLES_PER_PROMPT} samples, max {args.max_new_tokens} new tokens, {args.threads} threads, "
        f"load {common.load_average():.1f}"
    )
    runners = {
        "ours": bench.run_ours,
        "ours-ties": lambda: bench.run_ours("ours-ties", tie_pair_batches),
        "trl": lambda: run_trl(bench),
    }
    results = common.run_alternating(
        runners, args.contenders.split(","), args.repeats, describe=common.describe_online
    )
    common.print_online_table(results, baseline="trl")


if __name__ == "__main__":
    main()
