"""Versioned judge templates: the prompt a judge sees and the parser that reads its answer.

A template's name carries its version (`j1-pairwise-verdict@1`). Judgments record it, so a change
of wording is a new version and never silently mixes with old results. The texts paraphrase the
papers' prompts (papers_B §2.4 for J1 and EvalPlanner, papers_A §5.1 for the Self-Taught Evaluator):

| name | kind | the judge ends with | parser |
|---|---|---|---|
| `j1-pairwise-verdict@1` (PaV) | pairwise | `<think>...</think> <answer> [[A]] </answer>` | `parse_answer_verdict` |
| `j1-pairwise-scores@1` (PaS) | pairwise | `<score_A> 7 </score_A> <score_B> 4 </score_B>` | `parse_pairwise_scores` |
| `j1-pairwise-scores-verdict@1` (PaVS) | pairwise | scores, then `<answer> [[A]] </answer>` | `parse_scores_and_verdict` |
| `j1-pointwise@1` (PoS) | pointwise | `<think>...</think> <score> 7 </score>` | `parse_pointwise_score` |
| `evalplanner-pairwise@1` | pairwise | `<plan>...</plan> <execution>...</execution> <answer>...` | `parse_answer_verdict` |
| `ste-pairwise@1` | pairwise | an explanation, then `[[A]]`, `[[B]]` or `[[C]]` (tie) | `parse_bare_verdict_or_tie` |
| `world-pairwise-verdict@1` | pairwise | `45+64=109 ... Answer: 145 [[A]]` (tiny world) | `parse_bare_verdict` |
| `gsm8k-pairwise-fewshot@1` | pairwise | ` [[A]]` after two solved word problems (base models, GSM8K pairs) | `parse_bare_verdict` |
| `world-pointwise@1` | pointwise | `1 2 R 1=1+ 2=3- no [[0]]` (list tasks: the check of one response, 1 or 0) | `parse_bracket_score` |
| `world-pairwise-fewshot@1` | pairwise | ` [[A]]` after four solved examples (base models) | `parse_bare_verdict` |
| `rag-tournament@1` | RAG, `judges/rag.py` | `Best: Prediction k` (one bracket, gold answer shown) | `selection.tournament.parse_best` |
| `rag-correctness@1` | RAG, `judges/rag.py` | `Label: Correct\\|Incorrect\\|Refuse` | `judges.rag.parse_correctness_label` |
| `rag-relevance@1` | RAG, `judges/rag.py` | `Label: Present\\|Absent` | `judges.rag.parse_relevance_label` |

The RAG rows are generation templates (`data.templates`, slots in `judges/rag.py`), not `JudgeTemplate`s.
Pairwise slots are `{question}`, `{response_a}`, `{response_b}`; pointwise slots are `{question}`
and `{response}`. `world-pairwise-verdict@1` is the compact tiny-world format of
TINYWORLD_JUDGES.md §1.1: a few hundred characters of instructions would not fit a tiny model.
`world-pairwise-fewshot@1` shows the same pairs to a base model (Gemma 3 270M), which follows a
pattern but not instructions; sample it with a newline stop string, or it goes on writing examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selftaught.data.templates import PromptTemplate, escape_braces, lookup_template, split_versioned_name
from selftaught.judges.parsers import (
    Parser,
    parse_answer_verdict,
    parse_bare_verdict,
    parse_bare_verdict_or_tie,
    parse_bracket_score,
    parse_pairwise_scores,
    parse_pointwise_score,
    parse_scores_and_verdict,
)
from selftaught.types import Message, StrEnum
from selftaught.world.judge_pairs import JUDGE_PROMPT
from selftaught.world.list_tasks import POINTWISE_PROMPT


class JudgeKind(StrEnum):
    PAIRWISE = "pairwise"
    """Two responses shown as A and B; the judge prefers one (or scores both)."""
    POINTWISE = "pointwise"
    """One response; the judge scores it alone."""


@dataclass(frozen=True)
class JudgeTemplate:
    """A judge prompt and the parser for the answer it asks for.

    Rendering goes through `prompt_template`, the equivalent generic `PromptTemplate` (built from
    these fields), so judge and generation prompts share one slot check and one raw-text rule.
    """

    name: str
    """Versioned name, `<family>@<version>`."""
    kind: JudgeKind
    user: str
    """The user turn, a `str.format` string over the kind's slots."""
    parse: Parser
    system: str | None = None
    """An optional system turn (no slots)."""
    text_suffix: str = ""
    """Appended to the raw-text prompt (`render_text`): for base models, a break and the start of
    the judge's answer, e.g. a blank line and `<think>`."""
    prompt_template: PromptTemplate = field(init=False, repr=False, compare=False)
    """The same prompt as a generic `PromptTemplate` (slots `question` and `response`, or
    `response_a` and `response_b`), e.g. for sampling judgments in a generation stage."""

    def __post_init__(self) -> None:
        family, version = split_versioned_name(self.name)
        system = None if self.system is None else escape_braces(self.system)
        text = "\n\n".join(form for form in (system, self.user) if form is not None)
        slots = _POINTWISE_SLOTS if self.kind == JudgeKind.POINTWISE else _PAIRWISE_SLOTS
        template = PromptTemplate(
            family, version, self.user, slots, system=system, text=text + escape_braces(self.text_suffix)
        )
        object.__setattr__(self, "prompt_template", template)

    def render(self, question: str, *responses: str) -> list[Message]:
        """Chat messages for one judgment: one response (pointwise) or two, in the order shown (A, B)."""
        return self.prompt_template.render_messages(self._slots(question, responses))

    def render_text(self, question: str, *responses: str) -> str:
        """The same prompt as raw text (system, user, then `text_suffix`) for models without a chat template."""
        return self.prompt_template.render_text(self._slots(question, responses))

    def _slots(self, question: str, responses: tuple[str, ...]) -> dict[str, str]:
        if self.kind == JudgeKind.POINTWISE:
            if len(responses) != 1:
                raise ValueError(f"template {self.name} is pointwise: give 1 response, got {len(responses)}")
            return {"question": question, "response": responses[0]}
        if len(responses) != 2:
            raise ValueError(
                f"template {self.name} is pairwise: give 2 responses (A, B), got {len(responses)}"
            )
        return {"question": question, "response_a": responses[0], "response_b": responses[1]}


