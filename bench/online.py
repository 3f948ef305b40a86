"""The online RL benchmarks (`grpo_vs_trl.py`, `online_dpo_vs_trl.py`): a step is sampling + scoring
+ one update.

Ours is the `online-rl` recipe's own `run(cfg)` at s = 1, clocked at its loop's step boundaries
(`timing.recipe_clock`), with `HFEngine.generate` timed for the split between sampling and the
rest; eval, checkpoints and per-step logging are off. TRL runs its trainer, clocked by a callback,
with its sampling call wrapped in a timer. Both read the same prompt file: ours in the recipe's
seeded order, TRL in that order, without shuffling.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import add_model_options, at_least, load_average
from peers import RewardLog
from timing import StepClock, recipe_clock, timed_calls
from workloads import SHAPES, InitialWeights, gsm8k_records, release_tokenizer, world_records, write_records

from selftaught.data.chat import encode_prompt
from selftaught.engines.hf import HFEngine
from selftaught.models.policy import LoraConfig
from selftaught.recipes import online_rl
from selftaught.recipes.online_rl import OnlineRLConfig, TaskConfig
from selftaught.rewards import math_answer_reward, world_answer_reward
from selftaught.selection.pairs import GroupPairs
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.loop import EvalConfig
from selftaught.train.objectives import Objective
from selftaught.train.precision import Precision
from selftaught.train.rollouts import build_rollout_source
from selftaught.types import Pair

FIRST_ON_TIE_RULE = "online:first_on_tie_pair_rule"
"""Our pair-rule spec (`TaskConfig.pair_rule`) for TRL's online DPO pairs (`first_on_tie_pair_rule`)."""


def online_arg_parser(doc: str, batch_size: int, lr: float, contenders: list[str]) -> argparse.ArgumentParser:
    """The options both online RL benchmarks share; all `contenders` run by default."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--init",
        default="student",
        choices=("student", "random"),
        help="initial weights: the cached tiny-world student (xs, trained on first use), or --shape at random",
    )
    parser.add_argument("--shape", default="xs", choices=SHAPES, help="with --init random")
    parser.add_argument("--steps", type=at_least(2), default=10, help="the first step is not timed")
    parser.add_argument("--batch-size", type=at_least(1), default=batch_size, help="prompts per step")
    parser.add_argument("--max-new-tokens", type=at_least(1), default=48, help="TRL: max completion length")
    parser.add_argument("--repeats", type=at_least(1), default=3)
    parser.add_argument("--lr", type=float, default=lr, help="constant learning rate (both sides)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="model init (--init random), prompts, sampling")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="ours: micro_batch_tokens, the padded-token budget of a micro-batch (default: one)",
    )
    parser.add_argument(
        "--contenders", default=",".join(contenders), help="comma-separated, in run order (default: all)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one run of each contender, steps 2.. under the torch profiler: time per region and top ops",
    )
    add_model_options(parser)
    return parser


@dataclass
class OnlineRunResult:
    """One timed online RL run of one contender; means are over steps 2..N (step 1 pays one-off
    allocations)."""

    name: str
    step_seconds: list[float]
    """Wall time of each step: sampling, scoring, reference and policy passes, the update."""
    generation_seconds: list[float]
    """The sampling part of each step (ours: `HFEngine.generate`; TRL: its wrapped generate call)."""
    rewards: list[float]
    """Mean reward of each step's samples."""
    num_trained: list[int]
    """Sequences (GRPO) or pairs (DPO) in each step's update."""
    setup_seconds: float
    """Untimed: ours, what `run` does before its first step (model loading, the generator and
    reference copies); TRL, its trainer construction (its reference model, dataset)."""
    load: float
    """One-minute load average, the larger of before and after the run."""
    peak_rss: int = 0
    """Bytes: the whole run's peak RSS, when the run had a process of its own (`isolated`)."""
    train_peak_rss: int = 0
    """Bytes: the peak RSS from the start of the training loop, when the run had a process of its own."""

    @property
    def seconds_per_step(self) -> float:
        return statistics.mean(self.step_seconds[1:])

    @property
    def generation_per_step(self) -> float:
        return statistics.mean(self.generation_seconds[1:])

    @property
    def rest_per_step(self) -> float:
        """Everything but sampling: scoring, batching, reference and policy passes, optimizer."""
        return self.seconds_per_step - self.generation_per_step


