"""Pipeline stages: generate renders a versioned template per record and resumes to the same records;
parse keeps failures as None and counts them; filter and select count what they leave out."""

import json

import pytest

from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.scripted import ScriptedEngine
from selftaught.models.io import load_model
from selftaught.pipelines import filter_records, generate, parse, select_records, shard_seed
from selftaught.types import Prompt
from selftaught.world.arith import extract_answer

QUESTION = PromptTemplate(
    "test-question",
    3,
    user="From {document}, ask about {topic}.",
    slots=("document", "topic"),
    text="Q({document})",
)
DOCS = [{"id": f"d{i}", "document": f"doc {i}", "topic": "t", "source": "web"} for i in range(5)]


def echo(prompt: Prompt, j: int) -> str:
    return f"{prompt.id}/{j}: {prompt.text or prompt.messages[-1]['content']}"


def run_generate(out_dir, engine, records=DOCS, **kwargs):
    options = dict(generator="scripted", seed=7, shard_size=2)
    return generate(out_dir, records, engine, QUESTION, SamplingParams(n=2), **{**options, **kwargs})


def test_generate_attaches_samples_and_provenance(tmp_path):
    engine = ScriptedEngine(echo)
    records = run_generate(tmp_path, engine)
    assert [r["id"] for r in records] == [d["id"] for d in DOCS]
    first = records[0]
    assert first["source"] == "web" and first["document"] == "doc 0"
    assert [c["text"] for c in first["completions"]] == [
        "d0/0: From doc 0, ask about t.",
        "d0/1: From doc 0, ask about t.",
    ]
    assert first["completions"][0] == {
        "text": echo(engine.calls[0].prompts[0], 0),
        "finish_reason": "stop",
        "num_tokens": 0,
    }
    assert first["provenance"] == {
        "completions": {"template": "test-question@3", "generator": "scripted", "seed": 7 * 1_000_003}
    }
    assert [call.sampling.seed for call in engine.calls] == [shard_seed(7, i) for i in (0, 2, 4)]
    assert engine.calls[0].prompts[0].meta == {"template": "test-question@3"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["meta"] == {"template": "test-question@3", "generator": "scripted", "seed": 7}


def test_generate_raw_prompts_use_the_raw_text_form(tmp_path):
    records = run_generate(tmp_path, ScriptedEngine(echo), raw=True, output_field="answers")
    assert records[1]["answers"][1]["text"] == "d1/1: Q(doc 1)"
    assert set(records[1]["provenance"]) == {"answers"}


def test_generate_resumes_an_interrupted_stage_to_the_same_records(tmp_path):
    expected = run_generate(tmp_path / "reference", ScriptedEngine(echo))

    def crash_on_d2(prompt, j):
        if prompt.id == "d2":
            raise RuntimeError("killed")
        return echo(prompt, j)

    with pytest.raises(RuntimeError, match="killed"):
        run_generate(tmp_path / "stage", ScriptedEngine(crash_on_d2))
    resumed_engine = ScriptedEngine(echo)
    assert run_generate(tmp_path / "stage", resumed_engine) == expected
    assert [call.prompts[0].id for call in resumed_engine.calls] == ["d2", "d4"]  # shard 0 was kept


def test_generate_fingerprint_covers_template_generator_seed_and_records(tmp_path):
    run_generate(tmp_path, ScriptedEngine(echo))
    changed = [
        {"generator": "other"},
        {"seed": 8},
        {"records": [*DOCS[:4], {**DOCS[4], "document": "edited"}]},
    ]
    for kwargs in changed:
        with pytest.raises(ValueError, match="fingerprint"):
            run_generate(tmp_path, ScriptedEngine(echo), **kwargs)


def test_generate_names_a_missing_field(tmp_path):
    with pytest.raises(
        ValueError, match=r"record 1 has no field 'topic', which template test-question@3 needs"
    ):
        run_generate(tmp_path, ScriptedEngine(echo), records=[DOCS[0], {"id": "x", "document": "d"}])
    with pytest.raises(ValueError, match="no field 'id'"):
        run_generate(tmp_path, ScriptedEngine(echo), records=[{"document": "d", "topic": "t"}])


def test_generate_with_a_model_is_reproducible(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    template = PromptTemplate("world-q", 1, user="{question}", slots=("question",))
    records = [{"id": f"q{i}", "question": f"{i}+{i}"} for i in range(3)]
    sampling = SamplingParams(n=2, max_new_tokens=8)
    runs = [
        generate(
            tmp_path / name, records, HFEngine(model, tokenizer), template, sampling, generator="tiny", seed=1
        )
        for name in ("a", "b")
    ]
    assert runs[0] == runs[1]
    assert all(0 < c["num_tokens"] <= 8 for r in runs[0] for c in r["completions"])


def test_parse_keeps_failures_as_none_and_counts_them(tmp_path):
    records = [
        {"id": "a", "completions": [{"text": "Answer: 4"}, {"text": "no idea"}]},
        {"id": "b", "completions": [{"text": "??"}]},
        {"id": "c", "completions": [{"text": "Answer: -2"}]},
    ]
    parsed, counts = parse(tmp_path, records, extract_answer, parser_name="world-answer@1", shard_size=2)
    assert [r["parsed"] for r in parsed] == [[4, None], [None], [-2]]
    assert [r["completions"] for r in parsed] == [r["completions"] for r in records]
    assert counts == {"num_records": 3, "num_outputs": 4, "num_unparsed": 2, "num_records_unparsed": 1}
    assert parse(
        tmp_path, records, lambda text: pytest.fail("reread"), parser_name="world-answer@1", shard_size=2
    ) == (
        parsed,
        counts,
    )
    with pytest.raises(ValueError, match="fingerprint"):
        parse(tmp_path, records, extract_answer, parser_name="world-answer@2", shard_size=2)
    with pytest.raises(ValueError, match="record 0 has no field 'answers', which parse needs"):
        parse(tmp_path / "x", records, extract_answer, parser_name="p", field="answers")


def test_filter_records_counts_what_it_drops():
    kept, counts = filter_records([{"v": 1}, {"v": None}, {"v": 3}], lambda r: r["v"] is not None)
    assert kept == [{"v": 1}, {"v": 3}]
    assert counts == {"num_records": 3, "num_kept": 2, "num_dropped": 1}


def test_select_records_by_key_or_at_random_keeps_input_order():
    records = [{"i": i, "score": s} for i, s in enumerate([0.2, 0.9, 0.5, 0.9, 0.1])]
    top, counts = select_records(records, 3, key=lambda r: r["score"])
    assert [r["i"] for r in top] == [1, 2, 3]
    assert counts == {"num_records": 5, "num_selected": 3, "num_left_out": 2}
    tie, _ = select_records(records, 1, key=lambda r: r["score"])
    assert [r["i"] for r in tie] == [1]  # equal keys: the earlier record
    randoms = [select_records(records, 3, seed=seed)[0] for seed in (0, 0, 1)]
    assert randoms[0] == randoms[1] and len(randoms[0]) == 3
    assert [r["i"] for r in randoms[0]] == sorted(r["i"] for r in randoms[0])
    assert select_records(records, 9)[0] == records
    with pytest.raises(ValueError, match="num must be >= 0"):
        select_records(records, -1)