_POINTWISE_SLOTS = ("question", "response")
_PAIRWISE_SLOTS = ("question", "response_a", "response_b")

_PAIR_SLOTS = """[User Question]
{question}

[The Start of Assistant A's Answer]
{response_a}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{response_b}
[The End of Assistant B's Answer]"""

_JUDGE_ROLE = (
    "You are an impartial judge. Compare the answers of two AI assistants, A and B, to the user question "
    "below, and decide which answer follows the user's instructions and answers the question better."
)

_AVOID_BIASES = (
    "Avoid position bias: the order in which the answers are shown must not affect your decision. "
    "Do not let the length of the answers or the names of the assistants influence you. Be as objective "
    "as possible."
)

_THINK = (
    "First think inside <think> and </think>: set out the criteria a high-quality answer to this question "
    "must meet, work out a reference answer yourself when that helps, and compare both answers with the "
    "criteria and the reference in detail."
)

J1_PAIRWISE_VERDICT = f"""{_JUDGE_ROLE}

{_THINK} {_AVOID_BIASES}

After thinking, end with your verdict in exactly this format: "<answer> [[A]] </answer>" if Assistant A's \
answer is better, or "<answer> [[B]] </answer>" if Assistant B's answer is better.

{_PAIR_SLOTS}"""

_SCORE_RULE = (
    "Score each answer from 0 to 10 (an integer or one decimal place); a higher score means a better answer."
)

J1_PAIRWISE_SCORES = f"""{_JUDGE_ROLE}

{_THINK} {_AVOID_BIASES}

After thinking, give the scores in exactly this format: "<score_A> a </score_A> <score_B> b </score_B>". \
{_SCORE_RULE}

{_PAIR_SLOTS}"""

J1_PAIRWISE_SCORES_VERDICT = f"""{_JUDGE_ROLE}

{_THINK} {_AVOID_BIASES}

After thinking, give the scores in exactly this format: "<score_A> a </score_A> <score_B> b </score_B>". \
{_SCORE_RULE} Then end with your verdict: "<answer> [[A]] </answer>" if Assistant A's answer is better, or \
"<answer> [[B]] </answer>" if Assistant B's answer is better.

{_PAIR_SLOTS}"""

J1_POINTWISE = """You are an impartial judge. Score the quality of an AI assistant's answer to the user question \
below. Several answers to this question exist, but you are shown one at a time and must judge each on its own.

First think inside <think> and </think>: set out the criteria a high-quality answer to this question must meet, \
describe what an ideal answer would contain, write a concrete reference answer when you can, and compare the \
assistant's answer with it. Do not let the length of the answer influence you.

After thinking, give the score in exactly this format: "<score> s </score>", where s is from 0 to 10 (an \
integer or one decimal place) and a higher score means a better answer.

[User Question]
{question}

[The Start of the Assistant's Answer]
{response}
[The End of the Assistant's Answer]"""

EVALPLANNER_PAIRWISE = f"""{_JUDGE_ROLE}

First write an evaluation plan inside <plan> and </plan>: the criteria that matter for this question and how to \
check them; the plan may include a step-by-step reference answer. Then carry out the plan on both answers inside \
<execution> and </execution>, without copying the plan. {_AVOID_BIASES}

End with your verdict in exactly this format: "<answer> [[A]] </answer>" if Assistant A's answer is better, or \
"<answer> [[B]] </answer>" if Assistant B's answer is better.

{_PAIR_SLOTS}"""

