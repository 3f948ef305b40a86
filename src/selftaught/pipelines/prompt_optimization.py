"""System-prompt optimisation for the RAG self-demos (papers_A.md §4.1 step 2, `prompt_optimization.py`).

A beam search over system prompts, with the model grading its own answers against gold answers:

    prompts = [seed prompt]
    for step in range(steps):
        answer n_train training examples with every prompt (T 0.5; RAG: the user turn holds the passages)
        self-score every answer (`rag-score@1`, strict `Score: d`; no score = 0, and counted)
        keep the topk prompts by mean score
        rewrite each kept prompt beam // topk times: one critique turn per critiqued example, then a
            rewrite turn sampled at T 1.0 (`rag-prompt-critique@1` or, with passages,
            `rag-prompt-critique-rag@1`, then `rag-prompt-rewrite@1`); a leading "Here is ...:" stripped
        prompts = the rewrites
    score every prompt ever produced on n_eval held-out examples; write them best first

Each step is a `run_once` directory (`step-<k>`) and so is the final scoring (`held-out`), so a
killed run resumes at the step it was in; `prompts.jsonl` holds `{prompt, score, num_unparsed, step}`
lines, best first. Everything is a function of the records, the seed and the engines' seeded sampling.

Deviations from the released script (papers_A §4.7), on purpose:
  - the critiqued examples of a prompt are its *lowest*-scoring training answers (the released code
    sorts with `reverse=True` and critiques its best ones), ties in example order, and each critique
    shows that example's own passages (the released code re-orders questions but not contexts);
  - ties between prompts keep the order they were produced in (the released code shuffles first);
  - the last step's rewrites are scored on the held-out examples too (the released loop writes them
    and never scores them); duplicate prompts are scored once;
  - an empty rewrite (nothing left after the lead-in) is counted (`num_empty_rewrites`), not kept.

    optimizer = PromptOptimizer(engine, steps=5, beam=12, topk=5, n_train=30, n_eval=30, user=PASSAGES)
    ranked = optimizer.optimize(run / "prompts-rag", records, seed=0)   # [{"prompt", "score", ...}]
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.data.sources import write_jsonl
from selftaught.data.templates import PromptTemplate, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.rag import SCORE, gold_text, parse_score, passages_text
from selftaught.pipelines.rag_candidates import (
    CLOSED,
    strip_lead_in,
)
from selftaught.pipelines.stages import Record
from selftaught.types import Message, Prompt

SEED_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's question correctly and directly. When the user gives "
    "you passages, use what they say; when you do not know the answer, say so."
)
"""The prompt the search starts from (the paper's `no_rag/system.jinja`, not released)."""

CRITIC_SYSTEM = (
    "You help improve the system prompt of an AI assistant. The assistant's current system prompt is:\n\n"
    "{prompt}\n\nYou will see questions, their gold answers and the assistant's answers."
)
CRITIQUE = register_template(
    PromptTemplate(
        "rag-prompt-critique",
        1,
        system=CRITIC_SYSTEM,
        user=(
            "Question: {question}\n\nGold answer: {answer}\n\nAssistant's answer: {prediction}\n\n"
            "What in the system prompt led to this answer, and what should change so that the answer agrees "
            "with the gold answer? Be brief."
        ),
        slots=("prompt", "question", "answer", "prediction"),
    )
)
"""A critique turn (`iterative/rewrite/{sys,critique}.jinja`)."""
RAG_CRITIQUE = register_template(
    PromptTemplate(
        "rag-prompt-critique-rag",
        1,
        system=CRITIC_SYSTEM,
        user=(
            "Passages:\n{passages}\n\nQuestion: {question}\n\nGold answer: {answer}\n\n"
            "Assistant's answer: {prediction}\n\n"
            "What in the system prompt led to this answer, and what should change so that the answer agrees "
            "with the gold answer and uses the passages well? Be brief."
        ),
        slots=("prompt", "passages", "question", "answer", "prediction"),
    )
)
"""A critique turn that shows the example's passages (`iterative/rewrite/rag_critique.jinja`)."""
REWRITE = register_template(
    PromptTemplate(
        "rag-prompt-rewrite",
        1,
        user=(
            "Using your critiques, rewrite the system prompt so that the assistant's answers agree with the "
            "gold answers. The current system prompt:\n\n{prompt}\n\nReply with the new system prompt only."
        ),
        slots=("prompt",),
    )
)
"""The final turn of a rewrite series (`iterative/rewrite/rewrite.jinja`)."""


@dataclass(frozen=True)
class PromptOptimizer:
    """The paper's `PromptOptimizer(llm, scorer, steps, beam, topk, n_train, n_eval)` (papers_A §4.5)."""

    llm: Engine
    """Answers with each prompt, critiques and rewrites it."""
    scorer: Engine | None = None
    """Scores the answers (`rag-score@1`); None = `llm` itself, as in the paper."""
    steps: int = 5
    beam: int = 12
    """Prompts per step after the first: each kept prompt is rewritten `beam // topk` times."""
    topk: int = 5
    n_train: int = 30
    """Training examples every prompt answers at every step (the same ones throughout)."""
    n_eval: int = 30
    """Held-out examples of the final scoring."""
    user: PromptTemplate = CLOSED
    """The answer's user turn, filled from the record (`CLOSED`: the question; `PASSAGES`: with the
    record's `passages`); the prompt under test is its system turn."""
    rag: bool = False
    """Critique with the example's passages (`RAG_CRITIQUE`); set it with a passage template."""
    sampling: SamplingParams = field(
        default_factory=lambda: SamplingParams(temperature=0.5, max_new_tokens=1000)
    )
    """Answers, scores and critiques (the paper: T 0.5, 1000 tokens)."""
    answer_tokens: int | None = None
    """Cap on an answer's tokens; None = `sampling.max_new_tokens`."""
    rewrite_temperature: float = 1.0
    critiques: int | None = None
    """Examples critiqued per kept prompt; None = `beam // topk` (the released script)."""
    generator: str = "llm"
    """Names the engines' models in the fingerprints (a change recomputes)."""

    def __post_init__(self) -> None:
        for name in ("steps", "topk", "n_train", "n_eval"):
            if getattr(self, name) < 1:
                raise ValueError(f"PromptOptimizer.{name} must be >= 1, got {getattr(self, name)}")
        if self.beam < self.topk:
            raise ValueError(f"PromptOptimizer.beam must be >= topk ({self.topk}), got {self.beam}")
        if self.user.system is not None:
            raise ValueError(f"the answer template {self.user.versioned_name} must have no system turn")

    @property
    def samples(self) -> int:
        return self.beam // self.topk

    def optimize(
        self,
        out_dir: str | os.PathLike[str],
        records: Sequence[Record],
        seed_prompt: str = SEED_SYSTEM_PROMPT,
        *,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Every prompt produced, scored on the held-out examples, best first: `{"prompt", "score",
        "num_unparsed", "step"}` (`step`: the step that first answered with it; the last step's
        rewrites have `step == steps`). Also written to `out_dir/prompts.jsonl`."""
        out = Path(out_dir)
        train, held_out = split_examples(records, self.n_train, self.n_eval, seed)
        prompts, produced = [seed_prompt], {seed_prompt: 0}
        for step in range(self.steps):
            config = self.fingerprint_config("step", step, prompts, train, seed)
            result = run_once(
                out / f"step-{step}",
                compute_fingerprint(config),
                partial(self.step, prompts, train, step, seed),
            )
            prompts = [r["prompt"] for r in result["rewrites"]]
            for prompt in prompts:
                produced.setdefault(prompt, step + 1)
            if not prompts:
                print(f"prompt optimisation: no rewrite at step {step}; stopping", flush=True)
                break
        everything = list(produced)
        config = self.fingerprint_config("held-out", self.steps, everything, held_out, seed)
        scored = run_once(
            out / "held-out",
            compute_fingerprint(config),
            lambda: {"prompts": self.score_prompts(everything, held_out, seed * 1_000 + self.steps)[0]},
        )["prompts"]
        ranked = sorted(({**s, "step": produced[s["prompt"]]} for s in scored), key=lambda s: -s["score"])
        write_jsonl(out / "prompts.jsonl", ranked)
        return ranked

    def step(self, prompts: list[str], train: list[Record], step: int, seed: int) -> dict[str, Any]:
        """One step: score `prompts` on `train`, keep the top `topk`, rewrite each `beam // topk` times."""
        call_seed = seed * 1_000 + step
        scored, example_scores = self.score_prompts(prompts, train, call_seed)
        kept = sorted(range(len(prompts)), key=lambda i: -scored[i]["score"])[: self.topk]
        rewrites = self.rewrite(
            [prompts[i] for i in kept], train, [example_scores[i] for i in kept], call_seed
        )
        texts = [strip_lead_in(text) for text in rewrites]
        return {
            "prompts": scored,
            "kept": kept,
            "rewrites": [
                {"prompt": text, "parent": kept[n // self.samples]} for n, text in enumerate(texts) if text
            ],
            "num_empty_rewrites": sum(not text for text in texts),
        }

    def score_prompts(
        self, prompts: list[str], examples: list[Record], seed: int
    ) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """Per prompt `{"prompt", "score", "num_unparsed"}` (mean self-score over `examples`, an
        unparsed score counted as 0) and its per-example `{"prediction", "score"}` (None unparsed)."""
        asked = [
            Prompt(f"{p}|{example['id']}", self.answer_messages(prompt, example))
            for p, prompt in enumerate(prompts)
            for example in examples
        ]
        answers = self.llm.generate(asked, self.answer_sampling(seed))
        predictions = [found[0].text for found in answers]
        graded = [
            SCORE.render(
                f"{n}|score",
                {"question": example["question"], "answer": gold_text(example), "prediction": prediction},
            )
            for n, (example, prediction) in enumerate(zip(examples * len(prompts), predictions, strict=True))
        ]
        replies = (self.scorer or self.llm).generate(graded, replace(self.sampling, n=1, seed=seed))
        scores = [parse_score(found[0].text) for found in replies]
        per_prompt, rows = [], []
        for p, prompt in enumerate(prompts):
            own = slice(p * len(examples), (p + 1) * len(examples))
            values = scores[own]
            rows.append(
                [{"prediction": t, "score": v} for t, v in zip(predictions[own], values, strict=True)]
            )
            per_prompt.append(
                {
                    "prompt": prompt,
                    "score": sum(v or 0 for v in values) / len(values),
                    "num_unparsed": sum(v is None for v in values),
                }
            )
        return per_prompt, rows

    def rewrite(
        self, prompts: list[str], examples: list[Record], rows: list[list[dict[str, Any]]], seed: int
    ) -> list[str]:
        """`beam // topk` rewrites of each prompt, in prompt order: a conversation per prompt with one
        critique turn per critiqued example (its lowest-scoring ones), then the rewrite turn."""
        critique = RAG_CRITIQUE if self.rag else CRITIQUE
        chosen = [critiqued(row, self.critiques or self.samples) for row in rows]
        conversations: list[list[Message]] = [[] for _ in prompts]
        for turn in range(max(map(len, chosen), default=0)):
            ask = []
            for p, prompt in enumerate(prompts):
                example = examples[chosen[p][turn]]
                values = {
                    "prompt": prompt,
                    "question": example["question"],
                    "answer": gold_text(example),
                    "prediction": rows[p][chosen[p][turn]]["prediction"],
                    **({"passages": passages_text(example)} if self.rag else {}),
                }
                messages = critique.render_messages(values)
                conversations[p] += messages if turn == 0 else messages[-1:]
                ask.append(Prompt(f"{p}|critique-{turn}", list(conversations[p])))
            replies = self.llm.generate(ask, replace(self.sampling, n=1, seed=seed * 10 + turn))
            for p, found in enumerate(replies):
                conversations[p].append({"role": "assistant", "content": found[0].text})
        final = [
            Prompt(f"{p}|rewrite", [*conversations[p], *REWRITE.render_messages({"prompt": prompt})])
            for p, prompt in enumerate(prompts)
        ]
        sampling = replace(self.sampling, n=self.samples, temperature=self.rewrite_temperature, seed=seed)
        return [completion.text for found in self.llm.generate(final, sampling) for completion in found]

    def answer_messages(self, prompt: str, example: Record) -> list[Message]:
        """The system prompt under test, then the `user` turn of the example."""
        user = self.user.render_messages({slot: example[slot] for slot in self.user.slots})
        return [{"role": "system", "content": prompt}, *user]

    def answer_sampling(self, seed: int) -> SamplingParams:
        """One answer per prompt, capped at `answer_tokens`."""
        tokens = self.sampling.max_new_tokens if self.answer_tokens is None else self.answer_tokens
        return replace(self.sampling, n=1, seed=seed, max_new_tokens=tokens)

    def fingerprint_config(
        self, stage: str, step: int, prompts: list[str], examples: list[Record], seed: int
    ) -> dict[str, Any]:
        templates = (self.user, CRITIQUE, RAG_CRITIQUE, REWRITE, SCORE)
        return {
            "stage": f"prompt-optimization/{stage}",
            "step": step,
            "prompts": prompts,
            "examples": examples,
            "seed": seed,
            "templates": [[t.versioned_name, t.system, t.user] for t in templates],
            "settings": [self.topk, self.beam, self.rag, self.critiques, self.rewrite_temperature],
            "sampling": vars(self.sampling),
            "answer_tokens": self.answer_tokens,
            "generator": self.generator,
        }


def critiqued(row: list[dict[str, Any]], num: int) -> list[int]:
    """The `num` examples with the lowest scores (unparsed = 0), ties in example order."""
    return sorted(range(len(row)), key=lambda i: row[i]["score"] or 0)[:num]


def split_examples(
    records: Sequence[Record], n_train: int, n_eval: int, seed: int
) -> tuple[list[Record], list[Record]]:
    """`n_train` training and `n_eval` held-out examples, disjoint, drawn from `records` with `seed`
    (a ValueError when there are fewer than `n_train + n_eval`)."""
    if len(records) < n_train + n_eval:
        raise ValueError(
            f"prompt optimisation needs n_train + n_eval = {n_train + n_eval} examples, got {len(records)}: "
            "lower n_train / n_eval or give more records"
        )
    chosen = random.Random(f"prompt-optimization|{seed}").sample(range(len(records)), n_train + n_eval)
    return [records[i] for i in chosen[:n_train]], [records[i] for i in chosen[n_train:]]


def top_prompts(ranked: Sequence[dict[str, Any]], num: int) -> tuple[str, ...]:
    """The texts of the `num` best prompts of `PromptOptimizer.optimize` (all when fewer)."""
    return tuple(entry["prompt"] for entry in ranked[:num])
