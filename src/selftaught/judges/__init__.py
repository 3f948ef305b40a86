"""LLM judges (layer L3): versioned templates, strict parsers, both-order metrics, judge-as-reward.

`PairwiseJudge` / `PointwiseJudge` run a `JudgeTemplate` (`templates.TEMPLATES`, e.g.
`j1-pairwise-verdict@1`) on any `Engine` and return `Judgment` records; `evaluate_judge` measures a
judge on pairs with known winners in both orders (`selftaught eval-judge`); `pointwise_judge_reward`
and `pairwise_judge_reward` turn a judge into a TRL-signature reward function.
"""

from selftaught.judges.evaluate import JudgeEvalResult, evaluate_judge, load_judge_pairs, pairs_from_records
from selftaught.judges.judge import (
    PairJudgments,
    PairwiseJudge,
    PointwiseJudge,
    build_judge,
    majority_verdict,
    mean_scores,
)
from selftaught.judges.metrics import JudgeMetrics, compute_pairwise_metrics, compute_pointwise_metrics
from selftaught.judges.parsers import Parsed
from selftaught.judges.reward import pairwise_judge_reward, pointwise_judge_reward
from selftaught.judges.templates import TEMPLATES, JudgeKind, JudgeTemplate, get_template

__all__ = [
    "TEMPLATES",
    "JudgeEvalResult",
    "JudgeKind",
    "JudgeMetrics",
    "JudgeTemplate",
    "PairJudgments",
    "PairwiseJudge",
    "Parsed",
    "PointwiseJudge",
    "build_judge",
    "compute_pairwise_metrics",
    "compute_pointwise_metrics",
    "evaluate_judge",
    "get_template",
    "load_judge_pairs",
    "majority_verdict",
    "mean_scores",
    "pairs_from_records",
    "pairwise_judge_reward",
    "pointwise_judge_reward",
]