STE_SYSTEM = f"""Please act as an impartial judge and evaluate the quality of the answers of two AI assistants \
to the user question shown below. Choose the assistant whose answer follows the user's instructions and answers \
the question better, considering helpfulness, relevance, accuracy, depth and level of detail. Begin by comparing \
the two answers and give a short explanation. {_AVOID_BIASES} After your explanation, output your final verdict \
in exactly this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie."""

WORLD_PAIRWISE_VERDICT = JUDGE_PROMPT

WORLD_POINTWISE = POINTWISE_PROMPT

WORLD_PAIRWISE_FEWSHOT = """Each line shows a sum, two worked solutions A and B, and which one is correct.
23+19 A: 23+19=42 Answer: 42 B: 23+19=32 Answer: 32 Correct: [[A]]
58-7-20 A: 58-7=52 52-20=32 Answer: 32 B: 58-7=51 51-20=31 Answer: 31 Correct: [[B]]
36+45 A: 36+45=81 Answer: 81 B: 36+45=71 Answer: 71 Correct: [[A]]
90-34+8 A: 90-34=57 57+8=65 Answer: 65 B: 90-34=56 56+8=64 Answer: 64 Correct: [[B]]
{question} A: {response_a} B: {response_b} Correct:"""

GSM8K_PAIRWISE_FEWSHOT = """Each example shows a math word problem, two worked solutions A and B, and which one is correct.

Question: Tom has 3 boxes with 12 pencils each. He gives away 9 pencils. How many pencils does he have left?
A: Tom has 3 * 12 = 36 pencils.
He has 36 - 9 = 27 pencils left.
The answer is 27.
B: Tom has 3 * 12 = 36 pencils.
He has 36 - 9 = 27 pencils left.
The answer is 29.
Correct: [[A]]

Question: A shop sells pens at $2 each. Ana buys 5 pens and pays with a $20 bill. How much change does she get?
A: The pens cost 5 * 2 = $10.
Her change is 20 - 10 = $10.
The answer is 15.
B: The pens cost 5 * 2 = $10.
Her change is 20 - 10 = $10.
The answer is 10.
Correct: [[B]]

Question: {question}
A: {response_a}
B: {response_b}
Correct:"""
"""Two invented examples (not GSM8K items), one per verdict letter, in the layout of GSM8K
answer-mismatch pairs (`judges.load_judge_pairs` on a GSM8K file): base models, raw text."""

TEMPLATES: dict[str, JudgeTemplate] = {
    t.name: t
    for t in (
        JudgeTemplate(
            "j1-pairwise-verdict@1",
            JudgeKind.PAIRWISE,
            J1_PAIRWISE_VERDICT,
            parse_answer_verdict,
            text_suffix="\n\n<think>",
        ),
        JudgeTemplate(
            "j1-pairwise-scores@1",
            JudgeKind.PAIRWISE,
            J1_PAIRWISE_SCORES,
            parse_pairwise_scores,
            text_suffix="\n\n<think>",
        ),
        JudgeTemplate(
            "j1-pairwise-scores-verdict@1",
            JudgeKind.PAIRWISE,
            J1_PAIRWISE_SCORES_VERDICT,
            parse_scores_and_verdict,
            text_suffix="\n\n<think>",
        ),
        JudgeTemplate(
            "j1-pointwise@1",
            JudgeKind.POINTWISE,
            J1_POINTWISE,
            parse_pointwise_score,
            text_suffix="\n\n<think>",
        ),
        JudgeTemplate(
            "evalplanner-pairwise@1",
            JudgeKind.PAIRWISE,
            EVALPLANNER_PAIRWISE,
            parse_answer_verdict,
            text_suffix="\n\n<plan>",
        ),
        JudgeTemplate(
            "ste-pairwise@1",
            JudgeKind.PAIRWISE,
            _PAIR_SLOTS,
            parse_bare_verdict_or_tie,
            system=STE_SYSTEM,
            text_suffix="\n\nExplanation:",
        ),
        JudgeTemplate(
            "world-pairwise-verdict@1", JudgeKind.PAIRWISE, WORLD_PAIRWISE_VERDICT, parse_bare_verdict
        ),
        JudgeTemplate(
            "gsm8k-pairwise-fewshot@1", JudgeKind.PAIRWISE, GSM8K_PAIRWISE_FEWSHOT, parse_bare_verdict
        ),
        JudgeTemplate("world-pointwise@1", JudgeKind.POINTWISE, WORLD_POINTWISE, parse_bracket_score),
        JudgeTemplate(
            "world-pairwise-fewshot@1", JudgeKind.PAIRWISE, WORLD_PAIRWISE_FEWSHOT, parse_bare_verdict
        ),
    )
}


def get_template(name: str) -> JudgeTemplate:
    """The template called `name` (with its version); a ValueError listing the known names otherwise."""
    return lookup_template(TEMPLATES, name, "judge template")
