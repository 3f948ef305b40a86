"""Agreement of a revision's math verifier with the held-out table `math_heldout_cases.jsonl`.

    .venv/bin/python tests/rewards/math_heldout.py [GIT_REV]

The table was graded by hand, blind to the verifier's code and to `math_grading_cases.jsonl`, so
it measures how the verifier generalises rather than how well it fits the cases it was fixed on.

With GIT_REV, grades with the `selftaught` package as it was at that revision (its `src/` is
extracted with `git archive` and imported ahead of the working tree, so helper modules of that
revision come along); without, with the working tree's. Prints the agreement overall and per
class, each disagreeing case, and the agreement of a naive baseline (the last number in the
completion, commas removed, compared as a float).
"""

import json
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

CASES = Path(__file__).parent / "math_heldout_cases.jsonl"
REPO = Path(__file__).resolve().parents[2]


def load_reward(rev: str | None):
    if rev is not None:
        archive = subprocess.check_output(["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"])
        root = Path(tempfile.mkdtemp(prefix=f"math_heldout_{rev}_"))
        with tempfile.TemporaryFile() as file:
            file.write(archive)
            file.seek(0)
            with tarfile.open(fileobj=file) as tar:
                tar.extractall(root)
        sys.path.insert(0, str(root / "src"))
    from selftaught.rewards import math as module

    if rev is not None:
        assert Path(module.__file__).is_relative_to(root), module.__file__
    return module.math_answer_reward


def load_cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def grade(reward, case: dict):
    reasons = [case["finish_reason"]] if "finish_reason" in case else None
    try:
        [score] = reward(["q"], [case["completion"]], [case["reference"]], finish_reason=reasons)
    except Exception as error:  # a crash is a disagreement, not the end of the run
        return f"error: {type(error).__name__}: {error}"
    return score


def _number(text: str) -> float | None:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        return None


def naive(case: dict) -> float:
    """The last number in the completion, commas removed, compared as a float."""
    numbers = re.findall(r"-?\d+(?:\.\d+)?", case["completion"].replace(",", ""))
    reference = _number(case["reference"])
    if not numbers or reference is None:
        return 0.0
    return float(abs(float(numbers[-1]) - reference) < 1e-9)


def main(rev: str | None) -> None:
    reward = load_reward(rev)
    cases = load_cases()
    per_class = defaultdict(lambda: [0, 0, 0])  # agree, naive agree, total
    agree = naive_agree = 0
    print("disagreements:")
    for index, case in enumerate(cases, start=1):
        score = grade(reward, case)
        ok = score == case["expected"]
        naive_ok = naive(case) == case["expected"]
        agree += ok
        naive_agree += naive_ok
        counts = per_class[case["class"]]
        counts[0] += ok
        counts[1] += naive_ok
        counts[2] += 1
        if not ok:
            finish = f" [{case['finish_reason']}]" if "finish_reason" in case else ""
            print(
                f"  #{index:<3} {case['class']:>22}: got {score}, expected {case['expected']}, "
                f"reference {case['reference']!r}{finish}: {case['completion']!r}"
            )
    n = len(cases)
    print("\nper class (verifier, naive baseline):")
    for name, (ok, naive_ok, total) in sorted(per_class.items()):
        print(f"  {name:>22}: {ok:>3}/{total:<3}  naive {naive_ok:>3}/{total}")
    print(f"\n{rev or 'working tree'}: {agree}/{n} = {agree / n:.1%} agreement")
    print(f"naive baseline (last number): {naive_agree}/{n} = {naive_agree / n:.1%} agreement")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
