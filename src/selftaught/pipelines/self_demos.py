"""Self-generated demonstrations for RAG (papers_A.md §4.1 steps 3-6): candidates by strategy, a
tournament by a gold-aware judge, and the SFT / DPO / RA-IT training records.

Records are RA-DIT records: `id`, `question`, `answer` (gold) and `retrieved_support` (passages with a
`text`). Each strategy is a versioned template and a number of samples: by default three answers
without passages (`NoRag0..2`), three with them (`Rag0..2`) and three with them and a refuse rule
(`RagRefuse0..2`), sampled at T = 1. A strategy may carry system prompts, one per sample index (the
paper's top-3 optimised prompts, `pipelines.prompt_optimization`; the text is recorded on each
candidate as `system_prompt`), and a follow-up turn (`SUMMARIZE`: the reply is turned into a final
answer in a second turn, the candidate's text is that answer with a leading "Here is ...:" stripped,
and the first reply is kept as `first_turn`). The judge sees the gold answer and picks the best candidate of
each bracket (`selection.tournament`): a programmatic one, or an LLM over `rag-tournament@1`
(`llm_chooser_for`, template in `judges.rag`), whose unparsed replies are counted; the winner becomes the SFT target for the question *with its
passages in context* (also when a no-passage strategy wrote it: that is how retrievals get integrated
into on-distribution answers), and DPO pairs it against every losing candidate with a different text.
The RA-IT baseline trains on the gold answers instead, in whatever style the user gives them.

    candidates = generate_candidates(run / "candidates", records, engine, STRATEGIES, sampling, ...)
    judged, counts = judge_candidates(run / "tournament", candidates, llm_chooser_for(engine, sampling),
                                      judge="template:rag-tournament@1", seed=0)
    sft, dpo = self_demo_records(judged)
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate, escape_braces, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.rag import TOURNAMENT, tournament_values
from selftaught.pipelines.stages import Record, generate, sample_shard
from selftaught.selection.tournament import Chooser, JudgeStats, judge_chooser, run_tournament
from selftaught.types import Message, Prompt

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


ChooserFor = Callable[[Record, JudgeStats], Chooser]
"""`chooser_for(record, stats)`: the tournament judge of one question, counting its replies in `stats`."""
JUDGE_COUNTS = ("judge_replies", "judge_unparsed", "judge_failed")
"""The LLM judge's counts per judged record (`JudgeStats.calls`, `.unparsed`, `.failed`)."""


def llm_chooser_for(
    engine: Engine,
    sampling: SamplingParams,
    *,
    template: PromptTemplate = TOURNAMENT,
    retries: int = 5,
) -> ChooserFor:
    """The gold-aware LLM judge of papers_A §4.1 step 4 as a `chooser_for` for `judge_candidates`:
    for a bracket, `template` (`rag-tournament@1`) is rendered from the record (question, gold answer,
    first 4 passages) and the bracket's candidate texts in bracket order, one reply is sampled
    (attempt `a` with seed `sampling.seed + a`, so a retry samples anew at temperature > 0) and read
    with `parse_best`, up to `retries` more times (`judge_chooser`)."""

    def chooser_for(record: Record, stats: JudgeStats) -> Chooser:
        texts = [c["text"] for c in record["candidates"]]

        def ask(indices: list[int], attempt: int) -> str:
            values = tournament_values(record, [texts[i] for i in indices])
            prompt_id = f"{record['id']}|bracket-{'-'.join(map(str, indices))}"
            prompt = Prompt(prompt_id, template.render_messages(values))
            asked = replace(sampling, n=1, seed=sampling.seed + attempt)
            return engine.generate([prompt], asked)[0][0].text

        return judge_chooser(ask, retries=retries, stats=stats)

    return chooser_for


