"""Self-generated demonstrations for RAG (papers_A.md §4.1 steps 3-6): candidates by strategy, a
tournament by a gold-aware judge, and the SFT / DPO / RA-IT training records.

Records are RA-DIT records: `id`, `question`, `answer` (gold) and `retrieved_support` (passages with a
`text`). The candidates come from strategies (`pipelines.rag_candidates`: by default three answers
without passages, `NoRag0..2`, three with them, `Rag0..2`, and three with them and a refuse rule,
`RagRefuse0..2`, at T = 1). The judge sees the gold answer and picks the best candidate of
each bracket (`selection.tournament`): a programmatic one (`per_question`), or an LLM over
`rag-tournament@1` (`llm_tournament_judge`, template in `judges.rag`), whose unparsed replies are
counted. The tournaments of a shard's questions run round by round (`run_tournaments`): an LLM judge
answers every bracket of a round in one batched generate call, and retries only the replies that did
not parse, in one call per attempt. The winner becomes the SFT target for the question *with its
passages in context* (also when a no-passage strategy wrote it: that is how retrievals get integrated
into on-distribution answers), and DPO pairs it against every losing candidate with a different text.
The RA-IT baseline trains on the gold answers instead, in whatever style the user gives them.

    candidates = generate_candidates(run / "candidates", records, engine, STRATEGIES, sampling, ...)
    judged, counts = judge_candidates(run / "tournament", candidates, llm_tournament_judge(engine, sampling),
                                      judge="template:rag-tournament@1", seed=0)
    sft, dpo = self_demo_records(judged)
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.rag import TOURNAMENT, tournament_values
from selftaught.pipelines.rag_candidates import PASSAGES, with_passages
from selftaught.pipelines.stages import Record
from selftaught.selection.tournament import (
    Chooser,
    JudgeStats,
    RoundChooser,
    parse_best,
    run_tournaments,
)
from selftaught.types import Message, Prompt

ChooserFor = Callable[[Record, JudgeStats], Chooser]
"""`chooser_for(record, stats)`: the tournament judge of one question, counting its replies in `stats`."""
RoundChooserFor = Callable[[Sequence[Record], list[JudgeStats]], RoundChooser]
"""`judge_for(records, stats)`: the tournament judge of a shard's questions, a round of brackets at a
time (`selection.tournament.RoundChooser`, question q = `records[q]`), counting question q's replies
in `stats[q]`."""
JUDGE_COUNTS = ("judge_replies", "judge_unparsed", "judge_failed")
"""The LLM judge's counts per judged record (`JudgeStats.calls`, `.unparsed`, `.failed`)."""


def per_question(chooser_for: ChooserFor) -> RoundChooserFor:
    """A round judge from the judge of one question (a programmatic one, which needs no batching):
    each question's chooser is built once per shard and asked its brackets in round order."""

    def judge_for(records: Sequence[Record], stats: list[JudgeStats]) -> RoundChooser:
        choosers = [chooser_for(record, s) for record, s in zip(records, stats, strict=True)]
        return lambda asks: [choosers[q](indices) for q, indices in asks]

    return judge_for


