"""NaturalReasoning's unsupervised self-training data (papers_A.md §1.3 C): N samples per question
from the policy, scored without labels, then the best sample (RFT) or best vs worst (DPO).

Scorers of one question's samples (None = could not score, counted):

    majority        the final answers' majority vote (`selection.consistency`): samples that carry
                    the majority answer score 1, the others 0, unparsed samples None; best = the
                    first majority sample, worst = a random other sample with another answer
    self-score      the policy's own verdict on each sample, r = log p(yes) - log p(no) of the reply
                    to `nr-verify@1` (question + candidate); best = highest r, worst = lowest
    reward:<spec>   any reward by name (`rewards.registry.build_reward`: a reward model directory,
                    an LLM judge, a user's function); best = highest, worst = lowest

`filter_threshold` (the paper's r >= 0 filter): RFT drops a question whose best score is below it;
DPO drops the pair when the chosen score is below it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from selftaught.data.chat import render_conversation
from selftaught.pipelines.natural_reasoning import VERIFY
from selftaught.selection.consistency import majority_vote

Record = dict[str, Any]
Extract = Callable[[str], str | None]


@torch.no_grad()
def self_scores(
    model: Any, tokenizer: Any, questions: Sequence[str], responses: Sequence[str], *, batch_size: int = 64
) -> list[float]:
    """r = log p(`yes`) - log p(`no`) as the policy's reply to `nr-verify@1` on each (question,
    response): the summed log-probabilities of the reply's tokens (its end-of-turn marker left out)."""
    model.eval()
    rows = []
    for question, response in zip(questions, responses, strict=True):
        user = VERIFY.render_messages({"question": question, "response": response})
        rows += [
            render_conversation(tokenizer, [*user, {"role": "assistant", "content": w}])
            for w in ("yes", "no")
        ]
    logps = []
    for start in range(0, len(rows), batch_size):
        logps += _reply_logps(model, tokenizer.pad_token_id, rows[start : start + batch_size])
    return [logps[i] - logps[i + 1] for i in range(0, len(logps), 2)]


def _reply_logps(model: Any, pad_id: int, rows: list[tuple[list[int], list[bool]]]) -> list[float]:
    """Summed log-probs of each row's masked tokens but the last (the end-of-turn marker)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (row, mask) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        positions = [j for j, m in enumerate(mask) if m][:-1]
        target[i, positions] = True
    logits = model(input_ids=ids, attention_mask=attention).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logp * target[:, 1:]).sum(dim=1).tolist()


def majority_scores(texts: Sequence[str], extract: Extract) -> list[float | None]:
    """1.0 for samples carrying the majority answer, 0.0 for the others, None for unparsed ones;
    all None when nothing parsed or the vote is tied (no majority)."""
    answers = [extract(t) for t in texts]
    vote = majority_vote(answers)
    if vote.answer is None or vote.tied:
        return [None] * len(texts)
    return [None if a is None else float(a == vote.answer) for a in answers]


def best_and_worst(
    scores: Sequence[float | None], rng: random.Random, *, majority: bool
) -> tuple[int | None, int | None]:
    """Indices of the best and the worst scored sample (None when there is none). Majority: best =
    the first sample scoring 1, worst = a random sample scoring 0; else the highest and lowest
    score (first on ties), no worst when every score is equal."""
    scored = [(s, i) for i, s in enumerate(scores) if s is not None]
    if not scored:
        return None, None
    if majority:
        ones = [i for s, i in scored if s == 1.0]
        zeros = [i for s, i in scored if s == 0.0]
        return (ones[0] if ones else None), (rng.choice(zeros) if zeros else None)
    best = max(scored, key=lambda e: (e[0], -e[1]))
    worst = min(scored, key=lambda e: (e[0], e[1]))
    return best[1], (worst[1] if worst[0] < best[0] else None)


def training_records(
    scored: Sequence[Record], *, scorer: str, filter_threshold: float | None, seed: int
) -> tuple[list[Record], list[Record], dict[str, int]]:
    """RFT conversations (question -> best sample) and DPO pairs (best vs worst) from records with
    `question`, `samples` (texts) and `scores[scorer]`; counts of what each step left out."""
    rng = random.Random(f"self-train|{scorer}|{seed}")
    rft, dpo = [], []
    counts = {"num_questions": len(scored), "num_unscored": 0, "num_filtered": 0, "num_no_pair": 0}
    for record in scored:
        scores = record["scores"][scorer]
        best, worst = best_and_worst(scores, rng, majority=scorer == "majority")
        if best is None:
            counts["num_unscored"] += 1
            continue
        if filter_threshold is not None and scores[best] < filter_threshold:
            counts["num_filtered"] += 1
            continue
        user = [{"role": "user", "content": record["question"]}]
        chosen = [{"role": "assistant", "content": record["samples"][best]}]
        rft.append({"id": record["id"], "messages": user + chosen})
        if worst is None:
            counts["num_no_pair"] += 1
            continue
        rejected = [{"role": "assistant", "content": record["samples"][worst]}]
        dpo.append({"id": record["id"], "prompt": user, "chosen": chosen, "rejected": rejected})
    return rft, dpo, {**counts, "num_rft": len(rft), "num_dpo": len(dpo)}


def selection_quality(
    scored: Sequence[Record], correct: Callable[[str, str], bool], scorers: Sequence[str], *, seed: int
) -> dict[str, Any]:
    """How well each scorer picks, against known answers (a diagnostic, never used for training):
    the share of correct samples, and per scorer the share of correct best / worst picks among the
    questions it picked for, and (continuous scorers) the AUC of its scores for correct vs wrong
    samples. `correct(question, text)` says whether a sample is right."""
    right = [[correct(r["question"], t) for t in r["samples"]] for r in scored]
    flat = [x for row in right for x in row]
    quality: dict[str, Any] = {"sample_accuracy": sum(flat) / max(1, len(flat))}
    for scorer in scorers:
        rng, best, worst = random.Random(seed), [], []
        for record, row in zip(scored, right, strict=True):
            b, w = best_and_worst(record["scores"][scorer], rng, majority=scorer == "majority")
            best += [row[b]] if b is not None else []
            worst += [row[w]] if w is not None else []
        quality[scorer] = {
            "best_correct": sum(best) / max(1, len(best)),
            "worst_correct": sum(worst) / max(1, len(worst)),
        }
        if scorer != "majority":
            pairs = [
                (s, ok)
                for r, row in zip(scored, right, strict=True)
                for s, ok in zip(r["scores"][scorer], row, strict=True)
                if s is not None
            ]
            quality[scorer]["auc"] = auc([s for s, ok in pairs if ok], [s for s, ok in pairs if not ok])
    return quality


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties half (Mann-Whitney); None without both."""
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))
