"""GSM8K-format evaluation: numeric answer matching (prompts: `selftaught.data.gsm8k`).

The answer is read as the number after the first "The answer is", else the last number in the text
(lm-eval-harness's "flexible extract"), and compared numerically with the number after "####".
Before that, a unicode minus sign (U+2212) is read as `-` (so `−18` is never `18`) and thin-space,
`\\,` and space thousands separators (`1 000 000`) are removed (`rewards.math_text.normalize_separators`).
"""

from __future__ import annotations

import re
from fractions import Fraction

from selftaught.data.gsm8k import EXEMPLARS, STOP, few_shot_prompt, gsm8k_prompts, reference_answer
from selftaught.rewards.math_text import normalize_separators
from selftaught.types import Completion, Prompt

__all__ = [
    "EXEMPLARS",
    "STOP",
    "extract_number",
    "few_shot_prompt",
    "gsm8k_prompts",
    "is_correct",
    "numbers_equal",
    "reference_answer",
]

_NUMBER = r"-?[\d,]*\.?\d+"


def extract_number(text: str) -> str | None:
    """The model's final number: after the first 'The answer is', else the last number; None if none."""
    text = normalize_separators(text)
    match = re.search(rf"[Tt]he answer is\s*\$?\s*({_NUMBER})", text)
    if match is None:
        numbers = re.findall(_NUMBER, text)
        if not numbers:
            return None
        value = numbers[-1]
    else:
        value = match.group(1)
    return value.replace(",", "").rstrip(".")


def numbers_equal(a: str, b: str) -> bool:
    """Exact numeric equality (`18 == 18.0 == 18.00`), False for anything unparsable."""
    try:
        return Fraction(a) == Fraction(b)
    except (ValueError, ZeroDivisionError):
        return False


def is_correct(prompt: Prompt, completion: Completion) -> bool:
    predicted = extract_number(completion.text)
    return predicted is not None and prompt.answer is not None and numbers_equal(predicted, prompt.answer)
