"""LLM judges over any `Engine`: render a template, sample k judgments, parse them, aggregate them.

A `PairwiseJudge` shows two responses as A and B; `judge_both_orders` shows every pair twice,
(first, second) and (second, first), in one engine call, because position bias is the main failure
of pairwise judges and both papers measure it that way (J1 §2.6, Self-Taught Evaluator §5.3). A
`PointwiseJudge` scores one response at a time.

Each sample becomes a `Judgment` whose `verdict` is as presented (`"A"` = the response shown first),
with `swapped` saying whether the pair was shown reversed, and whose `raw` keeps the judge's text.
Aggregation over the k samples (J1 §2.7 test-time scaling) is `majority_verdict` for verdicts and
`mean_scores` for scores; neither turns an unreadable sample into a vote or a 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.templates import JudgeKind, JudgeTemplate, get_template
from selftaught.types import Completion, Judgment, Prompt

PROMPT_STYLES = ("chat", "text")
"""`chat`: the template's messages through the model's chat template; `text`: `JudgeTemplate.render_text`
as raw text (for base models, which only continue text)."""


def default_judge_sampling() -> SamplingParams:
    """Greedy with room to think, as in J1's evaluation (which allows up to 4,096 tokens)."""
    return SamplingParams(temperature=0.0, max_new_tokens=1024)


def question_text(prompt: Prompt) -> str:
    """What the judge is told the user asked: a lone user turn's content, else the turns as
    `role: content` lines; `prompt.text` when there are no messages."""
    messages = prompt.messages
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    if messages:
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    if prompt.text is not None:
        return prompt.text
    raise ValueError(f"prompt {prompt.id!r} has neither messages nor text; the judge has no question to show")


def swap_verdict(verdict: str | None) -> str | None:
    """The verdict seen from the other order: A <-> B; `"tie"` and `None` unchanged."""
    return {"A": "B", "B": "A"}.get(verdict, verdict) if verdict is not None else None


def majority_verdict(judgments: Sequence[Judgment]) -> str | None:
    """The most common verdict among the parsed ones; `"tie"` when the top count is shared (no
    majority); `None` when no judgment has a verdict."""
    counts = Counter(j.verdict for j in judgments if j.verdict is not None).most_common()
    if not counts:
        return None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


def mean_scores(judgments: Sequence[Judgment]) -> list[float] | None:
    """Per-position mean of the parsed scores (`[mean]` pointwise, `[mean_A, mean_B]` pairwise); `None` if none."""
    parsed = [j.scores for j in judgments if j.scores is not None]
    if not parsed:
        return None
    return [sum(column) / len(parsed) for column in zip(*parsed, strict=True)]


@dataclass
class PairJudgments:
    """A pairwise judge's k samples on one pair (first, second), shown in both orders."""

    original: list[Judgment]
    """Shown as A = first, B = second."""
    swapped: list[Judgment]
    """Shown as A = second, B = first."""

    def verdicts(self) -> tuple[str | None, str | None]:
        """The majority verdict of each order, mapped back to the pair: `"A"` = first wins, `"B"` = second."""
        return majority_verdict(self.original), swap_verdict(majority_verdict(self.swapped))


class _Judge:
    """What both judges share: the engine, the template, sampling, rendering and parsing."""

    kind: JudgeKind
    default_template: str

    def __init__(
        self,
        engine: Engine,
        template: str | JudgeTemplate | None = None,
        sampling: SamplingParams | None = None,
        prompt_style: str = "chat",
    ) -> None:
        template = template or self.default_template
        self.template = get_template(template) if isinstance(template, str) else template
        if self.template.kind != self.kind:
            raise ValueError(
                f"template {self.template.name} is {self.template.kind}; a {type(self).__name__} needs a "
                f"{self.kind} template"
            )
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
        self.engine = engine
        self.sampling = sampling or default_judge_sampling()
        self.prompt_style = prompt_style

    def _build_prompt(self, prompt: Prompt, responses: tuple[str, ...], order: str) -> Prompt:
        question = question_text(prompt)
        return Prompt(
            id=f"{prompt.id}|{order}",
            messages=self.template.render(question, *responses),
            text=self.template.render_text(question, *responses) if self.prompt_style == "text" else None,
            task="judge",
            meta={"source_id": prompt.id, "template": self.template.name, "order": order},
        )

    def _sample(self, judge_prompts: list[Prompt]) -> list[list[Judgment]]:
        """`sampling.n` parsed judgments per judge prompt, in one engine call."""
        results = self.engine.generate(judge_prompts, self.sampling)
        return [
            [self._parse(p.meta["source_id"], c, p.meta["order"] == "ba", j) for j, c in enumerate(cs)]
            for p, cs in zip(judge_prompts, results, strict=True)
        ]

    def _parse(self, prompt_id: str, completion: Completion, swapped: bool, index: int) -> Judgment:
        parsed = self.template.parse(completion.text)
        meta = {
            "sample_index": index,
            "finish_reason": completion.finish_reason,
            "num_tokens": completion.num_tokens,
            **parsed.meta,
        }
        if parsed.error is not None:
            meta["parse_error"] = parsed.error
        return Judgment(
            prompt_id=prompt_id,
            raw=completion.text,
            verdict=parsed.verdict,
            scores=parsed.scores,
            swapped=swapped,
            template=self.template.name,
            meta=meta,
        )


