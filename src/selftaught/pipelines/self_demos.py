"""Self-generated demonstrations for RAG (papers_A.md §4.1 steps 3-6): candidates by strategy, a
tournament by a gold-aware judge, and the SFT / DPO / RA-IT training records.

Records are RA-DIT records: `id`, `question`, `answer` (gold) and `retrieved_support` (passages with a
`text`). The candidates come from strategies (`pipelines.rag_candidates`: by default three answers
without passages, `NoRag0..2`, three with them, `Rag0..2`, and three with them and a refuse rule,
`RagRefuse0..2`, at T = 1). The judge sees the gold answer and picks the best candidate of
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
from dataclasses import replace

from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.rag import TOURNAMENT, tournament_values
from selftaught.pipelines.rag_candidates import PASSAGES, with_passages
from selftaught.pipelines.stages import Record
from selftaught.selection.tournament import Chooser, JudgeStats, judge_chooser, run_tournament
from selftaught.types import Message, Prompt

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
