"""ProgramEngine: replies from a function of the prompt, seeded per (seed, prompt id, sample index)."""

from selftaught.engines.base import SamplingParams
from selftaught.engines.program import ProgramEngine, prompt_text
from selftaught.types import Prompt


def draw(prompt, rng):
    return f"{prompt_text(prompt)} {rng.randint(0, 10**9)}"


def prompts(*ids):
    return [Prompt(id=i, messages=[{"role": "user", "content": f"q{i}"}]) for i in ids]


def test_samples_depend_on_seed_prompt_and_index_not_on_the_batch():
    engine = ProgramEngine(draw)
    both = engine.generate(prompts("a", "b"), SamplingParams(n=2, seed=1))
    alone = engine.generate(prompts("b"), SamplingParams(n=2, seed=1))
    assert both[1][0].text == alone[0][0].text and both[1][0].text != both[1][1].text
    assert engine.generate(prompts("b"), SamplingParams(n=1, seed=2))[0][0].text != alone[0][0].text
    assert both[0][0].text.startswith("qa ") and both[0][0].prompt_id == "a"


def test_token_ids_from_the_tokenizer():
    from selftaught.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    out = ProgramEngine(lambda p, rng: "12+3=15", tokenizer).generate(prompts("a"), SamplingParams())
    assert out[0][0].num_tokens == len(tokenizer("12+3=15", add_special_tokens=False)["input_ids"]) > 0
    assert ProgramEngine(lambda p, rng: "x").generate(prompts("a"), SamplingParams())[0][0].num_tokens == 0


def test_raw_text_is_what_a_program_reads():
    assert prompt_text(Prompt(id="a", messages=[{"role": "user", "content": "m"}], text="raw")) == "raw"
