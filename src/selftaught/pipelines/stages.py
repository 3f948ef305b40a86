"""Records -> records stages of synthetic-data pipelines: generate, parse; filter and select helpers.

A record is a JSON dict with an `id` and whatever fields earlier stages gave it (a document, a
question, a reference answer). The stages that call a model or a parser run through
`data.shards.run_stage`, so each one is a resumable directory of shards with a manifest written
last, and a rerun with the same inputs and configuration reads it back:

    questions = generate(run / "questions", docs, teacher, get_template("nr-question@1"), sampling,
                         generator="llama-70b", seed=0)
    questions, counts = parse(run / "parsed", questions, parse_question, parser_name="nr-question@1")
    kept, counts = filter_records(questions, lambda r: r["parsed"][0] is not None)

Nothing is dropped silently: `parse` keeps every record and writes None for an output it could not
parse; `filter_records` and `select_records` return counts of what they left out.

Executors: every stage takes `executor` (None or "local": this process; "ray": the same shard
function mapped over Ray Data, see `data/executors.py`); the stage directory is the same either way.
With Ray, the engine travels to the workers: give it an `OpenAIEngine` (over a fleet of servers),
which pickles as its config, rather than a live HF model.

Sampling seeds: the shard whose first input has index i samples with seed `seed * 1_000_003 + i`
(`shard_seed`), so a stage's samples are a function of its inputs and seed, however it is
interrupted and resumed; `sampling.seed` is replaced by it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from selftaught.data.executors import Executor
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import Engine, SamplingParams
from selftaught.types import Completion, Prompt

Record = dict[str, Any]
Parser = Callable[[str], Any]
"""Text -> a JSON-serialisable value, or None when the text does not have the expected form."""


def shard_seed(seed: int, first_index: int) -> int:
    """Sampling seed of the shard whose first input is input `first_index` of a stage seeded `seed`."""
    return seed * 1_000_003 + first_index


def sample_shard(
    engine: Engine, prompts: list[Prompt], sampling: SamplingParams, seed: int, first_index: int
) -> list[list[Completion]]:
    """`engine.generate` on one shard's prompts with the shard's seed (`shard_seed`)."""
    return engine.generate(prompts, replace(sampling, seed=shard_seed(seed, first_index)))


def generate(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    engine: Engine,
    template: PromptTemplate,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
    raw: bool = False,
    output_field: str = "completions",
    shard_size: int = 256,
    desc: str = "generate",
    executor: str | Executor | None = None,
) -> list[Record]:
    """Each record with `sampling.n` completions of `template` rendered on it, as a stage in `out_dir`.

    The template's slots are filled from the record's fields of the same names, and the prompt id is
    the record's `id`; `raw` prompts base models with the template's raw-text form. A completion is
    stored as `{"text", "finish_reason", "num_tokens"}` (token ids and logprobs are left out: data
    stages keep text, and the token count for cost accounting). The record gains `output_field`
    and `provenance[output_field]` = `{"template", "generator", "seed"}` (the shard's sampling seed).
    `generator` names the model (a weights fingerprint or a name that identifies it): it is part
    of the stage's fingerprint with the template, the sampling, the seed and the records.
    """
    values = [_slot_values(record, template, index) for index, record in enumerate(records)]

    def run_shard(chunk: list[tuple[int, Record, dict[str, Any]]]) -> list[Record]:
        prompts = [template.render(str(record["id"]), slots, raw=raw) for _, record, slots in chunk]
        samples = sample_shard(engine, prompts, sampling, seed, chunk[0][0])
        made = {
            "template": template.versioned_name,
            "generator": generator,
            "seed": shard_seed(seed, chunk[0][0]),
        }
        return [
            {
                **record,
                output_field: [_stored_completion(c) for c in completions],
                "provenance": {**record.get("provenance", {}), output_field: made},
            }
            for (_, record, _), completions in zip(chunk, samples, strict=True)
        ]

    config = {
        "stage": "generate",
        "template": [template.versioned_name, template.system, template.user, template.text],
        "generator": generator,
        "seed": seed,
        "sampling": vars(sampling),
        "raw": raw,
        "output_field": output_field,
        "records": list(records),
    }
    inputs = [
        (index, record, slots) for index, (record, slots) in enumerate(zip(records, values, strict=True))
    ]
    meta = {"template": template.versioned_name, "generator": generator, "seed": seed}
    return run_stage(
        out_dir,
        inputs,
        run_shard,
        shard_size=shard_size,
        fingerprint=compute_fingerprint(config),
        meta=meta,
        desc=desc,
        executor=executor,
    )


def parse(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    parser: Parser,
    *,
    parser_name: str,
    field: str = "completions",
    output_field: str = "parsed",
    shard_size: int = 1024,
    desc: str = "parse",
    executor: str | Executor | None = None,
) -> tuple[list[Record], dict[str, float]]:
    """Every record with `output_field`: `parser` applied to the text of each completion in `field`
    (None where it could not parse), as a stage in `out_dir`; and counts.

    No record is dropped: a parse failure is data. `parser_name` identifies the parser and its
    version in the stage's fingerprint (functions cannot be hashed). Counts: `num_records`,
    `num_outputs`, `num_unparsed` (None outputs), `num_records_unparsed` (records with no output
    parsed).
    """
    for index, record in enumerate(records):
        _require_field(record, field, index, "parse")

    def run_shard(chunk: list[Record]) -> list[Record]:
        return [{**record, output_field: [parser(c["text"]) for c in record[field]]} for record in chunk]

    config = {"stage": "parse", "parser": parser_name, "field": field, "output_field": output_field}
    fingerprint = compute_fingerprint({**config, "records": list(records)})
    parsed = run_stage(
        out_dir,
        list(records),
        run_shard,
        shard_size=shard_size,
        fingerprint=fingerprint,
        meta=config,
        desc=desc,
        executor=executor,
    )
    outputs = [record[output_field] for record in parsed]
    counts: dict[str, float] = {
        "num_records": len(parsed),
        "num_outputs": sum(len(values) for values in outputs),
        "num_unparsed": sum(value is None for values in outputs for value in values),
        "num_records_unparsed": sum(all(value is None for value in values) for values in outputs),
    }
    return parsed, counts


def filter_records(
    records: Sequence[Record], keep: Callable[[Record], bool]
) -> tuple[list[Record], dict[str, float]]:
    """The records `keep` accepts, in order, and counts `num_records`, `num_kept`, `num_dropped`."""
    kept = [record for record in records if keep(record)]
    return kept, {"num_records": len(records), "num_kept": len(kept), "num_dropped": len(records) - len(kept)}


def select_records(
    records: Sequence[Record],
    num: int,
    *,
    key: Callable[[Record], float] | None = None,
    seed: int = 0,
) -> tuple[list[Record], dict[str, float]]:
    """`num` records (all when there are fewer): the `num` highest `key` values (ties: earlier
    record first), or, without `key`, a uniform random subset drawn with `seed`. The selection
    keeps input order. Counts: `num_records`, `num_selected`, `num_left_out`.
    """
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if key is None:
        chosen = random.Random(seed).sample(range(len(records)), min(num, len(records)))
    else:
        chosen = sorted(range(len(records)), key=lambda i: -key(records[i]))[:num]
    selected = [records[i] for i in sorted(chosen)]
    return selected, {
        "num_records": len(records),
        "num_selected": len(selected),
        "num_left_out": len(records) - len(selected),
    }


def _slot_values(record: Record, template: PromptTemplate, index: int) -> dict[str, Any]:
    for name in ("id", *template.slots):
        _require_field(record, name, index, f"template {template.versioned_name}")
    return {slot: record[slot] for slot in template.slots}


def _require_field(record: Record, name: str, index: int, user: str) -> None:
    if name not in record:
        raise ValueError(f"record {index} has no field {name!r}, which {user} needs; it has {sorted(record)}")


def _stored_completion(completion: Completion) -> Record:
    return {
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "num_tokens": completion.num_tokens,
    }
