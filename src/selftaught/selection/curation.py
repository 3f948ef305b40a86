"""Unsupervised curation of System 2 outputs (papers_A §3.1 step 3): which inputs to distil, and into what.

Every filter takes, per input, the final answers of its System 2 samples (None = unparsed) and
returns one target per input (None = dropped) with counts of what was dropped and why:

- `majority_targets`: the majority answer when it is unique and its share of *all* samples (unparsed
  ones count against it) is at least `min_share` (papers_A §3.5: 5 of 8); `selection.consistency`.
- `usc_targets`: universal self-consistency; the model was shown the N responses and named one
  (`parse_usc`, strict: exactly one `The most consistent response is Response k` with 1 <= k <= N);
  the target is that response's final answer.
- `perturbation_targets`: self-consistency under an input perturbation (the two orders of a pairwise
  judgment): each side's majority (as `majority_targets`), the perturbed one mapped back by
  `inverse`; kept when both exist and agree.
- `first_targets`: no filter, the first sample's answer (the "no filter" ablation).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from selftaught.selection.consistency import majority_vote, select_consistent

Finals = Sequence[Sequence["str | None"]]
Targets = list["str | None"]


def majority_targets(finals: Finals, min_share: float) -> tuple[Targets, dict[str, int]]:
    """Per input, its samples' unique majority answer with share >= `min_share`, else None."""
    votes = [majority_vote(list(answers)) for answers in finals]
    kept, counts = select_consistent(list(range(len(finals))), votes, min_share)
    targets: Targets = [None] * len(finals)
    for index, vote in kept:
        targets[index] = vote.answer
    return targets, {k: int(v) for k, v in counts.items()}


USC_ANSWER = re.compile(r"The most consistent response is Response (\d+)")


def parse_usc(text: str, num_responses: int) -> int | None:
    """The 0-based index the USC answer names: exactly one `The most consistent response is Response k`
    with `1 <= k <= num_responses`; None otherwise (no phrase, two phrases, k out of range)."""
    found = USC_ANSWER.findall(text)
    if len(found) != 1 or not 1 <= int(found[0]) <= num_responses:
        return None
    return int(found[0]) - 1


def usc_targets(finals: Finals, choices: Sequence[int | None]) -> tuple[Targets, dict[str, int]]:
    """Per input, the final answer of the response USC chose; None when the choice did not parse or the
    chosen response has no final answer."""
    if len(finals) != len(choices):
        raise ValueError(f"got {len(choices)} USC choices for {len(finals)} inputs; give one per input")
    targets: Targets = []
    counts = {"num_items": len(finals), "num_kept": 0, "num_choice_unparsed": 0, "num_chosen_unparsed": 0}
    for answers, choice in zip(finals, choices, strict=True):
        target = None if choice is None else answers[choice]
        if choice is None:
            counts["num_choice_unparsed"] += 1
        elif target is None:
            counts["num_chosen_unparsed"] += 1
        counts["num_kept"] += target is not None
        targets.append(target)
    return targets, counts


def perturbation_targets(
    finals: Finals, perturbed: Finals, inverse: Callable[[str], str], min_share: float = 0.0
) -> tuple[Targets, dict[str, int]]:
    """Per input, the answer both the original and the perturbed input give (the perturbed side mapped
    back by `inverse`), each side's answer its samples' majority (`majority_targets`); else None."""
    if len(finals) != len(perturbed):
        raise ValueError(
            f"got {len(perturbed)} perturbed inputs for {len(finals)} inputs; give one per input"
        )
    original, _ = majority_targets(finals, min_share)
    other, _ = majority_targets(perturbed, min_share)
    targets: Targets = []
    counts = {"num_items": len(finals), "num_kept": 0, "num_no_answer": 0, "num_disagree": 0}
    for a, b in zip(original, other, strict=True):
        if a is None or b is None:
            counts["num_no_answer"] += 1
            targets.append(None)
        elif inverse(b) != a:
            counts["num_disagree"] += 1
            targets.append(None)
        else:
            counts["num_kept"] += 1
            targets.append(a)
    return targets, counts


def first_targets(finals: Finals) -> tuple[Targets, dict[str, int]]:
    """No filter: the first sample's final answer (None only when it did not parse or there is none)."""
    targets: Targets = [answers[0] if answers else None for answers in finals]
    kept = sum(t is not None for t in targets)
    return targets, {"num_items": len(finals), "num_kept": kept, "num_no_answer": len(finals) - kept}


def swap_verdict(verdict: str) -> str:
    """A pairwise verdict read in the other order: A <-> B (a tie `C` stays)."""
    return {"A": "B", "B": "A"}.get(verdict, verdict)
