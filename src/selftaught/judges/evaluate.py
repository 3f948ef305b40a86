"""Judge evaluation on preference pairs with known winners: the logic of `selftaught eval-judge`.

Pairs come from the tiny world (`world:<split>`: correct vs wrong solutions, `world.judge_pairs`) or
from any file with `prompt` / `chosen` / `rejected` columns (TRL's preference format, standard or
conversational). A pairwise judge sees every pair in both orders, a pointwise judge scores both
responses; `selftaught.judges.metrics` turns the verdicts into accuracy and position-bias metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from selftaught.data.formats import gsm8k_preference_records, trl_prompt
from selftaught.data.gsm8k import is_gsm8k_record
from selftaught.data.sources import read_records, require_columns
from selftaught.evals.sets import world_split
from selftaught.judges.judge import PairwiseJudge, PointwiseJudge, mean_scores
from selftaught.judges.metrics import (
    JudgeMetrics,
    compute_pairwise_metrics,
    compute_pointwise_metrics,
    rewardbench_pointwise_scores,
    rewardbench_scores,
)
from selftaught.judges.parsers import own_answer
from selftaught.types import Completion, Judgment, Pair
from selftaught.world.judge_pairs import sample_judge_pairs, to_pair
from selftaught.world.list_tasks import NEGATIVES, sample_list_pairs
from selftaught.world.list_tasks import to_preference_record as to_list_record

WORLD_PREFIX = "world:"
LISTS_PREFIX = "world-lists:"
"""`world-lists:<split>[:<negative>]`: the list tasks' pairs (`world.list_tasks`), near-miss
(`modified_instruction`, the default) or `random_corruption` negatives."""
DEFAULT_NUM_WORLD_PAIRS = 300
PAIR_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass
class JudgeEvalResult:
    """What `selftaught eval-judge` prints and writes."""

    template: str
    metrics: JudgeMetrics
    seconds: float
    num_judgments: int
    """Judge outputs sampled: pairs x 2 (orders, or chosen and rejected) x k samples."""
    mean_tokens: float
    """Mean generated tokens per judgment (0 for engines that return no token ids)."""
    truncated_rate: float
    """Share of judgments that hit `max_new_tokens` (`finish_reason == "length"`)."""
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Per pair: `id`, the per-order verdicts (or mean scores) and every judgment as a dict."""
    thinking_accuracy: float | None = None
    """Share of judgments whose own answer (`own_answer`: the recomputed `Answer: N`, or the list
    judge's computed output) equals the pair's reference answer; None when the pairs have none."""
    accuracy_when_thinking_right: float | None = None
    """Verdict accuracy of the judgments whose own answer is right: near 1 when the verdict follows
    the thinking, near the overall accuracy when it ignores it; None when no such judgment."""
    rewardbench: dict[str, float] = field(default_factory=dict)
    """RewardBench-style scores (`judges.metrics.rewardbench_scores`): one shuffled order per pair,
    a tie or unreadable verdict = 0.5, the mean per section (a pair's `section` column, else `all`)
    and `overall`, the mean of the sections."""

    def flat_metrics(self, prefix: str = "val") -> dict[str, float]:
        """The metrics as flat `<prefix>_<name>` numbers for `metrics.jsonl` (None ones left out)."""
        metrics = {
            f"{prefix}_{name}": float(value)
            for name, value in vars(self.metrics).items()
            if value is not None and name != "num_pairs"
        }
        metrics[f"{prefix}_mean_tokens"] = self.mean_tokens
        for name in ("thinking_accuracy", "accuracy_when_thinking_right"):
            if (value := getattr(self, name)) is not None:
                metrics[f"{prefix}_{name}"] = value
        metrics |= {f"{prefix}_rewardbench_{section}": value for section, value in self.rewardbench.items()}
        return metrics