class OnlineBench:
    """What the contenders of an online RL benchmark share: the initial weights, our config, the
    prompt file, and each step's prompts (`RolloutSource.step_prompts`) with their token ids."""

    def __init__(self, args: argparse.Namespace, cfg: OnlineRLConfig) -> None:
        self.args = args
        num_prompts = cfg.num_steps * cfg.rollouts.num_prompts
        self.reward = world_answer_reward
        if args.model:
            self.weights = InitialWeights.named(args.model)
            records = gsm8k_records(num_prompts)
            cfg, self.reward = real_model_config(cfg, args), math_answer_reward
        else:
            self.weights = (
                InitialWeights.student()
                if args.init == "student"
                else InitialWeights.random(args.shape, args.seed)
            )
            records = world_records("world:prompts", num_prompts, args.seed)
        self.tokenizer = self.weights.tokenizer
        self._data_dir = tempfile.TemporaryDirectory(prefix="online-bench-")
        prompt_file = write_records(records, Path(self._data_dir.name) / "prompts.jsonl")
        self.cfg = replace(
            cfg,
            model=self.weights.path,
            rollouts=replace(cfg.rollouts, prompts=prompt_file),
            eval=EvalConfig(every=-1),
            checkpoint_every=0,
            log_every=cfg.num_steps,
        )
        source = build_rollout_source(self.cfg.rollouts, self.cfg.tasks, None, seed=self.cfg.seed)
        self.prompts = [source.step_prompts(step) for step in range(1, cfg.num_steps + 1)]
        self.prompt_ids = [[encode_prompt(self.tokenizer, p) for p in step] for step in self.prompts]

    def run_ours(self, name: str = "ours", pair_rule: str | None = None) -> OnlineRunResult:
        """`online_rl.run` from the initial weights in a fresh run directory (`pair_rule`: every
        task's DPO pair rule instead of the config's)."""
        cfg = self.cfg
        if pair_rule is not None:
            cfg = replace(cfg, tasks=[replace(task, pair_rule=pair_rule) for task in cfg.tasks])
        release_tokenizer(self)
        profile = self.args.profile
        clock = StepClock([0] * cfg.num_steps, name if profile else None)
        label = "forward: policy (+ a LoRA policy's reference pass)" if profile else None
        with tempfile.TemporaryDirectory() as out_dir, recipe_clock(clock, label) as recipe:
            with timed_calls(
                HFEngine, "generate", region="sampling" if profile else None
            ) as generation_seconds:
                start = time.perf_counter()
                online_rl.run(replace(cfg, out_dir=out_dir))
        count = "num_pairs" if cfg.loss == Objective.DPO else "num_sequences"
        return OnlineRunResult(
            name,
            clock.step_seconds,
            generation_seconds,
            [m["reward"] for m in recipe.step_metrics],
            [int(m[count]) for m in recipe.step_metrics],
            recipe.started - start,
            load_average(),
        )

    def trl_dataset(self) -> Any:
        """Every step's prompts in order, as TRL's `prompt` (raw text, or conversational) + the
        `answer` column."""
        from datasets import Dataset

        return Dataset.from_list(
            [
                {"prompt": p.messages if p.text is None else p.text, "answer": p.answer}
                for step in self.prompts
                for p in step
            ]
        )

    def reward_log(self) -> RewardLog:
        """TRL's reward function: the one our tasks score with, its mean per call logged."""
        return RewardLog(self.reward)


def real_model_config(cfg: OnlineRLConfig, args: argparse.Namespace) -> OnlineRLConfig:
    """`cfg` for a real model (`--model`) on GSM8K train prompts, as the `gemma3-270m-grpo` preset:
    1-shot raw-text prompts, the math answer reward; `--lora` and `--precision`. No stop strings
    (TRL's `generate` call has none): both sides sample until EOS or `max_new_tokens`.
    `--activation-checkpointing`: ours only."""
    return replace(
        cfg,
        tasks=[TaskConfig(name="gsm8k", reward="math_answer")],
        rollouts=replace(cfg.rollouts, num_shots=1, stop=[]),
        lora=LoraConfig(r=args.lora, alpha=2 * args.lora) if args.lora else LoraConfig(),
        precision=Precision(args.precision),
        activation_checkpointing=args.activation_checkpointing,
    )


