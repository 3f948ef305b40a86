"""The command line end to end on a random-init tiny model (fast) and the smoke pretrain preset."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from selftaught.cli import main

GSM8K_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


def test_list_and_print_config(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "world-pretrain" in listed and "gemma3-270m-grpo" in listed and "semi-online-dpo-s10" in listed
    assert main(["world", "pretrain", "--print-config", "seed=3", "optim.lr=1e-3"]) == 0
    out = capsys.readouterr().out
    assert "seed: 3" in out and "lr: 0.001" in out
    assert main(["world-pretrain", "--describe"]) == 0
    assert "Probability that the teacher forgets" in capsys.readouterr().out


PARSER_ONLY = [
    ["--help"],
    ["online-rl", "--help"],
    ["generate", "--help"],
    ["list"],
    ["online-rl", "--describe"],
    ["divpo", "--describe"],
    ["world", "pretrain", "--describe"],
    ["sft", "--print-config"],
]
"""Commands that only read the recipe table, the presets and the configs: they start fast (no torch)."""


@pytest.mark.parametrize("argv", PARSER_ONLY, ids=" ".join)
def test_help_list_describe_and_print_config_import_no_torch(argv):
    code = (
        "import sys\n"
        "from selftaught.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "assert code in (0, None), code\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["world", "pretrain", "--print-config", "optim.lrr=1"], "did you mean 'optim.lr'"),
        (["world", "pretrain", "--preset", "nope"], "has no preset 'nope'; presets: tiny, tiny-smoke"),
        (["online-rl", "--print-config", "loss=ppo"], "'ppo' is not one of ['dpo', 'grpo']"),
        (["eval", "--model", "/does/not/exist", "--data", "world:test"], "/does/not/exist"),
    ],
)
def test_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_generate_writes_n_samples_per_prompt(tiny_model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "messages": [{"role": "user", "content": "12+7"}]}, {"prompt": "3-1"}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "generate",
                "--model",
                tiny_model_dir,
                "--prompts",
                str(prompts),
                "--out",
                str(out),
                "--n",
                "3",
                "--max-new-tokens",
                "5",
            ]
        )
        == 0
    )
    completions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c["prompt_id"] for c in completions] == ["a"] * 3 + ["1"] * 3
    assert all(
        0 < len(c["token_ids"]) <= 5 and len(c["logprobs"]) == len(c["token_ids"]) for c in completions
    )
    # TRL prompt/completion records: both prompts went through the chat template, so both are messages
    assert all(c["prompt"] == [{"role": "user", "content": "12+7"}] for c in completions[:3])
    assert all(c["prompt"] == [{"role": "user", "content": "3-1"}] for c in completions[3:])
    assert all(c["completion"] == [{"role": "assistant", "content": c["text"]}] for c in completions)


@pytest.mark.parametrize("flag", [[], ["--no-chat-template"]], ids=["chat-template", "no-chat-template"])
def test_generate_renders_text_prompts_with_the_chat_template_unless_told(
    flag, tiny_model_dir, tmp_path, monkeypatch
):
    """The tiny model's tokenizer has a chat template: a text prompt becomes one user turn, unless
    --no-chat-template sends it raw. The output's `prompt` is what the model was given, and reads back
    (`prompt_from_record`) as the same generation input."""
    from selftaught.data.chat import encode_prompt
    from selftaught.data.formats import prompt_from_record
    from selftaught.engines.hf import HFEngine
    from selftaught.models.io import load_model

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "q", "prompt": "12+7"}) + "\n")
    seen = []
    real = HFEngine.generate
    monkeypatch.setattr(
        HFEngine, "generate", lambda self, chunk, sampling: seen.extend(chunk) or real(self, chunk, sampling)
    )
    out = tmp_path / "out.jsonl"
    argv = ["generate", "--model", tiny_model_dir, "--prompts", str(prompts), "--out", str(out)]
    assert main([*argv, "--max-new-tokens", "4", *flag]) == 0
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    [prompt] = seen
    if flag:
        assert (prompt.text, prompt.messages) == ("12+7", [])
        assert (record["prompt"], record["completion"]) == ("12+7", record["text"])
    else:
        assert (prompt.text, prompt.messages) == (None, [{"role": "user", "content": "12+7"}])
        assert record["prompt"] == [{"role": "user", "content": "12+7"}]
    assert record["prompt_id"] == "q" and record["token_ids"] and record["finish_reason"]
    _, tokenizer = load_model(tiny_model_dir)
    assert encode_prompt(tokenizer, prompt_from_record(record, 0, "out")) == encode_prompt(tokenizer, prompt)


def test_a_tokenizer_without_a_chat_template_gets_text_prompts_raw():
    from types import SimpleNamespace

    from selftaught.commands.generate import chat_or_raw
    from selftaught.types import Prompt

    prompts = [Prompt("0", [], text="Q: 1+1\nA:"), Prompt("1", [{"role": "user", "content": "hi"}])]
    assert chat_or_raw(prompts, SimpleNamespace(chat_template=None), no_chat_template=False) == prompts
    as_chat = chat_or_raw(prompts, SimpleNamespace(chat_template="{{ x }}"), no_chat_template=False)
    assert [(p.text, p.messages) for p in as_chat] == [
        (None, [{"role": "user", "content": "Q: 1+1\nA:"}]),
        (None, [{"role": "user", "content": "hi"}]),
    ]


def test_eval_world_split_prints_level_table(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--model",
                tiny_model_dir,
                "--data",
                "world:valid",
                "--per-level",
                "5",
                "--levels",
                "1,4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| level 1 | 5 |" in printed and "| level 4 | 5 |" in printed
    summary = json.loads(out.read_text())
    assert summary["num_problems"] == 10 and len(summary["samples"]) == 10


@pytest.mark.skipif(not GSM8K_TEST.exists(), reason="shared GSM8K data not present")
def test_eval_gsm8k_file(tiny_model_dir, capsys):
    assert (
        main(
            [
                "eval",
                "--model",
                tiny_model_dir,
                "--data",
                str(GSM8K_TEST),
                "--limit",
                "3",
                "--num-shots",
                "0",
                "--max-new-tokens",
                "4",
            ]
        )
        == 0
    )
    assert "3 problems x 1 samples" in capsys.readouterr().out


def test_world_pretrain_smoke_preset_writes_a_complete_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "world",
                "pretrain",
                "--preset",
                "tiny-smoke",
                f"out_dir={run_dir}",
                "num_steps=6",
                "eval.every=3",
                "optim.warmup_steps=2",
            ]
        )
        == 0
    )
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "log.txt",
        "summary.json",
        "model/model.safetensors",
        "model/tokenizer.json",
    ):
        assert (run_dir / name).exists(), name
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "val_accuracy" in m] == [0, 3, 6]  # the start, every 3, the end
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses and all(loss == loss for loss in losses)  # finite, logged


def test_an_interrupted_generate_resumes_its_finished_shards(tiny_model_dir, tmp_path, monkeypatch):
    from selftaught.engines.hf import HFEngine

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{i}+{i}="}) + "\n" for i in range(5)))
    argv = ["generate", "--model", tiny_model_dir, "--prompts", str(prompts), "--n", "2"]
    argv += ["--max-new-tokens", "4", "--shard-size", "2"]
    assert main([*argv, "--out", str(tmp_path / "straight.jsonl")]) == 0
    calls = []
    real = HFEngine.generate

    def crash_on_the_second_shard(self, chunk, sampling):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, chunk, sampling)

    monkeypatch.setattr(HFEngine, "generate", crash_on_the_second_shard)
    assert main([*argv, "--out", str(tmp_path / "cut.jsonl")]) == 130  # Ctrl-C: one line, no traceback
    assert not (tmp_path / "cut.jsonl").exists()
    calls.clear()
    monkeypatch.setattr(
        HFEngine,
        "generate",
        lambda self, chunk, sampling: calls.append(len(chunk)) or real(self, chunk, sampling),
    )
    assert main([*argv, "--out", str(tmp_path / "cut.jsonl")]) == 0
    assert calls == [2, 1]  # the first shard was kept
    assert (tmp_path / "cut.jsonl").read_text() == (tmp_path / "straight.jsonl").read_text()


def test_once_the_command_is_done_ctrl_c_no_longer_interrupts_the_exit(monkeypatch, capsys):
    """The kill -9 probe's SIGINT 19 ms after `sft` wrote its model printed a torch atexit traceback."""
    import signal

    from selftaught.cli import main

    previous = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr("sys.argv", ["selftaught", "list"])
    try:
        assert main() == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGINT, previous)
        assert main(["list"]) == 0  # called as a library: the caller's handler is left alone
        assert signal.getsignal(signal.SIGINT) is previous
    finally:
        signal.signal(signal.SIGINT, previous)


