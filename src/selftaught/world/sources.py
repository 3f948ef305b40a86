"""The tiny world as named data sources: `world:<name>[:<split>]` in any recipe's `source` field.

    world:sft           SFT conversations (a clean or buggy teacher's solutions; train split)
    world:prompts       prompt-only records with the exact `answer` (RL, sampled pairs, generation)
    world:pairs         preference pairs: correct vs the buggy teacher's carry slip (reward models)
    world:judge-pairs   judge pairs with a known winner (J1, Self-Taught Evaluator)
    world:judge-sft     the seed judge's conversations: a pair in the world judge format, a biased
                        teacher's chain and verdict (`bug`: buggy chains, `a_bias`: extra A verdicts;
                        `world.judge_pairs.judge_sft_records`; train split)
    world:list-judge-sft    the list-task seed judge's pool (`world.list_tasks.seed_judge_records`): train
                            tasks solved, and correct check traces of random-corruption pairs (train split)
    world:list-judge-nothink-sft  the same with verdict-only judgments (`[[B]]`; J1 without thinking)
    world:persona-sft       persona conversations: `Make a persona.` -> `name city job` (Zipf-skewed,
                            10% malformed; `world.persona`), for the DivPO seed model
    world:persona-prompts   the persona instruction as prompt-only records (ids `persona-<i>`, task
                            `persona`; reward `persona_valid`), for DivPO's online loop
    world:persona-json-prompts  the same task as a raw-text JSON prompt for real models (reward
                            `persona_json_valid`)
    world:keywords-sft      keywords conversations: `Keywords for a story about the <topic>.` -> five
                            words (Zipf-skewed, 10% malformed; `world.keywords`), DivPO's graded seed model
    world:keywords-prompts  the four topics' instructions in turn as prompt-only records (ids
                            `keywords-<i>`, task `keywords`, a `topic` column; reward `keywords_quality`)
    world:lpo-sft           adaptive decoding's base-model mix: half MATH (clean chain-of-thought
                            arithmetic, levels 1-3) and half STORY conversations (`Tell a story about
                            the <place>.` -> six Zipf words drawn with replacement; `world.stories`)
    world:lpo-prompts       the same mix as prompt-only records, MATH and STORY in turn: MATH ones (task
                            `math`, an `answer`; reward `world_answer`) from `<split>`, STORY ones
                            (ids `story-<i>`, task `story`, a `place` column; reward `story_quality`)
    world:lpo-cstory-sft    the token-level base-model mix: a third each of MATH, STORY and CSTORY
                            (`Tell a story about the <place>. Start each part with <digit>.` -> three
                            parts `<digit> <word> <word>`, 70% keeping the digit; `world.stories`)
    world:lpo-cstory-prompts  MATH, STORY and CSTORY prompts in turn (CSTORY: ids `cstory-<i>`, task
                            `cstory`, `place` and `opener` columns; reward `cstory_quality`)
    world:thought-questions  arithmetic chains as NaturalThoughts questions (`id`, `question`, `answer`,
                            `level` = the known difficulty; `world.traces`), any split
    world:story-title-prompts  raw-text story prompts for real models (`Write a short story titled
                            "The <adjective> <noun>".`; ids `title-<i>`, task `story`, a `title`
                            column; reward `ngram_novelty`; `world.titles`: 192/32/32 titles by split)
    world:facts-sft         the RAG world's base-model conversations (`world.facts`): closed-book QA
                            on the known 60% of the facts, QA over four passages, and the same with
                            a refuse rule (`unknown` when the passages do not say)
    world:facts-qa          the knowledge-base questions as RA-DIT records (`question`, `answer`,
                            `retrieved_support`, and `known` / `present` labels); train or test split
    world:reasoning-docs    NaturalReasoning's documents (`world.reasoning_docs`): `{id, document,
                            family, kind}`, worked solutions or facts / noise only (train only)
    world:reasoning-questions  questions of every reasoning family with their answers and the user
                            turn (`{id, question, answer, family, messages}`), of any split

`<split>` is `train` (default), `valid` or `test`. Each builder takes the keyword options it
documents; `world_records` passes each builder the options it accepts, so a recipe hands over its
data config's fields without knowing which source it reads (`num` is what a recipe calls
`num_examples`, `num_pairs`, `num_prompts` or `pool_size`). Records use the TRL vocabulary, so the
same code path reads a world source and a user's file. The persona, keywords and `*-sft` sources
have a train split only (`lpo-prompts` and `lpo-cstory-prompts` take the split of their MATH problems).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Sequence
from typing import Any

from selftaught.world import facts, list_tasks, reasoning_docs, traces
from selftaught.world.arith import Problem, sample_problems, sample_sft_examples, solve, to_prompt
from selftaught.world.judge_pairs import judge_sft_records, sample_judge_pairs, to_preference_record
from selftaught.world.keywords import keywords_conversations, keywords_prompts
from selftaught.world.persona import persona_conversations, persona_json_prompts, persona_prompts
from selftaught.world.stories import (
    constrained_conversations,
    constrained_prompts,
    story_conversations,
    story_prompts,
)
from selftaught.world.titles import story_title_prompts

PREFIX = "world:"


def sft_records(
    *,
    split: str = "train",
    num: int = 20_000,
    levels: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    strategy_weights: dict[str, float] | None = None,
    bug: float = 0.0,
) -> list[dict[str, Any]]:
    """`num` conversations on train problems; a share `bug` of the teacher's additions forget a carry."""
    _train_only("sft", split)
    return sample_sft_examples(num, list(levels), seed, strategy_weights, bug=bug)


