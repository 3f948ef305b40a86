"""lm-evaluation-harness task configs (`selftaught/evals/lm_eval_tasks`) measure what `selftaught eval`
measures: the same prompts, stop strings, token budget and answer checks (fast), and, on the tiny-world
student, the same completions and per-problem correctness (slow, runs lm-eval)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from selftaught.data.gsm8k import EXEMPLARS, STOP, few_shot_prompt
from selftaught.evals.lm_eval_tasks import TASKS_DIR, tasks
from selftaught.evals.sets import load_eval_set


class _TaskLoader(yaml.SafeLoader):
    """Reads lm-eval's `!function module.name` tags as plain strings."""


_TaskLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def task_config(name: str) -> dict:
    return yaml.load((TASKS_DIR / f"{name}.yaml").read_text(), Loader=_TaskLoader)


def render_gsm8k(question: str, num_shots: int) -> str:
    """The prompt lm-eval builds from the task config (its first_n few-shot sampler, no chat template)."""
    cfg = task_config("selftaught_gsm8k")
    assert cfg["doc_to_text"] == "Question: {{question | trim}}\nAnswer:"
    shots = [
        f"Question: {s['question'].strip()}\nAnswer:{cfg['target_delimiter']}{s['target']}"
        for s in tasks.gsm8k_fewshot()
    ]
    return cfg["fewshot_delimiter"].join([*shots[:num_shots], f"Question: {question.strip()}\nAnswer:"])


def test_gsm8k_task_matches_selftaught_eval(tmp_path):
    cfg = task_config("selftaught_gsm8k")
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "How many?", "answer": "2+2=4\n#### 4"}) + "\n")
    eval_set = load_eval_set(str(data))
    assert cfg["generation_kwargs"]["until"] == eval_set.stop == STOP
    assert cfg["generation_kwargs"]["max_gen_toks"] == eval_set.max_new_tokens
    assert (
        tasks.gsm8k_dataset(data_files=str(data), pretrained="ignored")["test"][0]["question"] == "How many?"
    )
    with pytest.raises(ValueError, match="--metadata data_files="):
        tasks.gsm8k_dataset()
    assert cfg["generation_kwargs"]["do_sample"] is False and cfg["num_fewshot"] == len(EXEMPLARS)
    assert cfg["fewshot_config"] == {"sampler": "first_n", "samples": "!function tasks.gsm8k_fewshot"}
    for shots in (0, 3, 8):
        assert render_gsm8k(" How many? ", shots) == few_shot_prompt(" How many? ", shots)
    doc = {"question": "?", "answer": "2+2=4\n#### 1,018"}
    assert tasks.gsm8k_results(doc, [" so 1018 - 0 = 1018. The answer is 1,018."]) == {"acc": 1.0}
    assert tasks.gsm8k_results(doc, [" The answer is 18."]) == {"acc": 0.0}


def test_world_task_draws_selftaught_eval_problems():
    cfg = task_config("selftaught_world")
    assert cfg["generation_kwargs"]["until"] == [] and cfg["generation_kwargs"]["max_gen_toks"] == 64
    docs = tasks.world_dataset(per_level=3, levels="1,2", seed=1, pretrained="ignored")["test"]
    prompts = load_eval_set("world:test", per_level=3, levels=[1, 2], seed=1).prompts
    assert [d["question"] for d in docs] == [p.messages[0]["content"] for p in prompts]
    assert [d["answer"] for d in docs] == [p.answer for p in prompts]
    assert tasks.world_results(docs[0], [f"x Answer: {docs[0]['answer']}"]) == {"acc": 1.0}
    assert tasks.world_results(docs[0], ["no answer"]) == {"acc": 0.0}


@pytest.mark.slow
def test_lm_eval_agrees_with_selftaught_eval_on_the_tiny_world(tmp_path):
    """`selftaught eval --harness lm-eval` (lm-eval's HF model, its chat-template rendering, batching and
    stop handling) and `selftaught eval` on the same 60 world test problems: the same completion text and
    the same correctness on every problem (measured: 60 of 60, accuracy equal)."""
    pytest.importorskip("lm_eval")
    common = ["--model", "tiny-world", "--data", "world:test", "--per-level", "20", "--batch-size", "16"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cli = [sys.executable, "-m", "selftaught.cli", "eval", *common]
    ours = tmp_path / "selftaught.json"
    subprocess.run([*cli, "--out", str(ours)], check=True, env=env, timeout=600)
    run = subprocess.run(
        [*cli, "--harness", "lm-eval", "--out", str(tmp_path / "lm_eval")],
        check=True, env=env, timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    assert run.stdout.startswith("lm_eval run --model hf"), run.stdout[:300]
    [samples_file] = (tmp_path / "lm_eval").rglob("samples_selftaught_world_*.jsonl")
    theirs = sorted(
        (json.loads(line) for line in samples_file.read_text().splitlines()), key=lambda r: r["doc_id"]
    )
    mine = json.loads(ours.read_text())
    assert len(theirs) == len(mine["samples"]) == 60
    prompts = load_eval_set("world:test", per_level=20).prompts
    agree = 0
    for row, sample, prompt in zip(theirs, mine["samples"], prompts, strict=True):
        assert row["doc"]["question"] == prompt.messages[0]["content"] and sample["prompt_id"] == prompt.id
        text = sample["completions"][0]
        assert row["resps"][0][0] == text, (row["doc"], row["resps"][0][0], text)
        ours_correct = tasks.world_results(row["doc"], [text])["acc"]
        agree += row["acc"] == ours_correct
    assert agree == 60
    assert sum(row["acc"] for row in theirs) / 60 == pytest.approx(mine["accuracy"])
