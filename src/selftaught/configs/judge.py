"""J1's section of the online loop's config (`OnlineRLConfig.judge`): which pairs become judge
prompts, in which template and orders, how the judgments are rewarded and how the judge is validated
(papers_B §2; `selftaught.judges.rl`). Inactive while `pairs` is None, so online-rl and divpo runs
are unchanged (the section is left out of their config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selftaught.config import check
from selftaught.types import StrEnum

JUDGE_REWARDS = ("verdict", "scores", "format", "thinking", "consistency", "pointwise_pair")
"""Reward components of `JudgeRLConfig.rewards` (`selftaught.judges.rl.JudgeScorer`)."""


class JudgeOrders(StrEnum):
    """How a pairwise judge sees a pair during training (J1 §2.5, "position-agnostic batches")."""

    BOTH = "both"
    """Both orders in the same step, siblings side by side (chosen as A, then chosen as B)."""
    SINGLE = "single"
    """One order per pair and step, drawn at random (seeded by the run seed, pair and step)."""


@dataclass
class JudgeRLConfig:
    """Judge prompts, rewards and validation of a J1 run (inactive while `pairs` is None)."""

    pairs: str | None = None
    """Training pairs with a known winner: `world:<split>` (tiny-world judge pairs: a correct chain
    against a dropped-carry or off-by-one one) or a `prompt`/`chosen`/`rejected` file. Set: the
    rollouts are judge prompts built from these pairs (instead of `rollouts.prompts`), scored by
    `rewards`, and validation measures the judge (`eval_pairs`)."""
    num_pairs: int = 1024
    """World pairs: distinct train problems in the pool (files: the first this many records)."""
    template: str = "world-pairwise-verdict@1"
    """Versioned judge template (`selftaught.judges.templates`): pairwise verdict, pairwise scores,
    scores + verdict, or pointwise (each pair then gives two prompts, chosen and rejected alone)."""
    orders: JudgeOrders = JudgeOrders.BOTH
    """Pairwise: `both` orders of every pair in the same step (`rollouts.num_prompts` / 2 pairs a
    step) or a `single` random order (`rollouts.num_prompts` pairs): same prompts per step."""
    prompt_style: Literal["chat", "text"] = "chat"
    """`chat`: the template's messages through the model's chat template; `text`: the raw-text
    prompt (`JudgeTemplate.render_text`), for base models."""
    rewards: dict[str, float] = field(default_factory=lambda: {"verdict": 1.0})
    """Weighted reward components (`selftaught.judges.rl`): `verdict` (1 if the verdict names the
    known winner), `scores` (1 if the scores order the pair rightly; a tie is wrong), `format` (1 if
    the answer parses), `thinking` (1 if the judge's own `Answer: N` is the pair's reference answer:
    a reward on the working, tiny world), `consistency` (1 if this sample and the same-index sample of the other
    order are both right), `pointwise_pair` (pointwise: 1 to both halves if chosen's score is above
    rejected's). An unreadable judgment is wrong (0); a sample whose sibling group is missing has
    no `consistency` / `pointwise_pair` value and is not scored (None) when that weight is not 0."""
    eval_pairs: str = "world:valid"
    """Validation pairs (`selftaught.judges.load_judge_pairs`), judged greedily in both orders."""
    eval_num_pairs: int = 200
    eval_max_new_tokens: int = 48
    eval_stop: list[str] = field(default_factory=list)
    """Stop strings of the validation judgments (a base model's few-shot template: a newline)."""

    def __post_init__(self) -> None:
        for name, weight in self.rewards.items():
            check(name in JUDGE_REWARDS, "judge.rewards", f"keys among {', '.join(JUDGE_REWARDS)}", name)
            check(weight == weight, f"judge.rewards.{name}", "a number", weight)
        check(any(self.rewards.values()), "judge.rewards", "at least one non-zero weight", self.rewards)
        for key in ("num_pairs", "eval_num_pairs", "eval_max_new_tokens"):
            check(getattr(self, key) >= 1, f"judge.{key}", ">= 1", getattr(self, key))
        check(self.prompt_style in ("chat", "text"), "judge.prompt_style", "chat or text", self.prompt_style)
