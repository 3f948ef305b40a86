"""Validation of a judge policy during training (J1): greedy judgments of held-out pairs with known
winners in both orders (pointwise: both halves), as `selftaught eval-judge` measures any model.

Metrics (`val_*`, definitions in `selftaught.judges.metrics`): `accuracy` (mean over the orders),
`accuracy_chosen_first` / `accuracy_chosen_second` (per order), `consistent_accuracy`, `flip_rate`,
`tie_rate`, `unparsed_rate`, `a_rate` (share of A verdicts), `thinking_accuracy` (the judge's own
`Answer: N` equals the reference, tiny world) and `mean_tokens`.
"""

from __future__ import annotations

from typing import Any

from selftaught.configs.judge import JudgeRLConfig
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.judges import build_judge, evaluate_judge, load_judge_pairs
from selftaught.train.parallel import unwrap


def validate_judge(
    model: Any, tokenizer: Any, cfg: JudgeRLConfig, *, batch_size: int = 256, levels: Any = (1, 2, 3)
) -> dict[str, float]:
    """Flat `val_*` judge metrics of the policy on `cfg.eval_pairs` (the first `eval_num_pairs`)."""
    pairs = load_judge_pairs(cfg.eval_pairs, limit=cfg.eval_num_pairs, seed=0, levels=levels)
    engine = HFEngine(unwrap(model), tokenizer, batch_size=batch_size)
    sampling = SamplingParams(
        temperature=0.0, max_new_tokens=cfg.eval_max_new_tokens, stop=list(cfg.eval_stop)
    )
    judge = build_judge(engine, cfg.template, sampling, cfg.prompt_style)
    return evaluate_judge(judge, pairs).flat_metrics("val")
