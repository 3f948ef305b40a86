"""User mistakes end in one clear line (exit 2), before any slow work, never in a traceback or a
silent default (issue 16's table of bad inputs)."""

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from selftaught.cli import main

GSM = {"question": "Q?", "answer": "1 + 1 = 2\n#### 2"}


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _bytes(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _jsonl(tmp_path: Path, name: str, rows: list) -> str:
    return _file(tmp_path, name, "".join(json.dumps(r) + "\n" for r in rows))


def _recipe(recipe: str, *overrides: str) -> Callable[[Path, str], list[str]]:
    """`selftaught <recipe>` on the tiny-smoke preset and the test model, into a fresh run directory;
    `{t}` in an override is the test's tmp_path."""
    return lambda t, m: [
        recipe,
        "--preset",
        "tiny-smoke",
        f"model={m}",
        f"out_dir={t / 'run'}",
        *(o.replace("{t}", str(t)) for o in overrides),
    ]


def _data(recipe: str, key: str, rows: list, *overrides: str) -> Callable[[Path, str], list[str]]:
    """`selftaught <recipe> <key>=<a JSONL file of rows>`."""
    return lambda t, m: _recipe(recipe, f"{key}={_jsonl(t, 'd.jsonl', rows)}", *overrides)(t, m)


def _generate(*extra: str, rows: list | None = None) -> Callable[[Path, str], list[str]]:
    return lambda t, m: [
        "generate",
        "--model",
        m,
        "--prompts",
        _jsonl(t, "p.jsonl", rows or [{"prompt": "1+1="}]),
        "--out",
        str(t / "o.jsonl"),
        "--max-new-tokens",
        "2",
        *extra,
    ]


def _eval(*extra: str, rows: list | None = None) -> Callable[[Path, str], list[str]]:
    data = (lambda t: ["--data", _jsonl(t, "g.jsonl", rows)]) if rows is not None else (lambda t: [])
    return lambda t, m: ["eval", "--model", m, "--per-level", "1", "--max-new-tokens", "2", *data(t), *extra]


def _broken_model(tmp_path: Path, model_dir: str, damage: str) -> str:
    broken = tmp_path / f"model-{damage}"
    shutil.copytree(model_dir, broken)
    if damage == "weights":
        data = (broken / "model.safetensors").read_bytes()
        (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif damage == "model_type":
        (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    elif damage == "tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            (broken / name).unlink(missing_ok=True)
    else:
        (broken / "config.json").write_text("{not json")
    return str(broken)


PAIR = {"prompt": "2+2=", "chosen": "4", "rejected": "5"}
BAD_ROLE = [{"role": "bot", "content": "q"}]


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
    # bench/reliability/bad_inputs.py's findings: silent accepts and tracebacks
    "optim.lr=inf": (_recipe("sft", "optim.lr=inf"), "optim.lr must be a finite number > 0"),
    "data.limit=-1": (_recipe("sft", "data.limit=-1"), "config key 'data.limit' must be None (all records)"),
    "empty completion": (
        _data("sft", "data.source", [{"prompt": "q", "completion": ""}]),
        "d.jsonl record 0 has an empty `completion` response",
    ),
    "empty GSM8K question": (
        _data("sft", "data.source", [GSM, {"question": " ", "answer": GSM["answer"]}]),
        "d.jsonl record 1: GSM8K `question` is empty",
    ),
    "GSM8K answer with nothing after ####": (
        _data("sft", "data.source", [{"question": "Q?", "answer": "r\n#### "}]),
        "record 0: GSM8K `answer` has nothing after '####'",
    ),
    "empty preference prompt": (
        _data("dpo", "data.source", [{"prompt": "", "chosen": "a", "rejected": "b"}]),
        "d.jsonl: record 0 has an empty `prompt`",
    ),
    "rejected but no chosen": (
        _data("dpo", "data.source", [{"prompt": "q", "rejected": "b"}]),
        "d.jsonl: record 0 has no column 'chosen'",
    ),
    "reward-model empty rejected": (
        lambda t, m: _recipe(
            "reward-model",
            f"data.source={_jsonl(t, 'd.jsonl', [PAIR, {**PAIR, 'rejected': ''}])}",
            f"data.valid_source={t / 'd.jsonl'}",
        )(t, m),
        "d.jsonl: record 1 has an empty `rejected` response",
    ),
    "tasks[0].weight=0": (
        _recipe("online-rl", "tasks[0].weight=0"),
        "config key 'tasks[0].weight' must be > 0",
    ),
    "clip=-1": (_recipe("online-rl", "clip=-1"), "config key 'clip' must be > 0"),
    "rollouts.num_shots=-1": (_recipe("online-rl", "rollouts.num_shots=-1"), "'rollouts.num_shots' must be"),
    "generator.keep_last=0": (_recipe("online-rl", "generator.keep_last=0"), "'generator.keep_last' must be"),
    "empty prompt": (_generate(rows=[{"prompt": "a"}, {"prompt": ""}]), "record 1 has an empty `prompt`"),
    "GSM8K answer not a string (eval)": (
        _eval(rows=[{"question": "Q?", "answer": 2}]),
        "g.jsonl: record 0: GSM8K `answer` must be a string, got a number",
    ),
    "GSM8K question null (eval)": (
        _eval(rows=[{"question": None, "answer": GSM["answer"]}]),
        "record 0: GSM8K `question` must be a string, got null",
    ),
    "serve --port 70000": (
        lambda t, m: ["serve", "--model", m, "--port", "70000"],
        "--port must be between 0 and 65535",
    ),
    "serve --max-wait-ms -5": (
        lambda t, m: ["serve", "--model", m, "--max-wait-ms", "-5"],
        "--max-wait-ms must be >= 0",
    ),
    "world with no command": (lambda t, m: ["world"], "the following arguments are required: COMMAND"),
    "demo --out is a file": (lambda t, m: ["demo", "--out", _file(t, "f.txt", "x")], "--out '"),
    "repro --lr 0": (
        lambda t, m: ["repro", "online-rl", "--out", str(t / "r"), "--lr", "0"],
        "--lr must be a finite number > 0",
    ),
    "repro online-rl-length --steps -1": (
        lambda t, m: ["repro", "online-rl-length", "--out", str(t / "r"), "--steps", "-1"],
        "--steps must be >= 1",
    ),
    "override value not YAML": (_recipe("sft", "data.levels=[1, 2"), "the value is not valid YAML"),
    "garbage .gguf model": (
        lambda t, m: _recipe("sft", f"model={_file(t, 'g.gguf', 'GGUFnot really')}")(t, m),
        "g.gguf' is not a readable GGUF file",
    ),
    "unknown model_type": (
        lambda t, m: _recipe("sft", f"model={_broken_model(t, m, 'model_type')}")(t, m),
        "model-model_type' could not be loaded (The checkpoint",
    ),
    "model without tokenizer": (
        lambda t, m: _recipe("sft", f"model={_broken_model(t, m, 'tokenizer')}")(t, m),
        "model-tokenizer' could not be loaded",
    ),
    # ... and messages that named an internal function or class, or not the file, record, key or flag
    "a conversation without an assistant turn": (
        _data("sft", "data.source", [{"messages": [{"role": "user", "content": "x"}]}]),
        "d.jsonl record 0: the conversation needs at least one assistant turn",
    ),
    "a bad role in an SFT record": (
        _data("sft", "data.source", [{"messages": BAD_ROLE}]),
        "d.jsonl record 0 `messages`: messages[0]['role']",
    ),
    "completion null": (
        _data("sft", "data.source", [{"prompt": "q", "completion": None}]),
        "record 0: `completion` must be a string or a list of messages, got null",
    ),
    "empty data file": (
        lambda t, m: _recipe("sft", f"data.source={_file(t, 'e.jsonl', '')}")(t, m),
        "holds no records",
    ),
    "chosen a number": (
        _data("dpo", "data.source", [{"prompt": "q", "chosen": 5, "rejected": "b"}]),
        "d.jsonl: record 0: `chosen` must be a string or a list of messages, got a number",
    ),
    "a bad role in a preference prompt": (
        _data("dpo", "data.source", [{"prompt": BAD_ROLE, "chosen": "a", "rejected": "b"}]),
        "d.jsonl: record 0 `prompt`: messages[0]['role']",
    ),
    "GSM8K pairs with a non-integer answer": (
        _data("dpo", "data.source", [{"question": "Q?", "answer": "r\n#### 2.5"}]),
        "d.jsonl: record 0: GSM8K final answer '2.5' is not an integer",
    ),
    "a bad role in a prompt file": (_generate(rows=[{"prompt": BAD_ROLE}]), "record 0 `prompt`: messages[0]"),
    "a bad role in an RL prompt file": (
        _data("online-rl", "rollouts.prompts", [{"prompt": BAD_ROLE}]),
        "d.jsonl: record 0 `prompt`",
    ),
    "--config is a list": (
        lambda t, m: ["sft", "--config", _file(t, "l.yaml", "- 1\n")],
        "l.yaml: a config file must be a mapping of config keys",
    ),
    "override optim=3": (_recipe("sft", "optim=3"), "config key 'optim' must be a mapping of its keys"),
    "--config not UTF-8": (
        lambda t, m: ["sft", "--config", _bytes(t, "b.yaml", b"\xff\xfe garbage")],
        "b.yaml' is not UTF-8 text",
    ),
    "model directory without config.json": (
        lambda t, m: _recipe("sft", f"model={t}")(t, m),
        "pass a directory written by a selftaught run",
    ),
    "lora.target_modules=[nope]": (
        _recipe("sft", "lora.r=4", "lora.target_modules=[nope]"),
        "config key 'lora.target_modules'",
    ),
    "data.levels=[]": (
        _recipe("sft", "data.levels=[]"),
        "config key 'data.levels' must be distinct integers",
    ),
    "data.bug=2": (_recipe("sft", "data.bug=2"), "config key 'data.bug'"),
    "data.strategy_weights": (_recipe("sft", "data.strategy_weights={nope: 1}"), "'data.strategy_weights'"),
    "eval.data=world:nope": (
        _recipe("sft", "eval.data=world:nope"),
        "config key 'eval.data' must be a world split",
    ),
    "eval.levels=[0]": (_recipe("sft", "eval.levels=[0]"), "config key 'eval.levels'"),
    "nll_scale=-1": (_recipe("dpo", "nll_scale=-1"), "config key 'nll_scale' must be >= 0"),
    "data.temperature=-1": (_recipe("dpo", "data.temperature=-1"), "config key 'data.temperature'"),
    "data.num_prompts=0": (_recipe("dpo", "data.num_prompts=0"), "config key 'data.num_prompts'"),
    "data.num_pairs=0": (_recipe("reward-model", "data.num_pairs=0"), "config key 'data.num_pairs'"),
    "rollouts.stop=['']": (_recipe("online-rl", "rollouts.stop=['']"), "config key 'rollouts.stop'"),
    "reward_model:<missing dir>": (
        _recipe("online-rl", "tasks[0].reward=reward_model:{t}/no-rm"),
        "no-rm' is not a model directory (no config.json)",
    ),
    "generate --limit -1": (_generate("--limit", "-1"), "--limit must be >= 1, got -1"),
    "generate --temperature -1": (_generate("--temperature", "-1"), "--temperature must be >= 0"),
    "generate --top-p 0": (_generate("--top-p", "0"), "--top-p must be in (0, 1]"),
    "generate --stop ''": (_generate("--stop", ""), "--stop must be a non-empty string"),
    "generate --out under a file": (
        lambda t, m: [*_generate()(t, m)[:-4], "--out", _file(t, "f", "x") + "/o.jsonl"],
        "is a file, not a directory",
    ),
    "eval --per-level 0": (_eval("--per-level", "0"), "--per-level must be >= 1"),
    "eval --levels 1,x": (_eval("--levels", "1,x"), "--levels must be distinct comma-separated integers"),
    "eval --data world:nope": (_eval("--data", "world:nope"), "'world:nope' is not a world split"),
    "eval --num-shots 99": (_eval("--num-shots", "99", rows=[GSM]), "--num-shots must be between 0 and 8"),
    "eval empty data file": (
        lambda t, m: _eval("--data", _file(t, "e.jsonl", ""))(t, m),
        "e.jsonl holds no problems",
    ),
    "eval --out is a directory": (lambda t, m: _eval("--out", str(t))(t, m), "is a directory; name a file"),
    "eval-judge --limit 0": (
        lambda t, m: ["eval-judge", "--model", m, "--limit", "0"],
        "--limit must be >= 1, got 0",
    ),
    "serve --max-n 0": (lambda t, m: ["serve", "--model", m, "--max-n", "0"], "--max-n must be > 0"),
    "repro --steps 0": (
        lambda t, m: ["repro", "online-rl", "--out", str(t / "r"), "--steps", "0"],
        "--steps must be >= 1",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_user_mistake_is_one_clear_line(case, tiny_model_dir, tmp_path, capsys):
    build, fragment = CASES[case]
    try:
        code = main(build(tmp_path, tiny_model_dir))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # progress bars (and argparse's usage line) may come first
    assert re.match(r"selftaught( [\w-]+)*: error: ", last) and "Traceback" not in err
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