def llm_tournament_judge(
    engine: Engine,
    sampling: SamplingParams,
    *,
    template: PromptTemplate = TOURNAMENT,
    retries: int = 5,
) -> RoundChooserFor:
    """The gold-aware LLM judge of papers_A §4.1 step 4, batched over a round: for each bracket,
    `template` (`rag-tournament@1`) is rendered from its record (question, gold answer, first 4
    passages) and the bracket's candidate texts in bracket order; every bracket of the round is asked
    in one `engine.generate` call, its reply read with `parse_best`, and the brackets whose reply did
    not parse are asked again together, up to `retries` more times (attempt `a` samples with seed
    `sampling.seed + a`), then None. Samples are keyed per prompt (`per_prompt_seeds`; the prompt id
    names the record and the bracket), so a bracket's reply does not depend on the other brackets of
    the call. Counts every reply, unparsed reply and failed bracket into its question's `JudgeStats`."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")

    def judge_for(records: Sequence[Record], stats: list[JudgeStats]) -> RoundChooser:
        def choose_round(asks: list[tuple[int, list[int]]]) -> list[int | None]:
            prompts = [bracket_prompt(records[q], indices, template) for q, indices in asks]
            positions: list[int | None] = [None] * len(asks)
            pending = list(range(len(asks)))
            for attempt in range(retries + 1):
                if not pending:
                    break
                asked = replace(sampling, n=1, seed=sampling.seed + attempt, per_prompt_seeds=True)
                replies = engine.generate([prompts[i] for i in pending], asked)
                for i, completions in zip(pending, replies, strict=True):
                    q, indices = asks[i]
                    positions[i] = parse_best(completions[0].text, len(indices))
                    stats[q].calls += 1
                    stats[q].unparsed += positions[i] is None
                pending = [i for i in pending if positions[i] is None]
            for i in pending:
                stats[asks[i][0]].failed += 1
            return positions

        return choose_round

    return judge_for


def bracket_prompt(record: Record, indices: list[int], template: PromptTemplate = TOURNAMENT) -> Prompt:
    """The judge's prompt for one bracket of `record`'s candidates (`indices`, in bracket order)."""
    values = tournament_values(record, [record["candidates"][i]["text"] for i in indices])
    return Prompt(f"{record['id']}|bracket-{'-'.join(map(str, indices))}", template.render_messages(values))


def tournament_rng(seed: int, record_id: object) -> random.Random:
    """The generator that shuffles one question's candidates (keyed by the seed and the record id, so
    a question's brackets do not depend on the other questions or on sharding)."""
    return random.Random(f"tournament|{seed}|{record_id}")


def judge_candidates(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    judge_for: RoundChooserFor,
    *,
    judge: str,
    seed: int,
    bracket_size: int = 3,
) -> tuple[list[Record], dict[str, int]]:
    """Every record with `winner` (the candidate index, None when dropped), `winner_source`,
    `prediction` (the winner's text), `judge_calls` (brackets judged) and the LLM judge's
    `judge_replies`, `judge_unparsed` and `judge_failed` (its `JudgeStats`, 0 for a programmatic
    judge), as a resumable stage; and their sums (`num_records`, `num_dropped`, `num_judge_calls`,
    `num_judge_replies`, `num_judge_unparsed`, `num_judge_failed`). `judge_for(records, stats)`
    gives the judge of a shard's questions, one round of brackets at a time (`per_question` over a
    `selection.tournament.preference_chooser` from gold-aware scores, or `llm_tournament_judge`, one
    batched generate call per round and retry, which counts into `stats`); `judge` names it in the
    stage's fingerprint. The bracket order of each question is shuffled by a generator keyed by
    (seed, record id), `tournament_rng`."""

    def run_shard(chunk: list[Record]) -> list[Record]:
        texts = [[c["text"] for c in record["candidates"]] for record in chunk]
        stats = [JudgeStats() for _ in chunk]
        results = run_tournaments(
            texts,
            judge_for(chunk, stats),
            rngs=[tournament_rng(seed, record["id"]) for record in chunk],
            bracket_size=bracket_size,
        )
        out = []
        for record, candidates, result, counted in zip(chunk, texts, results, stats, strict=True):
            winner = result.winner
            out.append(
                {
                    **record,
                    "winner": winner,
                    "winner_source": None if winner is None else record["candidates"][winner]["source"],
                    "prediction": None if winner is None else candidates[winner],
                    "judge_calls": result.judge_calls,
                    "judge_replies": counted.calls,
                    "judge_unparsed": counted.unparsed,
                    "judge_failed": counted.failed,
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
    records: Sequence[Record], style: Callable[[Record], str] = lambda r: str(r["answer"]), ndocs: int = 4
) -> list[Record]:
    """The RA-IT baseline's SFT conversations: RAG input (the first `ndocs` passages, as the
    self-demos see them) -> the gold answer written by `style` (the tiny world uses a fixed verbose
    template the model never produces: the paper's out-of-distribution gold targets), for every
    question, also those neither the passages nor the model can answer."""
    return [
        {
            "id": record["id"],
            "messages": [*rag_input(record), {"role": "assistant", "content": style(record)}],
        }
        for record in with_passages(records, ndocs)
    ]