def judge_candidates(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    chooser_for: ChooserFor,
    *,
    judge: str,
    seed: int,
    bracket_size: int = 3,
) -> tuple[list[Record], dict[str, int]]:
    """Every record with `winner` (the candidate index, None when dropped), `winner_source`,
    `prediction` (the winner's text), `judge_calls` (brackets judged) and the LLM judge's
    `judge_replies`, `judge_unparsed` and `judge_failed` (its `JudgeStats`, 0 for a programmatic
    judge), as a resumable stage; and their sums (`num_records`, `num_dropped`, `num_judge_calls`,
    `num_judge_replies`, `num_judge_unparsed`, `num_judge_failed`). `chooser_for(record, stats)`
    gives the judge of one question (`selection.tournament.preference_chooser` from gold-aware
    scores, or `llm_chooser_for` over an LLM, which counts into `stats`); `judge` names it in the
    stage's fingerprint. The bracket order of each question is shuffled by a generator keyed by
    (seed, record id)."""

    def run_shard(chunk: list[Record]) -> list[Record]:
        out = []
        for record in chunk:
            texts = [c["text"] for c in record["candidates"]]
            stats = JudgeStats()
            result = run_tournament(
                texts,
                chooser_for(record, stats),
                rng=random.Random(f"tournament|{seed}|{record['id']}"),
                bracket_size=bracket_size,
            )
            winner = result.winner
            out.append(
                {
                    **record,
                    "winner": winner,
                    "winner_source": None if winner is None else record["candidates"][winner]["source"],
                    "prediction": None if winner is None else texts[winner],
                    "judge_calls": result.judge_calls,
                    "judge_replies": stats.calls,
                    "judge_unparsed": stats.unparsed,
                    "judge_failed": stats.failed,
                }
            )
        return out

    config = {
        "stage": "tournament",
        "judge": judge,
        "seed": seed,
        "bracket_size": bracket_size,
        "records": list(records),
    }
    judged = run_stage(
        out_dir,
        list(records),
        run_shard,
        shard_size=256,
        fingerprint=compute_fingerprint(config),
        desc="tournament",
    )
    counts = {
        "num_records": len(judged),
        "num_dropped": sum(r["winner"] is None for r in judged),
        "num_judge_calls": sum(r["judge_calls"] for r in judged),
        **{f"num_{key}": sum(r.get(key, 0) for r in judged) for key in JUDGE_COUNTS},
    }
    return judged, counts


def rag_input(record: Record, template: PromptTemplate = PASSAGES) -> list[Message]:
    """The user turn a trained model gets: the question after its passages (`record["passages"]`)."""
    return template.render_messages({"question": record["question"], "passages": record["passages"]})


def self_demo_records(records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """SFT conversations (RAG input -> the winner) and DPO pairs (the winner against every losing
    candidate whose text differs, TRL's `prompt` / `chosen` / `rejected`), from judged records;
    dropped questions give neither."""
    sft, dpo = [], []
    for record in records:
        if record.get("winner") is None:
            continue
        prompt = rag_input(record)
        chosen = record["prediction"]
        sft.append({"id": record["id"], "messages": [*prompt, {"role": "assistant", "content": chosen}]})
        losers = dict.fromkeys(c["text"] for c in record["candidates"] if c["text"] != chosen)
        for k, rejected in enumerate(losers):
            dpo.append(
                {
                    "id": f"{record['id']}-{k}",
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
    return sft, dpo


def ra_it_records(
    records: Sequence[Record], style: Callable[[Record], str] = lambda r: str(r["answer"])
) -> list[Record]:
    """The RA-IT baseline's SFT conversations: RAG input -> the gold answer written by `style` (the
    tiny world uses a fixed verbose template the model never produces: the paper's out-of-distribution
    gold targets), for every question, also those neither the passages nor the model can answer."""
    return [
        {
            "id": record["id"],
            "messages": [*rag_input(record), {"role": "assistant", "content": style(record)}],
        }
        for record in with_passages(records)
    ]
