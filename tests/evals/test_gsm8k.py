from pathlib import Path

import pytest

from selftaught.data.sources import read_records
from selftaught.evals.gsm8k import (
    EXEMPLARS,
    extract_number,
    few_shot_prompt,
    gsm8k_prompts,
    is_correct,
    reference_answer,
)
from selftaught.types import Completion

GSM8K_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (" She has 16 - 3 - 4 = 9 eggs. 9 * 2 = 18. The answer is 18.", "18"),
        (" The answer is $1,200.", "1200"),
        (" The answer is 3.5.", "3.5"),
        (" The answer is -4.", "-4"),
        (" so 5 + 4 = 9 toys", "9"),  # no 'The answer is': last number
        (" The answer is 7. Question: 12", "7"),  # the first 'The answer is' wins over later numbers
        (" I do not know.", None),
        # issue 16: a unicode minus sign is a minus, thin-space and space thousands separators are separators
        (" The answer is \u221218.", "-18"),
        (" so the change is \u22124.5 degrees", "-4.5"),
        (" The answer is 1\u2009000\u2009000.", "1000000"),
        (" The answer is 1\u202f000.", "1000"),
        (" The answer is 1 000 000.", "1000000"),
        (" she pays $12 500 in total", "12500"),
    ],
)
def test_extract_number(text, number):
    assert extract_number(text) == number


def test_reference_and_correctness():
    assert reference_answer("Janet sells 9 eggs.\n#### 1,018") == "1018"
    with pytest.raises(ValueError, match="####"):
        reference_answer("no final answer")
    [prompt] = gsm8k_prompts([{"question": "How many?", "answer": "2+2=4\n#### 4"}], num_shots=2)
    assert prompt.text.endswith("Question: How many?\nAnswer:") and prompt.text.count("Question:") == 3
    assert is_correct(prompt, Completion(prompt.id, " 2 + 2 = 4. The answer is 4.0."))
    assert not is_correct(prompt, Completion(prompt.id, " The answer is 5."))
    assert not is_correct(prompt, Completion(prompt.id, " no idea"))
    assert not is_correct(prompt, Completion(prompt.id, " The answer is \u22124."))  # -4, not 4


def test_few_shot_prompt_bounds_and_missing_columns():
    assert few_shot_prompt("Q?", 0) == "Question: Q?\nAnswer:"
    assert few_shot_prompt("Q?", len(EXEMPLARS)).count("The answer is") == len(EXEMPLARS)
    with pytest.raises(ValueError, match="num_shots"):
        few_shot_prompt("Q?", 9)
    with pytest.raises(ValueError, match="record 0 has no 'answer'"):
        gsm8k_prompts([{"question": "?"}])


@pytest.mark.skipif(not GSM8K_TEST.exists(), reason="shared GSM8K data not present")
def test_every_real_gsm8k_reference_parses_and_matches_itself():
    records = read_records(str(GSM8K_TEST))
    assert len(records) == 1319
    prompts = gsm8k_prompts(records, num_shots=0)
    for prompt, record in zip(prompts, records, strict=True):
        solution = record["answer"].rsplit("####", 1)[0] + f" The answer is {prompt.answer}."
        assert is_correct(prompt, Completion(prompt.id, solution)), record["answer"]