class PairwiseJudge(_Judge):
    """Prefers one of two responses (verdict templates) or scores both (score templates)."""

    kind = JudgeKind.PAIRWISE
    default_template = "j1-pairwise-verdict@1"

    def build_prompt(self, prompt: Prompt, response_a: str, response_b: str, swapped: bool = False) -> Prompt:
        """The judge prompt showing `response_a` as A and `response_b` as B; its id is `<prompt.id>|ab`
        (`|ba` when `swapped`, i.e. when A is the pair's second response)."""
        return self._build_prompt(prompt, (response_a, response_b), "ba" if swapped else "ab")

    def judge(
        self, prompts: Sequence[Prompt], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[list[Judgment]]:
        """`result[i]` = k judgments of (prompts[i], A = responses_a[i], B = responses_b[i]), one order."""
        _check_lengths(prompts, responses_a, responses_b)
        judge_prompts = [
            self.build_prompt(*row) for row in zip(prompts, responses_a, responses_b, strict=True)
        ]
        return self._sample(judge_prompts)

    def judge_both_orders(
        self, prompts: Sequence[Prompt], first: Sequence[str], second: Sequence[str]
    ) -> list[PairJudgments]:
        """Each pair shown as (A = first, B = second) and as (A = second, B = first), in one engine call."""
        _check_lengths(prompts, first, second)
        rows = list(zip(prompts, first, second, strict=True))
        judge_prompts = [self.build_prompt(p, one, two) for p, one, two in rows]
        judge_prompts += [self.build_prompt(p, two, one, swapped=True) for p, one, two in rows]
        judgments = self._sample(judge_prompts)
        return [PairJudgments(judgments[i], judgments[len(rows) + i]) for i in range(len(rows))]


class PointwiseJudge(_Judge):
    """Scores one response at a time (J1 PoS), so it cannot have a position bias."""

    kind = JudgeKind.POINTWISE
    default_template = "j1-pointwise@1"

    def build_prompt(self, prompt: Prompt, response: str) -> Prompt:
        """The judge prompt for one response; its id is `<prompt.id>|one`."""
        return self._build_prompt(prompt, (response,), "one")

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> list[list[Judgment]]:
        """`result[i]` = k judgments of `responses[i]` to `prompts[i]`, each with `scores == [s]` or `None`."""
        _check_lengths(prompts, responses)
        judge_prompts = [self.build_prompt(p, r) for p, r in zip(prompts, responses, strict=True)]
        return self._sample(judge_prompts)


def build_judge(
    engine: Engine,
    template: str | JudgeTemplate,
    sampling: SamplingParams | None = None,
    prompt_style: str = "chat",
) -> PairwiseJudge | PointwiseJudge:
    """The judge of the template's kind."""
    resolved = get_template(template) if isinstance(template, str) else template
    judge_class = PairwiseJudge if resolved.kind == JudgeKind.PAIRWISE else PointwiseJudge
    return judge_class(engine, resolved, sampling, prompt_style)


def _check_lengths(prompts: Sequence[Prompt], *responses: Sequence[str]) -> None:
    lengths = [len(prompts), *(len(r) for r in responses)]
    if len(set(lengths)) != 1:
        raise ValueError(
            f"prompts and responses must have the same length (one response per prompt), got {lengths}"
        )