def first_on_tie_pair_rule(group: RolloutGroup, rng: random.Random) -> GroupPairs:
    """A pair rule (`TaskConfig.pair_rule`, as `FIRST_ON_TIE_RULE`) that pairs a prompt's two samples
    as TRL's online DPO does: the higher reward chosen, the first on a tie (`first_half >=
    second_half`), so also pairs with no preference."""
    (first, second), (first_reward, second_reward) = group.completions, group.rewards
    if first_reward is None or second_reward is None:
        raise ValueError("first_on_tie_pair_rule: world rewards are never None")
    chosen, rejected = (first, second) if first_reward >= second_reward else (second, first)
    return GroupPairs([Pair(group.prompt, chosen, rejected, {"rule": "first_on_tie"})])


def trl_online_result(
    clock: StepClock,
    generation_seconds: list[float],
    reward_log: RewardLog,
    num_trained: int,
    setup_seconds: float,
) -> OnlineRunResult:
    """TRL's run as an `OnlineRunResult`: step times from `clock` (`peers.trl_callbacks`), one sampling
    time and one reward call per step, `num_trained` units in every update."""
    step_seconds = clock.step_seconds
    assert len(step_seconds) == len(generation_seconds) == len(reward_log.means), "one generate per step"
    return OnlineRunResult(
        "trl",
        step_seconds,
        generation_seconds,
        reward_log.means,
        [num_trained] * len(step_seconds),
        setup_seconds,
        load_average(),
    )


def describe_online(result: OnlineRunResult) -> str:
    """`harness.run_alternating`'s line for an online RL run: time per step and its sampling part."""
    return f"{result.seconds_per_step:.3f} s/step, generation {result.generation_per_step:.3f} s"


def print_online_table(results: Sequence[OnlineRunResult], baseline: str) -> None:
    """Per contender, medians over repeats: s/step, its sampling and non-sampling parts, trained
    units per step, the reward of the last step (and of the first); then each ratio to `baseline`."""
    names = list(dict.fromkeys(r.name for r in results))
    runs = {n: [r for r in results if r.name == n] for n in names}

    def median(name: str, metric: str) -> float:
        return statistics.median(getattr(r, metric) for r in runs[name])

    peak = {n: max(r.peak_rss for r in runs[n]) / 2**30 for n in names}
    train_peak = {n: max(r.train_peak_rss for r in runs[n]) / 2**30 for n in names}
    print(
        f"{'contender':<16}{'s/step':>8}{'gen s':>8}{'rest s':>8}{'gen %':>7}{'trained':>9}{'setup s':>9}"
        f"{'reward 1st':>11}{'last':>6}{'peak GiB':>9}{'train':>6}{'load':>6}   s/step of each run"
    )
    for name in names:
        step, gen, rest = (
            median(name, m) for m in ("seconds_per_step", "generation_per_step", "rest_per_step")
        )
        last = runs[name][-1]
        print(
            f"{name:<16}{step:>8.3f}{gen:>8.3f}{rest:>8.3f}{gen / step:>7.0%}"
            f"{statistics.mean(last.num_trained):>9.1f}{last.setup_seconds:>9.2f}"
            f"{last.rewards[0]:>11.3f}{last.rewards[-1]:>6.3f}{peak[name]:>9.2f}{train_peak[name]:>6.2f}"
            f"{max(r.load for r in runs[name]):>6.1f}   "
            + " ".join(f"{r.seconds_per_step:.3f}" for r in runs[name])
        )
    for name in names:
        if baseline in names and name != baseline:
            ratios = [
                median(name, m) / median(baseline, m)
                for m in ("seconds_per_step", "generation_per_step", "rest_per_step")
            ]
            memory = f", {peak[name] / peak[baseline]:.2f}x peak RSS" if peak[baseline] else ""
            print(
                f"ratio {name} / {baseline}: {ratios[0]:.2f}x time per step "
                f"(generation {ratios[1]:.2f}x, rest {ratios[2]:.2f}x){memory}"
            )
