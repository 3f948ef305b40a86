"""Agreement of a revision's math verifier with the hand-graded table `math_grading_cases.jsonl`.

    .venv/bin/python tests/rewards/math_agreement.py [GIT_REV]

With GIT_REV, grades with `src/selftaught/rewards/math.py` as it was at that revision (loaded as
a module); without, with the working tree's. Prints the agreement and the disagreeing cases.
"""

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = Path(__file__).parent / "math_grading_cases.jsonl"


def load_reward(rev: str | None):
    if rev is None:
        from selftaught.rewards.math import math_answer_reward

        return math_answer_reward
    source = subprocess.check_output(["git", "show", f"{rev}:src/selftaught/rewards/math.py"], text=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(f"math_at_{rev}", file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.math_answer_reward


def main(rev: str | None) -> None:
    reward = load_reward(rev)
    cases = [json.loads(line) for line in CASES.read_text().splitlines()]
    agree = 0
    for case in cases:
        reasons = [case["finish_reason"]] if "finish_reason" in case else None
        [score] = reward(["q"], [case["completion"]], [case["reference"]], finish_reason=reasons)
        agree += score == case["expected"]
        if score != case["expected"]:
            print(f"  {case['class']:>16}: got {score}, expected {case['expected']}: {case['completion']!r}")
    print(f"{rev or 'working tree'}: {agree}/{len(cases)} = {agree / len(cases):.1%} agreement")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
