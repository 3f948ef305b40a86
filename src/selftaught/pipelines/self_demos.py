"""Self-generated demonstrations for RAG (papers_A.md §4.1 steps 3-6): candidates by strategy, a
tournament by a gold-aware judge, and the SFT / DPO / RA-IT training records.

Records are RA-DIT records: `id`, `question`, `answer` (gold) and `retrieved_support` (passages with a
`text`). Each strategy is a versioned template and a number of samples: by default three answers
without passages (`NoRag0..2`), three with them (`Rag0..2`) and three with them and a refuse rule
(`RagRefuse0..2`), sampled at T = 1. The judge sees the gold answer and picks the best candidate of
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.rag import TOURNAMENT, tournament_values
from selftaught.pipelines.stages import Record, generate
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


@dataclass(frozen=True)
class Strategy:
    name: str
    """Candidate ids are `<name><k>` (`Rag0`)."""
    template: PromptTemplate
    samples: int = 3


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
    """Each record with `candidates`: `[{"text", "source", "num_tokens"}]`, the samples of every
    strategy in order (`NoRag0`, ..., `RagRefuse2`), one resumable generation stage per strategy
    in `out_dir/<name>`."""
    records = with_passages(records, ndocs)
    pools: list[list[dict[str, Any]]] = [[] for _ in records]
    for k, strategy in enumerate(strategies):
        stage = generate(
            Path(out_dir) / strategy.name,
            records,
            engine,
            strategy.template,
            replace(sampling, n=strategy.samples),
            generator=generator,
            seed=seed * 101 + k,
            desc=f"candidates {strategy.name}",
        )
        for pool, record in zip(pools, stage, strict=True):
            for j, completion in enumerate(record["completions"]):
                pool.append(
                    {
                        "text": completion["text"],
                        "source": f"{strategy.name}{j}",
                        "num_tokens": completion["num_tokens"],
                    }
                )
    return [{**record, "candidates": pool} for record, pool in zip(records, pools, strict=True)]


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
