"""Candidates of the RAG self-demos (papers_A.md §4.1 step 3): strategies, their samples, the
summarize turn.

Records are RA-DIT records: `id`, `question`, `answer` (gold) and `retrieved_support` (passages with a
`text`). Each strategy is a versioned template and a number of samples: by default three answers
without passages (`NoRag0..2`), three with them (`Rag0..2`) and three with them and a refuse rule
(`RagRefuse0..2`), sampled at T = 1. A strategy may carry system prompts, one per sample index (the
paper's top-3 optimised prompts, `pipelines.prompt_optimization`; the text is recorded on each
candidate as `system_prompt`), and a follow-up turn (`SUMMARIZE`: the reply is turned into a final
answer in a second turn, the candidate's text is that answer with a leading "Here is ...:" stripped,
and the first reply is kept as `first_turn`). Every generation is a resumable stage.

    strategies = [replace(s, systems=best_prompts[s.name], follow_up=SUMMARIZE) for s in STRATEGIES[:2]]
    candidates = generate_candidates(run / "candidates", records, engine, strategies, sampling,
                                     generator="llama-70b", seed=0)
    candidates[0]["candidates"][0]    # {"text", "source": "NoRag0", "num_tokens", "system_prompt", "first_turn"}
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate, escape_braces, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.pipelines.stages import Record, generate, sample_shard
from selftaught.types import Prompt

CLOSED = register_template(PromptTemplate("rag-closed", 1, user="{question}", slots=("question",)))
"""A question without passages (the no-RAG strategy)."""
PASSAGES = register_template(
    PromptTemplate(
        "rag-passages", 1, user="Passages: {passages} Question: {question}", slots=("question", "passages")
    )
)
"""A question after its passages (the RAG strategy, and the input every trained model sees)."""
REFUSE = register_template(
    PromptTemplate(
        "rag-refuse",
        1,
        user="Passages: {passages} Question: {question} If the passages do not say, answer unknown.",
        slots=("question", "passages"),
    )
)
"""The refuse strategy: the RAG prompt with a rule that asks to abstain when the passages do not say."""
SUMMARIZE = register_template(
    PromptTemplate(
        "rag-summarize",
        1,
        user=(
            "Now write the final answer to my question from your reply above: short, direct and only what "
            "your reply supports. If your reply did not find the answer, say that you do not know."
        ),
        slots=(),
    )
)
"""The follow-up turn of every strategy in the paper (`summarize.jinja`, not released): the reply
becomes a final user-facing answer."""
LEAD_IN = re.compile(r"\s*(?:Here is|Here's)\b[^:\n]*:\s*", re.IGNORECASE)


def strip_lead_in(text: str) -> str:
    """`text` without a leading "Here is ...:" / "Here's ...:" on its first line and without quotes
    around the rest (the paper's parse of a summary or a rewritten prompt); other text as it is,
    stripped.

    >>> strip_lead_in('Here is the final answer: "Oslo"'), strip_lead_in("Oslo: a city")
    ('Oslo', 'Oslo: a city')
    """
    match = LEAD_IN.match(text)
    if match is None:
        return text.strip()
    rest = text[match.end() :].strip()
    return rest[1:-1].strip() if len(rest) >= 2 and rest[0] == rest[-1] == '"' else rest


@dataclass(frozen=True)
class Strategy:
    name: str
    """Candidate ids are `<name><k>` (`Rag0`)."""
    template: PromptTemplate
    samples: int = 3
    systems: tuple[str, ...] = ()
    """System prompts, one per sample index: sample j is sampled with `systems[j % len(systems)]`
    as its system turn (the paper's top-3 optimised prompts); () = the template as it is."""
    follow_up: PromptTemplate | None = None
    """A second user turn after the reply (`SUMMARIZE`); None = one turn."""

    def __post_init__(self) -> None:
        if self.systems and self.template.system is not None:
            raise ValueError(
                f"strategy {self.name}: template {self.template.versioned_name} has a system turn of its "
                "own; give system prompts only to a template without one"
            )
        if self.follow_up is not None and self.follow_up.slots:
            raise ValueError(
                f"strategy {self.name}: the follow-up turn {self.follow_up.versioned_name} must be a fixed "
                f"text, it has slots {list(self.follow_up.slots)}"
            )

    def sample_template(self, j: int) -> PromptTemplate:
        """The template of sample j: with `systems[j % len(systems)]` as its system turn when set."""
        if not self.systems:
            return self.template
        return replace(self.template, system=escape_braces(self.systems[j % len(self.systems)]))


STRATEGIES = (Strategy("NoRag", CLOSED), Strategy("Rag", PASSAGES), Strategy("RagRefuse", REFUSE))
"""The paper's pool: three samples of each strategy."""


def with_passages(records: Sequence[Record], ndocs: int = 4) -> list[Record]:
    """Each record with a `passages` slot: the text of its first `ndocs` `retrieved_support` passages,
    joined by spaces (a ValueError naming the record when it has none)."""
    out = []
    for index, record in enumerate(records):
        support = record.get("retrieved_support")
        if not isinstance(support, list) or not all(isinstance(p, dict) and "text" in p for p in support):
            raise ValueError(
                f"record {index} (id {record.get('id')!r}) needs `retrieved_support`: a list of passages with "
                "a `text` (attach them with selftaught.retrieval.attach_passages)"
            )
        out.append({**record, "passages": " ".join(p["text"] for p in support[:ndocs])})
    return out


def generate_candidates(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    engine: Engine,
    strategies: Sequence[Strategy],
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
    ndocs: int = 4,
) -> list[Record]:
    """Each record with `candidates`: `[{"text", "source", "num_tokens"}]` (plus `system_prompt`
    for a strategy with system prompts and `first_turn` for one with a follow-up turn), the samples
    of every strategy in order (`NoRag0`, ..., `RagRefuse2`), as resumable stages in `out_dir`: one
    generation stage per strategy (`<name>`), or per sample index when it has system prompts
    (`<name><j>`), and its follow-up turns (`<name>-follow-up`)."""
    records = with_passages(records, ndocs)
    pools: list[list[dict[str, Any]]] = [[] for _ in records]
    for k, strategy in enumerate(strategies):
        candidates = strategy_candidates(
            Path(out_dir), records, engine, strategy, sampling, generator=generator, seed=seed * 101 + k
        )
        for pool, found in zip(pools, candidates, strict=True):
            pool.extend(found)
    return [{**record, "candidates": pool} for record, pool in zip(records, pools, strict=True)]


def strategy_candidates(
    out_dir: Path,
    records: list[Record],
    engine: Engine,
    strategy: Strategy,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
) -> list[list[dict[str, Any]]]:
    """Per record, the candidates of one strategy (`generate_candidates`)."""
    if strategy.systems:
        stages = [
            generate(
                out_dir / f"{strategy.name}{j}",
                records,
                engine,
                strategy.sample_template(j),
                replace(sampling, n=1),
                generator=generator,
                seed=seed * 1009 + j,
                desc=f"candidates {strategy.name}{j}",
            )
            for j in range(strategy.samples)
        ]
        replies = [[stage[i]["completions"][0] for stage in stages] for i in range(len(records))]
    else:
        stage = generate(
            out_dir / strategy.name,
            records,
            engine,
            strategy.template,
            replace(sampling, n=strategy.samples),
            generator=generator,
            seed=seed,
            desc=f"candidates {strategy.name}",
        )
        replies = [record["completions"] for record in stage]
    candidates = [
        [
            {
                "text": completion["text"],
                "source": f"{strategy.name}{j}",
                "num_tokens": completion["num_tokens"],
                **(
                    {"system_prompt": strategy.systems[j % len(strategy.systems)]} if strategy.systems else {}
                ),
            }
            for j, completion in enumerate(completions)
        ]
        for completions in replies
    ]
    if strategy.follow_up is None:
        return candidates
    return follow_up_candidates(
        out_dir / f"{strategy.name}-follow-up",
        records,
        candidates,
        engine,
        strategy,
        sampling,
        generator=generator,
        seed=seed,
    )


def follow_up_candidates(
    out_dir: Path,
    records: list[Record],
    candidates: list[list[dict[str, Any]]],
    engine: Engine,
    strategy: Strategy,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
) -> list[list[dict[str, Any]]]:
    """The candidates after the strategy's follow-up turn, asked of each first reply in its own
    conversation (one sample each, a resumable stage): `text` is the second reply with a leading
    "Here is ...:" stripped (`strip_lead_in`), `first_turn` the first reply, `num_tokens` both."""
    assert strategy.follow_up is not None
    follow_up = strategy.follow_up.render_messages({})
    conversations = [
        {
            "id": f"{record['id']}|{candidate['source']}",
            "messages": [
                *strategy.sample_template(j).render_messages({s: record[s] for s in strategy.template.slots}),
                {"role": "assistant", "content": candidate["text"]},
                *follow_up,
            ],
        }
        for record, found in zip(records, candidates, strict=True)
        for j, candidate in enumerate(found)
    ]

    def run_shard(chunk: list[tuple[int, Record]]) -> list[Record]:
        prompts = [Prompt(conversation["id"], conversation["messages"]) for _, conversation in chunk]
        replies = sample_shard(engine, prompts, replace(sampling, n=1), seed, chunk[0][0])
        return [
            {"id": conversation["id"], "text": found[0].text, "num_tokens": found[0].num_tokens}
            for (_, conversation), found in zip(chunk, replies, strict=True)
        ]

    config = {
        "stage": "follow-up",
        "template": [strategy.follow_up.versioned_name, strategy.follow_up.user],
        "generator": generator,
        "seed": seed,
        "sampling": vars(replace(sampling, n=1)),
        "conversations": conversations,
    }
    meta = {"template": strategy.follow_up.versioned_name, "generator": generator, "seed": seed}
    replies = run_stage(
        out_dir,
        list(enumerate(conversations)),
        run_shard,
        shard_size=256,
        fingerprint=compute_fingerprint(config),
        meta=meta,
        desc=f"follow-up {strategy.name}",
    )
    finished, position = [], 0
    for found in candidates:
        finished.append([followed_up(c, replies[position + j]) for j, c in enumerate(found)])
        position += len(found)
    return finished


def followed_up(candidate: dict[str, Any], reply: Record) -> dict[str, Any]:
    """A candidate whose text is its follow-up `reply`'s parsed answer, the first reply kept."""
    return {
        **candidate,
        "text": strip_lead_in(reply["text"]),
        "first_turn": candidate["text"],
        "num_tokens": candidate["num_tokens"] + reply["num_tokens"],
    }