def test_generate_with_an_adaptive_head_uses_its_temperatures(tiny_model_dir, tmp_path, capsys):
    import torch

    from selftaught.models.adaptive import AdaptiveDecoder

    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    head = AdaptiveDecoder(config["hidden_size"])
    with torch.no_grad():
        head.mlp[-1].bias[0] = 50.0  # always tau = 0: greedy
    head.save(tmp_path / "head")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "12+7"}) + "\n" + json.dumps({"prompt": "3-1"}) + "\n")
    base = ["generate", "--model", tiny_model_dir, "--prompts", str(prompts), "--max-new-tokens", "6"]
    assert main([*base, "--out", str(tmp_path / "greedy.jsonl"), "--temperature", "0"]) == 0
    assert (
        main([*base, "--out", str(tmp_path / "head.jsonl"), "--adaptive-head", str(tmp_path / "head")]) == 0
    )
    greedy = [json.loads(line) for line in (tmp_path / "greedy.jsonl").read_text().splitlines()]
    adaptive = [json.loads(line) for line in (tmp_path / "head.jsonl").read_text().splitlines()]
    assert [r["token_ids"] for r in adaptive] == [r["token_ids"] for r in greedy]
    assert all(r["meta"]["temperatures"] == [0.0] for r in adaptive)
    AdaptiveDecoder(config["hidden_size"] + 1).save(tmp_path / "wrong")
    assert main([*base, "--out", str(tmp_path / "w.jsonl"), "--adaptive-head", str(tmp_path / "wrong")]) == 2
    assert "use a head trained over this model" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x.jsonl"), "--sample-head"]) == 2
    assert "--sample-head must be used with --adaptive-head" in capsys.readouterr().err