def prompt_records(
    *, split: str = "train", num: int = 512, levels: Sequence[int] = (1, 2, 3), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` distinct problems of `split` as prompt-only records (`id`, `prompt`, `answer`, `task`
    `arith`, and `level` / `split` / `expression` columns); they read back as `to_prompt(problem)`."""
    records = []
    for problem in sample_problems(split, num, list(levels), seed):
        prompt = to_prompt(problem)
        record = {"id": prompt.id, "prompt": prompt.messages, "answer": prompt.answer, "task": prompt.task}
        records.append({**record, **prompt.meta})
    return records


def judge_pair_records(
    *, split: str = "train", num: int = 300, levels: Sequence[int] = (1, 2, 3), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` judge pairs (correct vs dropped-carry or off-by-one solution) on distinct `split` problems."""
    return [to_preference_record(pair) for pair in sample_judge_pairs(split, num, levels, seed)]


def judge_sft_source(
    *,
    split: str = "train",
    num: int = 20_000,
    levels: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    bug: float = 0.3,
    a_bias: float = 0.2,
) -> list[dict[str, Any]]:
    """`num` seed-judge conversations (`world.judge_pairs.judge_sft_records`) on train problems."""
    _train_only("judge-sft", split, "(evaluate the judge on world:judge-pairs:valid or with eval-judge)")
    return judge_sft_records(num, levels, seed, bug, a_bias)


def list_judge_sft_source(*, split: str = "train", num: int = 20_000, seed: int = 0) -> list[dict[str, Any]]:
    """`num` conversations of the list-task seed judge (`world.list_tasks.seed_judge_records`)."""
    _train_only("list-judge-sft", split, "(evaluate the judge on world-lists:<split> with eval-judge)")
    return list_tasks.seed_judge_records(num, seed)


def list_judge_nothink_sft_source(
    *, split: str = "train", num: int = 20_000, seed: int = 0
) -> list[dict[str, Any]]:
    """The same pool with verdict-only judgments (`seed_judge_records(thinking=False)`)."""
    _train_only(
        "list-judge-nothink-sft", split, "(evaluate the judge on world-lists:<split> with eval-judge)"
    )
    return list_tasks.seed_judge_records(num, seed, thinking=False)


PROBLEMS_PER_PAIR = 5
"""Preference pairs: problems drawn per pair asked for (problems without a carry may give no pair)."""


def pair_records(
    *,
    split: str = "train",
    num: int = 4000,
    levels: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    length_bias: float = 0.0,
    off_by_one: bool = False,
) -> list[dict[str, Any]]:
    """`num` conversational preference records on distinct `split` problems.

    Chosen is the correct chain solution, rejected the buggy teacher's (every units carry of an
    addition forgotten), so only problems with a carry give a pair. `off_by_one` also pairs the
    others, against the chain solution with its last result off by 1 or 10. With `length_bias` p, a
    share p of the pairs instead prefers the longer correct solution (grouped strategy) over the
    chain one (`kind` column: `carry`, `off_by_one` or `length`). The kind of each pair is drawn
    first, then the next problem that can give it is used.
    """
    if not 0 <= length_bias <= 1:
        raise ValueError(f"length_bias must be in [0, 1], got {length_bias}")
    rng = random.Random(f"{seed}|{split}")
    problems = sample_problems(split, PROBLEMS_PER_PAIR * num, list(levels), seed)
    records: list[dict[str, Any]] = []
    length_pair = rng.random() < length_bias
    for problem in problems:
        record = _pair_record(problem, length_pair, off_by_one, rng)
        if record is None:
            continue
        records.append(record)
        if len(records) == num:
            return records
        length_pair = rng.random() < length_bias
    raise ValueError(
        f"only {len(records)} of {num} {split} pairs from {len(problems)} problems; ask for fewer"
    )


def _pair_record(
    problem: Problem, length_pair: bool, off_by_one: bool, rng: random.Random
) -> dict[str, Any] | None:
    """One preference record for `problem`, or None when it cannot give the kind asked for."""
    correct = solve(problem, "chain")
    if length_pair:
        kind, chosen, rejected = "length", solve(problem, "grouped"), correct
    else:
        chosen = correct
        kind, rejected = wrong_solution(problem, rng)
        if kind == "off_by_one" and not off_by_one:
            return None
    return {
        "prompt": [{"role": "user", "content": problem.text}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "kind": kind,
        "answer": str(problem.answer),
    }


def wrong_solution(problem: Problem, rng: random.Random) -> tuple[str, str]:
    """`(kind, solution)`: the buggy teacher's chain solution when it differs from the correct one
    (the problem has a units carry), else the correct one with its last result off by 1 or 10."""
    correct = solve(problem, "chain")
    buggy = solve(problem, "chain", bug=1.0, rng=rng)
    if buggy != correct:
        return "carry", buggy
    offset = rng.choice((-10, -1, 1, 10))
    wrong = problem.answer + offset if problem.answer + offset >= 0 else problem.answer - offset
    ending = f"={problem.answer} Answer: {problem.answer}"
    assert correct.endswith(ending), correct
    return "off_by_one", f"{correct.removesuffix(ending)}={wrong} Answer: {wrong}"


PERSONA_HINT = "(one fixed instruction: evaluate by sampling it, `world.persona.persona_stats`)"


def persona_sft_records(
    *, split: str = "train", num: int = 20_000, seed: int = 0, malformed: float = 0.1
) -> list[dict[str, Any]]:
    """`num` persona conversations (`messages`: the instruction, then a sampled `name city job`), a
    share `malformed` of them broken; a pure function of `seed`."""
    _train_only("persona-sft", split, PERSONA_HINT)
    return persona_conversations(num, seed, malformed)


def persona_json_prompt_records(*, split: str = "train", num: int = 512) -> list[dict[str, Any]]:
    """`num` raw-text prompts of the persona task's JSON form (real models; reward `persona_json_valid`)."""
    _train_only("persona-json-prompts", split, PERSONA_HINT)
    return persona_json_prompts(num)