def load_judge_pairs(
    data: str, *, limit: int | None = None, seed: int = 0, levels: Sequence[int] = (1, 2, 3)
) -> list[Pair]:
    """`world:<split>` (`limit` pairs, default 300, of `levels`), `world-lists:<split>[:<negative>]`
    (`limit` list-task pairs), a preference file (its first `limit` records), or a GSM8K file
    (`question` / `answer`: answer-mismatch pairs, the reference solution against the same solution
    with a wrong final number, `data.formats.gsm8k_preference_records`, seeded by `seed`)."""
    if data.startswith(LISTS_PREFIX):
        return list_task_pairs(data, limit or DEFAULT_NUM_WORLD_PAIRS, seed)
    if data.startswith(WORLD_PREFIX):
        split = world_split(data)
        return [to_pair(p) for p in sample_judge_pairs(split, limit or DEFAULT_NUM_WORLD_PAIRS, levels, seed)]
    records = read_records(data, limit=limit)
    if records and is_gsm8k_record(records[0]):
        records = [
            {**r, "id": f"gsm8k-{r['meta']['source_index']}", "answer": r["meta"]["answer"]}
            for r in gsm8k_preference_records(records, seed, data)
        ]
    return pairs_from_records(records, data)


def list_task_pairs(data: str, num: int, seed: int) -> list[Pair]:
    """`world-lists:<split>[:<negative>]` as `Pair`s whose reference answer is the right output (the
    list judge's thinking is its computed output, `own_answer`); `meta` holds the instruction and
    the negative, which is also the section."""
    split, _, negative = data.removeprefix(LISTS_PREFIX).partition(":")
    negative = negative or "modified_instruction"
    if negative not in NEGATIVES:
        raise ValueError(f"{data}: the negative must be one of {', '.join(NEGATIVES)}, got {negative!r}")
    records = [to_list_record(p) for p in sample_list_pairs(split, num, negative, seed)]
    return [
        replace(pair, prompt=replace(pair.prompt, answer=pair.chosen.text))
        for pair in pairs_from_records(records, data)
    ]


def pairs_from_records(records: list[dict[str, Any]], source: str) -> list[Pair]:
    """`Pair`s from TRL preference records: `prompt` as text or messages, `chosen` / `rejected` as text
    or a list ending with the assistant turn. Other columns go to `Pair.meta`."""
    require_columns(records, PAIR_COLUMNS, source)
    pairs = []
    for index, record in enumerate(records):
        where = f"{source}: record {index}"
        prompt = replace(trl_prompt(record["prompt"], index, where), id=str(record.get("id", index)))
        chosen, rejected = (
            _response(record[column], f"{where} column {column!r}") for column in PAIR_COLUMNS[1:]
        )
        meta = {k: v for k, v in record.items() if k not in PAIR_COLUMNS}
        pairs.append(Pair(prompt, Completion(prompt.id, chosen), Completion(prompt.id, rejected), meta))
    return pairs


def _response(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and value
        and isinstance(value[-1], dict)
        and value[-1].get("role") == "assistant"
    ):
        return str(value[-1].get("content", ""))
    raise ValueError(
        f"{where} must be a string or a list of messages ending with an assistant turn, got {value!r:.120}"
    )


def evaluate_judge(judge: PairwiseJudge | PointwiseJudge, pairs: Sequence[Pair]) -> JudgeEvalResult:
    """Judge every pair (both orders, or both responses pointwise) and compute the metrics."""
    if not pairs:
        raise ValueError("evaluate_judge got no pairs")
    start = time.perf_counter()
    if isinstance(judge, PairwiseJudge):
        metrics, rows, rewardbench = _evaluate_pairwise(judge, pairs)
    else:
        metrics, rows, rewardbench = _evaluate_pointwise(judge, pairs)
    seconds = time.perf_counter() - start
    judgments = [j for row in rows for key in ("first", "second") for j in row[key]]
    return JudgeEvalResult(
        template=judge.template.name,
        metrics=metrics,
        seconds=seconds,
        num_judgments=len(judgments),
        mean_tokens=sum(j["meta"]["num_tokens"] for j in judgments) / len(judgments),
        truncated_rate=sum(j["meta"]["finish_reason"] == "length" for j in judgments) / len(judgments),
        rows=rows,
        thinking_accuracy=thinking_accuracy(pairs, rows),
        accuracy_when_thinking_right=(
            accuracy_when_thinking_right(pairs, rows) if isinstance(judge, PairwiseJudge) else None
        ),
        rewardbench=rewardbench,
    )


