"""The tiny world (layer L1): procedurally generated tasks with exact answers, and its tokenizer.

`arith` has multi-step arithmetic problems with several solution strategies and a buggy teacher.
`tokenizer.build_tokenizer` trains the world's byte-level BPE in memory. It is imported from its
own module, because it needs `transformers`.
"""

from selftaught.world.arith import (
    SPLITS,
    STRATEGIES,
    Problem,
    extract_answer,
    is_correct,
    sample_eval_set,
    sample_problems,
    sample_sft_examples,
    solve,
    split_of,
    to_prompt,
    to_sft_example,
)

__all__ = [
    "SPLITS",
    "STRATEGIES",
    "Problem",
    "extract_answer",
    "is_correct",
    "sample_eval_set",
    "sample_problems",
    "sample_sft_examples",
    "solve",
    "split_of",
    "to_prompt",
    "to_sft_example",
]