def persona_prompt_records(*, split: str = "train", num: int = 512) -> list[dict[str, Any]]:
    """`num` prompt-only records (`id` `persona-<i>`, `prompt` the instruction, `task` `persona`): the
    same text each time, so an online pool of `num` prompts is `num` draws of the one instruction."""
    _train_only("persona-prompts", split, PERSONA_HINT)
    return persona_prompts(num)


KEYWORDS_HINT = "(evaluate by sampling the topics' instructions: `world.keywords.keywords_stats`)"


def keywords_sft_records(
    *, split: str = "train", num: int = 20_000, seed: int = 0, malformed: float = 0.1
) -> list[dict[str, Any]]:
    """`num` keywords conversations (`messages`: a uniform topic's instruction, then five sampled words),
    a share `malformed` of them broken; a pure function of `seed`."""
    _train_only("keywords-sft", split, KEYWORDS_HINT)
    return keywords_conversations(num, seed, malformed)


def keywords_prompt_records(*, split: str = "train", num: int = 512) -> list[dict[str, Any]]:
    """`num` prompt-only records cycling over the topics (`id` `keywords-<i>`, `prompt` the instruction,
    `task` `keywords`, `topic`), so an online pool of `num` prompts holds each topic about `num` / 4 times."""
    _train_only("keywords-prompts", split, KEYWORDS_HINT)
    return keywords_prompts(num)


