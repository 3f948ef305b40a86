"""The functions the task YAML files of this directory name (`!function tasks.<name>`).

lm-eval imports this file by path. Prompts, exemplars and answer checks come from selftaught itself
(`selftaught.data.gsm8k`, `selftaught.evals.gsm8k`, `selftaught.evals.sets`), so an lm-eval run and
`selftaught eval` score the same text the same way. Run-time settings arrive as lm-eval's
`--metadata key=value` (merged with `--model_args`, hence the `**_` catch-alls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selftaught.data.gsm8k import EXEMPLARS
from selftaught.evals.gsm8k import extract_number, numbers_equal, reference_answer
from selftaught.evals.sets import load_eval_set
from selftaught.world.arith import is_correct as world_answer_is_correct


def gsm8k_dataset(data_files: str | None = None, **_: Any) -> Any:
    """A GSM8K-format JSONL (`question`, `answer` ending `#### N`) as the task's `test` split."""
    import datasets

    if not data_files:
        raise ValueError(
            "selftaught_gsm8k needs the GSM8K-format JSONL to evaluate on: pass "
            "--metadata data_files=<path/to/test.jsonl>"
        )
    if not Path(data_files).is_file():
        raise ValueError(f"selftaught_gsm8k: --metadata data_files={data_files}: no such file")
    return datasets.load_dataset("json", data_files={"test": str(data_files)})


def gsm8k_fewshot() -> list[dict[str, str]]:
    """The 8 chain-of-thought exemplars of `selftaught eval` (first `--num_fewshot` are used)."""
    return [{"question": q, "target": a} for q, a in EXEMPLARS]


def gsm8k_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """`acc`: `selftaught eval`'s check (first 'The answer is N', else the last number, numerically)."""
    predicted = extract_number(results[0])
    reference = reference_answer(doc["answer"])
    return {"acc": float(predicted is not None and numbers_equal(predicted, reference))}


def world_dataset(
    split: str = "test", per_level: int = 200, levels: Any = (1, 2, 3), seed: int = 0, **_: Any
) -> Any:
    """The tiny world's problems that `selftaught eval --data world:<split> --per-level N --levels L
    --seed S` draws (same order), as a `test` split of `question`, `answer`, `level`."""
    import datasets

    if isinstance(levels, str | int):
        levels = [int(part) for part in str(levels).split(",")]
    eval_set = load_eval_set(f"world:{split}", per_level=int(per_level), levels=list(levels), seed=int(seed))
    records = [
        {"question": p.messages[0]["content"], "answer": p.answer, "level": p.meta["level"]}
        for p in eval_set.prompts
    ]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(records)})


def world_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """`acc`: the tiny world's check (the first `Answer: N` equals the answer)."""
    return {"acc": float(world_answer_is_correct(results[0], doc["answer"]))}
