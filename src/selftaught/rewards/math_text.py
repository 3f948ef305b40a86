r"""Text clean-up before math-verify: the ways models write a number that math-verify misreads.

`normalize_numbers(text)` rewrites, in this order (the first two are `normalize_separators`):
  - unicode: the minus sign U+2212 -> `-`, thin and no-break spaces -> space;
  - thousands separators: thin spaces (U+2009, U+202F, U+00A0), LaTeX `\,` and `{,}`, and plain
    spaces between digit groups (`1 000 000`) are removed;
  - unicode operators: `×` -> `\times`, `⋅` -> `\cdot`;
  - magnitude words: `1.5 million`, `2 thousand`, `3 \text{billion}` -> `1500000`, `2000`, ...;
  - currency: an escaped dollar `\$` is dropped, and a minus before a dollar sign moves to the
    number (`-$15` -> `-15`);
  - units: a `\text{...}` / `\mathrm{...}` (with an optional `^2`) right after a number is dropped;
  - scientific notation: `1.2e3`, `1.2 \times 10^3`, `1.2 \cdot 10^{3}` -> `1200`;
  - mixed numbers: `3 1/2` and `3\frac{1}{2}` -> `7/2` (only when the fraction is proper).
`words_to_numbers(text)` writes number words as digits (`eighteen`, `twenty-one`, `zero`,
`two hundred`); the verifier applies it to the explicit answer only (or to a text with no digit):
in a whole solution `one` is often a pronoun.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_SIGNS = str.maketrans({"\u2212": "-", "\u2009": " ", "\u202f": " ", "\u00a0": " "})
_OPERATORS = str.maketrans({"\u00d7": r" \times ", "\u22c5": r" \cdot "})
_THIN_GROUP = re.compile(r"(?<=\d)(?:\\,|\{,\}|[\u2009\u202f\u00a0])(?=\d{3}(?!\d))")
_SPACE_GROUPS = re.compile(r"(?<![\d.,/])\d{1,3}(?: \d{3})+(?![\d/]| \d)")
_MINUS_DOLLAR = re.compile(r"(?<![\w$])-\s*\$\s*(?=\d)")
_UNIT = re.compile(r"(?<=\d)\s*\\(?:text|mathrm|mbox)\{\s*[A-Za-z][A-Za-z .%]*\}(?:\^\{?\d\}?)?")
_NUM = r"(\d+(?:\.\d+)?)"
_E_NOTATION = re.compile(rf"(?<![\w.]){_NUM}[eE]([+-]?\d+)\b")
_TIMES_TEN = re.compile(
    rf"(?<![\w.]){_NUM}\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*(?:\{{\s*([+-]?\d+)\s*\}}|([+-]?\d))"
)
_MAGNITUDES = {"hundred": 2, "thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_WORDS = "|".join(_MAGNITUDES)
_MAGNITUDE = re.compile(rf"(?<![\w.]){_NUM}\s*(?:\\text\{{\s*({_WORDS})\s*\}}|\s({_WORDS})\b)", re.IGNORECASE)
_MIXED = re.compile(r"(?<![\d.,/])(\d+)(?:\s+(\d+)/(\d+)|\s*\\d?frac\{(\d+)\}\{(\d+)\})(?![\d/]|\.\d)")

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
_UNITS += "sixteen seventeen eighteen nineteen"
_SMALL = {word: value for value, word in enumerate(_UNITS.split())}
_TENS = {
    w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_BELOW_100 = rf"(?:(?:{'|'.join(_TENS)})(?:[- ](?:{'|'.join(list(_SMALL)[1:10])}))?|{'|'.join(_SMALL)})"
_NUMBER_WORDS = re.compile(rf"\b{_BELOW_100}(?:\s+hundred(?:\s+(?:and\s+)?{_BELOW_100})?)?\b", re.IGNORECASE)


def normalize_numbers(text: str) -> str:
    """`text` with the number spellings listed in the module doc rewritten as plain numbers."""
    text = normalize_separators(text).translate(_OPERATORS)
    text = _MAGNITUDE.sub(
        lambda m: _scaled(m.group(1), _MAGNITUDES[(m.group(2) or m.group(3)).lower()]), text
    )
    text = _UNIT.sub("", _MINUS_DOLLAR.sub("-", text.replace(r"\$", "")))
    text = _E_NOTATION.sub(lambda m: _scaled(m.group(1), int(m.group(2))), text)
    text = _TIMES_TEN.sub(lambda m: _scaled(m.group(1), int(m.group(2) or m.group(3))), text)
    return _MIXED.sub(_mixed, text)


def normalize_separators(text: str) -> str:
    """`text` with ASCII minus signs and no thousands separators other than commas (first two items)."""
    text = _THIN_GROUP.sub("", text).translate(_SIGNS)
    return _SPACE_GROUPS.sub(lambda m: m.group().replace(" ", ""), text)


def words_to_numbers(text: str, keep_one: bool = False) -> str:
    """`text` with number words up to 999 written as digits: `twenty-one` -> `21`.

    `keep_one` leaves a lone `one` as it is (in running text it is mostly a pronoun: `each one`).
    """

    def digits(match: re.Match[str]) -> str:
        words = match.group()
        return words if keep_one and words.lower() == "one" else str(_word_value(words))

    return _NUMBER_WORDS.sub(digits, text)


def _scaled(mantissa: str, exponent: int) -> str:
    try:
        value = Decimal(mantissa).scaleb(exponent)
    except InvalidOperation:
        return mantissa
    return format(value.normalize(), "f") if abs(exponent) < 30 else mantissa


def _mixed(match: re.Match[str]) -> str:
    whole = int(match.group(1))
    numerator, denominator = (int(g) for g in (match.group(2, 3) if match.group(2) else match.group(4, 5)))
    if not 0 < numerator < denominator:
        return match.group()
    value = whole + Fraction(numerator, denominator)
    return f"{value.numerator}/{value.denominator}"


def _word_value(words: str) -> int:
    total = 0
    for word in re.split(r"[\s-]+", words.lower()):
        if word == "hundred":
            total *= 100
        elif word in _TENS:
            total += _TENS[word]
        elif word in _SMALL:
            total += _SMALL[word]
    return total