MATH_TASK = "math"
"""The task of the `lpo-prompts` source's arithmetic records (a Rubric routes it to `world_answer`)."""


def lpo_sft_records(*, split: str = "train", num: int = 20_000, seed: int = 0) -> list[dict[str, Any]]:
    """`num` conversations, shuffled: `num` // 2 clean chain-of-thought solutions of train problems of
    levels 1-3 (a `level` column) and the rest STORY conversations; a pure function of `seed`."""
    _train_only("lpo-sft", split, "(evaluate on world:lpo)")
    num_math = num // 2
    records = sample_sft_examples(num_math, [1, 2, 3], seed) + story_conversations(num - num_math, seed)
    random.Random(f"lpo-sft|{seed}").shuffle(records)
    return records


def lpo_prompt_records(
    *, split: str = "train", num: int = 512, levels: Sequence[int] = (1, 2, 3), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` prompt-only records alternating MATH and STORY (MATH first, so any prefix is half and half):
    `num` - `num` // 2 distinct `split` problems as `prompt_records` gives them but with task `math`,
    and `num` // 2 STORY prompts cycling over the places (`story_prompts`). Each record names its task,
    so a Rubric routes its reward: math -> `world_answer`, story -> `story_quality`."""
    num_story = num // 2
    maths = [
        {**r, "task": MATH_TASK}
        for r in prompt_records(split=split, num=num - num_story, levels=levels, seed=seed)
    ]
    stories = story_prompts(num_story)
    records = [r for pair in zip(maths, stories, strict=False) for r in pair]
    return records + maths[num_story:]


def lpo_cstory_sft_records(*, split: str = "train", num: int = 30_000, seed: int = 0) -> list[dict[str, Any]]:
    """`num` conversations, shuffled: a third each (MATH takes the remainder) of clean chain-of-thought
    solutions (levels 1-3), STORY and CSTORY conversations; a pure function of `seed`."""
    _train_only("lpo-cstory-sft", split, "(evaluate on world:lpo-cstory)")
    num_story = num // 3
    records = (
        sample_sft_examples(num - 2 * num_story, [1, 2, 3], seed)
        + story_conversations(num_story, seed)
        + constrained_conversations(num_story, seed)
    )
    random.Random(f"lpo-cstory-sft|{seed}").shuffle(records)
    return records


def lpo_cstory_prompt_records(
    *, split: str = "train", num: int = 512, levels: Sequence[int] = (1, 2, 3), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` prompt-only records: MATH, STORY and CSTORY in turn (`num` // 3 STORY and CSTORY, MATH the
    rest), MATH from `split` as in `lpo_prompt_records`; each names its task for a Rubric."""
    num_story = num // 3
    maths = [
        {**r, "task": MATH_TASK}
        for r in prompt_records(split=split, num=num - 2 * num_story, levels=levels, seed=seed)
    ]
    triples = zip(maths, story_prompts(num_story), constrained_prompts(num_story), strict=False)
    records = [r for triple in triples for r in triple]
    return records + maths[num_story:]


def thought_question_records(
    *, split: str = "train", num: int = 2000, levels: Sequence[int] = (1, 2, 3, 4), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` distinct `split` problems as NaturalThoughts question records (`world.traces.question_records`)."""
    return traces.question_records(split=split, num=num, levels=levels, seed=seed)


def story_title_prompt_records(*, split: str = "train", num: int = 512) -> list[dict[str, Any]]:
    """`num` raw-text story prompts cycling over the titles of `split` (`world.titles.story_title_prompts`)."""
    return story_title_prompts(num, split)


def facts_sft_records(*, split: str = "train", num: int = 20_000, seed: int = 0) -> list[dict[str, Any]]:
    """`num` base-model conversations of the RAG world (`world.facts.sft_conversations`)."""
    _train_only("facts-sft", split, "(evaluate on world:facts-qa:test)")
    return facts.sft_conversations(num, seed)


def facts_qa_records(*, split: str = "train", seed: int = 0) -> list[dict[str, Any]]:
    """The RAG world's questions of `split` (train or test) as RA-DIT records (`world.facts.qa_records`)."""
    if split not in ("train", "test"):
        raise ValueError(f"world:facts-qa has a train and a test split, got {split!r}")
    return facts.qa_records(split, seed)


def reasoning_docs_records(
    *, split: str = "train", num: int = 1000, families: Sequence[str] | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """`num` NaturalReasoning documents of `families` (default the six training families)."""
    _train_only("reasoning-docs", split, "(evaluate on world:reasoning-questions:test)")
    families = tuple(families or reasoning_docs.TRAIN_FAMILIES)
    return reasoning_docs.documents(num=num, families=families, seed=seed)


def reasoning_question_records(
    *, split: str = "test", num: int = 100, families: Sequence[str] | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """`num` questions per reasoning family of `split` (default every family, the OOD one included)."""
    families = tuple(families or reasoning_docs.FAMILIES)
    return reasoning_docs.eval_questions(split=split, num=num, families=families, seed=seed)


WORLD_SOURCES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "sft": sft_records,
    "prompts": prompt_records,
    "pairs": pair_records,
    "judge-pairs": judge_pair_records,
    "judge-sft": judge_sft_source,
    "list-judge-sft": list_judge_sft_source,
    "list-judge-nothink-sft": list_judge_nothink_sft_source,
    "persona-sft": persona_sft_records,
    "persona-prompts": persona_prompt_records,
    "persona-json-prompts": persona_json_prompt_records,
    "keywords-sft": keywords_sft_records,
    "keywords-prompts": keywords_prompt_records,
    "lpo-sft": lpo_sft_records,
    "lpo-prompts": lpo_prompt_records,
    "lpo-cstory-sft": lpo_cstory_sft_records,
    "lpo-cstory-prompts": lpo_cstory_prompt_records,
    "facts-sft": facts_sft_records,
    "facts-qa": facts_qa_records,
    "story-title-prompts": story_title_prompt_records,
    "reasoning-docs": reasoning_docs_records,
    "reasoning-questions": reasoning_question_records,
    "thought-questions": thought_question_records,
}


def world_records(spec: str, **options: Any) -> list[dict[str, Any]]:
    """The records of `world:<name>[:<split>]`; each builder gets the `options` it accepts."""
    name, _, split = spec.removeprefix(PREFIX).partition(":")
    if name not in WORLD_SOURCES:
        raise ValueError(
            f"unknown world source {spec!r}; valid: {', '.join(PREFIX + n for n in WORLD_SOURCES)}"
        )
    build = WORLD_SOURCES[name]
    accepted = inspect.signature(build).parameters
    kwargs = {key: value for key, value in options.items() if key in accepted}
    return build(split=split or "train", **kwargs)


def _train_only(name: str, split: str, hint: str = "(evaluate on world:valid or world:test)") -> None:
    if split != "train":
        raise ValueError(f"world:{name} has a train split only {hint}")
