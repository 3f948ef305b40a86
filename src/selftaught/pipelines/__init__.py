"""Pipelines (layer L5): records -> records stages that synthetic-data recipes compose.

Each stage is a resumable `data.shards.run_stage` directory: `generate` (a versioned template per
record, N samples from any engine), `parse` (a strict parser, failures kept as None and counted),
`sample_pairs` (offline DPO pairs: samples, any TRL reward function, any pair rule); and in-memory
helpers `filter_records` and `select_records` that count what they leave out.
"""

from selftaught.pipelines.pairs import sample_pairs, score_samples
from selftaught.pipelines.stages import (
    filter_records,
    generate,
    parse,
    sample_shard,
    select_records,
    shard_seed,
)

__all__ = [
    "filter_records",
    "generate",
    "parse",
    "sample_pairs",
    "sample_shard",
    "score_samples",
    "select_records",
    "shard_seed",
]
