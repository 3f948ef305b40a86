"""User mistakes end in one clear line (exit 2), before any slow work, never in a traceback or a
silent default (issue 16's table of bad inputs)."""

import json
import shutil
from pathlib import Path

import pytest

from selftaught.cli import main

GSM = {"question": "Q?", "answer": "1 + 1 = 2\n#### 2"}


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _jsonl(tmp_path: Path, name: str, rows: list) -> str:
    return _file(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))


def _broken_model(tmp_path: Path, model_dir: str, damage: str) -> str:
    broken = tmp_path / f"model-{damage}"
    shutil.copytree(model_dir, broken)
    if damage == "weights":
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    else:
        (broken / "config.json").write_text("{not json")
    return str(broken)


CASES = {
    # name: (argv builder, message fragment)
    "truncated safetensors": (
        lambda t, m: ["eval", "--model", _broken_model(t, m, "weights"), "--per-level", "1"],
        "",
    ),
    "malformed config.json": (
        lambda t, m: ["eval", "--model", _broken_model(t, m, "config"), "--per-level", "1"],
        "",
    ),
    "yaml syntax error": (
        lambda t, m: ["sft", "--config", _file(t, "bad.yaml", "optim: [1, 2\n")],
        "not valid YAML",
    ),
    "empty --config": (lambda t, m: ["sft", "--config", _file(t, "empty.yaml", "")], "is empty"),
    "--config and --preset": (
        lambda t, m: ["sft", "--preset", "tiny", "--config", _file(t, "c.yaml", "seed: 1\n")],
        "not both",
    ),
    "log_every=0": (lambda t, m: ["sft", "log_every=0"], "'log_every' must be >= 1"),
    "checkpoint_every=-1": (lambda t, m: ["sft", "checkpoint_every=-1"], "'checkpoint_every' must be >= 0"),
    "keep_last=0": (lambda t, m: ["dpo", "keep_last=0"], "'keep_last' must be None (all) or >= 1"),
    "batch_size=0": (lambda t, m: ["sft", "batch_size=0"], "'batch_size' must be >= 1"),
    "lora.r=-2": (lambda t, m: ["sft", "lora.r=-2"], "'lora.r' must be >= 0"),
    "rollouts.num_prompts=0": (
        lambda t, m: ["online-rl", "rollouts.num_prompts=0"],
        "'rollouts.num_prompts' must be >= 1",
    ),
    "out_dir is a file": (
        lambda t, m: ["sft", f"out_dir={_file(t, 'f.txt', 'x')}", f"model={m}"],
        "is a file",
    ),
    "--max-new-tokens 0": (
        lambda t, m: [
            "generate",
            "--model",
            m,
            "--prompts",
            _jsonl(t, "p.jsonl", [{"prompt": "1+1="}]),
            "--out",
            str(t / "o.jsonl"),
            "--max-new-tokens",
            "0",
        ],
        "--max-new-tokens must be >= 1",
    ),
    "empty prompts file": (
        lambda t, m: [
            "generate",
            "--model",
            m,
            "--prompts",
            _file(t, "e.jsonl", ""),
            "--out",
            str(t / "o.jsonl"),
        ],
        "holds no prompt",
    ),
    "--out is a directory": (
        lambda t, m: [
            "generate",
            "--model",
            m,
            "--prompts",
            _jsonl(t, "p.jsonl", [{"prompt": "1+1="}]),
            "--out",
            str(t),
            "--max-new-tokens",
            "2",
        ],
        "",
    ),
    "GSM8K question not a string": (
        lambda t, m: [
            "sft",
            f"model={m}",
            f"out_dir={t / 'r'}",
            f"data.source={_jsonl(t, 'g.jsonl', [{'question': 5, 'answer': GSM['answer']}])}",
        ],
        "record 0: GSM8K `question` must be a string",
    ),
    "messages of the wrong type": (
        lambda t, m: [
            "generate",
            "--model",
            m,
            "--prompts",
            _jsonl(t, "m.jsonl", [{"messages": ["hi"]}]),
            "--out",
            str(t / "o.jsonl"),
        ],
        "record 0 `messages`",
    ),
    "empty chosen response": (
        lambda t, m: [
            "dpo",
            f"model={m}",
            f"out_dir={t / 'r'}",
            f"data.source={_jsonl(t, 'pairs.jsonl', [{'prompt': 'q', 'chosen': '', 'rejected': 'b'}])}",
        ],
        "empty `chosen` response",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_mistake_is_one_clear_line(case, tiny_model_dir, tmp_path, capsys):
    build, fragment = CASES[case]
    assert main(build(tmp_path, tiny_model_dir)) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress bars may come first
    assert last.startswith("selftaught: error: ") and "Traceback" not in err
    assert fragment in last


def test_an_unreachable_generation_server_is_one_line(tiny_model_dir, tmp_path, capsys):
    argv = ["online-rl", "--preset", "tiny-smoke", f"out_dir={tmp_path / 'r'}", f"model={tiny_model_dir}"]
    argv += ["generator.kind=remote", "generator.base_url=http://127.0.0.1:9/v1"]  # nothing listens on 9
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("selftaught: error: could not ask http://127.0.0.1:9/v1/admin/reload")


def test_an_example_longer_than_a_micro_batch_names_the_config_keys(tiny_model_dir, tmp_path, capsys):
    argv = ["sft", "--preset", "tiny-smoke", f"out_dir={tmp_path / 'r'}", f"model={tiny_model_dir}"]
    assert main([*argv, "micro_batch_tokens=8"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "raise the recipe's `micro_batch_tokens`" in last and "token_budget_batches" not in last
