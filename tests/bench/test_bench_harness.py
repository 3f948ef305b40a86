"""The benchmarks' own plumbing (`bench/`): they time the recipes' `run`, so a change of the loop
helpers they hook into must fail here rather than in the next benchmark run."""

import random
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the bench scripts import their modules by name

import online  # noqa: E402
import timing  # noqa: E402
import workloads  # noqa: E402

from selftaught.recipes import sft  # noqa: E402
from selftaught.selection.rollouts import RolloutGroup  # noqa: E402
from selftaught.train import loop  # noqa: E402
from selftaught.train.loop import EvalConfig  # noqa: E402
from selftaught.train.optim import OptimConfig  # noqa: E402
from selftaught.train.supervised import rank_indices  # noqa: E402
from selftaught.types import Completion, Prompt  # noqa: E402


def test_step_order_is_the_sft_recipes_order():
    order = workloads.step_order(num_steps=3, batch_size=5, num_examples=12, seed=7)
    assert order == [i for step in (1, 2, 3) for i in rank_indices(step, 5, 12, 7)]


def test_recipe_clock_ticks_at_every_step_of_a_recipe_run(tiny_model_dir, tmp_path):
    cfg = sft.SFTConfig(
        out_dir=str(tmp_path / "run"),
        model=tiny_model_dir,
        num_steps=3,
        batch_size=4,
        micro_batch_tokens=0,
        checkpoint_every=0,
        eval=EvalConfig(every=-1),
        data=sft.SFTDataConfig(num_examples=16),
        optim=OptimConfig(lr=1e-3, schedule="constant"),
    )
    original_start, original_end = loop.start, loop.end_of_step
    clock = timing.StepClock([1, 1, 1])
    with timing.recipe_clock(clock) as recipe:
        sft.run(cfg)
    assert clock.num_steps == 3 and len(clock.step_seconds) == 3
    assert len(recipe.losses) == 3 and recipe.model is not None
    assert recipe.started == clock.ends[0]
    assert (loop.start, loop.end_of_step) == (original_start, original_end)  # unpatched on exit


def test_first_on_tie_pair_rule_pairs_every_prompt_as_trl_does():
    prompt = Prompt("p", [{"role": "user", "content": "1+1="}])
    first, second = Completion("p", "a"), Completion("p", "b")
    for rewards, chosen in [([0.0, 0.0], first), ([1.0, 1.0], first), ([0.0, 1.0], second)]:
        pairs = online.first_on_tie_pair_rule(
            RolloutGroup(prompt, [first, second], rewards), random.Random(0)
        )
        assert [(p.chosen, p.rejected) for p in pairs.pairs] == [
            (chosen, second if chosen is first else first)
        ]