def accuracy_when_thinking_right(pairs: Sequence[Pair], rows: Sequence[dict[str, Any]]) -> float | None:
    """Pairwise verdict accuracy among the judgments whose own answer (`own_answer`) is the reference
    (`first` rows show chosen as A, `second` as B); None without such judgments or references."""
    outcomes = [
        judgment["verdict"] == winner
        for pair, row in zip(pairs, rows, strict=True)
        if pair.prompt.answer is not None
        for key, winner in (("first", "A"), ("second", "B"))
        for judgment in row[key]
        if own_answer(judgment["raw"]) == str(pair.prompt.answer).strip()
    ]
    return sum(outcomes) / len(outcomes) if outcomes else None


def thinking_accuracy(pairs: Sequence[Pair], rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of the judgments whose own answer (`own_answer`) equals their pair's reference (the
    judge recomputed the problem right); None when a pair has no reference answer."""
    if any(pair.prompt.answer is None for pair in pairs):
        return None
    checks = [
        own_answer(judgment["raw"]) == str(pair.prompt.answer).strip()
        for pair, row in zip(pairs, rows, strict=True)
        for key in ("first", "second")
        for judgment in row[key]
    ]
    return sum(checks) / len(checks) if checks else None


def section_of(pair: Pair) -> str:
    """A pair's RewardBench section: its `section` column, else `all`."""
    return str(pair.meta.get("section", "all"))


def _evaluate_pairwise(
    judge: PairwiseJudge, pairs: Sequence[Pair]
) -> tuple[JudgeMetrics, list[dict[str, Any]], dict[str, float]]:
    """Rows: `first` = chosen shown as A, `second` = chosen shown as B."""
    results = judge.judge_both_orders(
        [p.prompt for p in pairs], [p.chosen.text for p in pairs], [p.rejected.text for p in pairs]
    )
    verdicts = [result.verdicts() for result in results]
    rows = [
        _row(pair, {"verdicts": list(v)}, result.original, result.swapped)
        for pair, v, result in zip(pairs, verdicts, results, strict=True)
    ]
    sections = [section_of(pair) for pair in pairs]
    rewardbench = rewardbench_scores(verdicts, [str(row["id"]) for row in rows], sections)
    return compute_pairwise_metrics(verdicts), rows, rewardbench


def _evaluate_pointwise(
    judge: PointwiseJudge, pairs: Sequence[Pair]
) -> tuple[JudgeMetrics, list[dict[str, Any]], dict[str, float]]:
    """Rows: `first` = the judgments of chosen, `second` = those of rejected."""
    prompts = [p.prompt for p in pairs]
    judgments = judge.score(
        prompts + prompts, [p.chosen.text for p in pairs] + [p.rejected.text for p in pairs]
    )
    chosen, rejected = judgments[: len(pairs)], judgments[len(pairs) :]
    chosen_scores, rejected_scores = [_mean_score(js) for js in chosen], [_mean_score(js) for js in rejected]
    rows = [
        _row(pair, {"scores": [c, r]}, cj, rj)
        for pair, c, r, cj, rj in zip(pairs, chosen_scores, rejected_scores, chosen, rejected, strict=True)
    ]
    sections = [section_of(pair) for pair in pairs]
    rewardbench = rewardbench_pointwise_scores(chosen_scores, rejected_scores, sections)
    return compute_pointwise_metrics(chosen_scores, rejected_scores), rows, rewardbench


def _mean_score(judgments: list[Judgment]) -> float | None:
    scores = mean_scores(judgments)
    return None if scores is None else scores[0]


def _row(
    pair: Pair, outcome: dict[str, Any], first: list[Judgment], second: list[Judgment]
) -> dict[str, Any]:
    pair_id = pair.meta.get("id", pair.prompt.id)
    return {
        "id": pair_id,
        **outcome,
        "first": [j.to_dict() for j in first],
        "second": [j.to_dict() for j in second],
    }
