"""Probe: bad inputs, as a careless or hostile user types them, through the `selftaught` CLI.

Every case is one command line that must end in ONE clear line on stderr (`selftaught: error: ...`,
or argparse's `... error: ...`) with exit code 2, before any training. Each case is classified:

    clear      exit 2, the last stderr line says `error:`, no traceback
    traceback  a Python traceback (an uncaught exception)
    silent     exit 0, or work started (an optimizer step, or the case ran past its time limit)
    other      any other exit (1, 130, ...)

A clear message is also flagged `internal` when it names an internal Python identifier (a function or
class of `selftaught`, `__init__`, a Python exception text such as `object has no attribute`) rather
than what the user typed, and `unlocated` when it lacks what the case says it must name (the file,
the line or record, the config key or flag).

    .venv/bin/python bench/reliability/bad_inputs.py              # the table and the summary
    .venv/bin/python bench/reliability/bad_inputs.py --json rows.json -k generate

Cases run in this process (`selftaught.cli.main`), except `serve`, which would block if a bad value
were accepted: those run as subprocesses with a time limit. Models are a random-init tiny-world
model written once to a temporary directory (as `tests/conftest.py` does); the selftaught cache is
a temporary directory and the Hugging Face hub is offline, so nothing is downloaded or trained into
the user's cache.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "selftaught"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.pop("SELFTAUGHT_TRACEBACK", None)


class WorkStarted(BaseException):
    """Raised by the optimizer-step hook: the case got as far as training."""


class TimedOut(BaseException):
    """Raised by SIGALRM: the case ran past its limit (so it did real work)."""


# --- the context a case builds its command line in ------------------------------------------------


@dataclass
class Ctx:
    tmp: Path
    model: str
    counter: int = 0

    def path(self, name: str) -> Path:
        self.counter += 1
        return self.tmp / f"{self.counter:03d}-{name}"

    def file(self, name: str, text: str | bytes) -> str:
        path = self.path(name)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    def jsonl(self, name: str, rows: list) -> str:
        return self.file(name, "".join(json.dumps(r) + "\n" for r in rows))

    def dir(self, name: str = "dir") -> str:
        path = self.path(name)
        path.mkdir()
        return str(path)

    def out(self) -> str:
        return str(self.path("run"))

    def broken_model(self, damage: str) -> str:
        broken = self.path(f"model-{damage}")
        shutil.copytree(self.model, broken)
        if damage == "weights":
            data = (broken / "model.safetensors").read_bytes()
            (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
        elif damage == "no-weights":
            (broken / "model.safetensors").unlink()
        elif damage == "config":
            (broken / "config.json").write_text("{not json")
        elif damage == "config-list":
            (broken / "config.json").write_text("[1, 2]")
        elif damage == "config-type":
            (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
        elif damage == "no-tokenizer":
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                (broken / name).unlink(missing_ok=True)
        elif damage == "empty-weights":
            (broken / "model.safetensors").write_bytes(b"")
        else:
            raise ValueError(damage)
        return str(broken)

    def recipe(self, recipe: str, *overrides: str, preset: str = "tiny-smoke") -> list[str]:
        """A recipe run on the tiny model into a fresh directory, with `overrides` last (they win)."""
        return [recipe, "--preset", preset, f"model={self.model}", f"out_dir={self.out()}", *overrides]

    def gen(self, *extra: str, prompts: str | None = None) -> list[str]:
        prompts = prompts or self.jsonl("p.jsonl", [{"prompt": "1+1="}])
        return [
            "generate",
            "--model",
            self.model,
            "--prompts",
            prompts,
            "--out",
            str(self.path("o.jsonl")),
            "--max-new-tokens",
            "2",
            *extra,
        ]

    def eval(self, *extra: str) -> list[str]:
        return ["eval", "--model", self.model, "--per-level", "1", "--max-new-tokens", "2", *extra]

    def judge(self, *extra: str) -> list[str]:
        return ["eval-judge", "--model", self.model, "--limit", "1", "--max-new-tokens", "2", *extra]


GSM = {"question": "Q?", "answer": "1 + 1 = 2\n#### 2"}
PAIR = {"prompt": "2+2=", "chosen": "4", "rejected": "5"}
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@dataclass
class Case:
    name: str
    argv: Callable[[Ctx], list[str]]
    names: Callable[[Ctx, list[str]], list[str]] | list[str] = field(default_factory=list)
    """What the message must name (fragments), given the built argv; empty: no check."""
    subprocess: bool = False
    timeout: int = 60


def _arg_after(flag: str) -> Callable[[Ctx, list[str]], list[str]]:
    """The message must name the value the user gave to `flag` (a file's base name)."""
    return lambda ctx, argv: [Path(argv[argv.index(flag) + 1]).name]


def _override(key: str) -> Callable[[Ctx, list[str]], list[str]]:
    """The message must name the file given to the override `key=` (its base name)."""

    def names(ctx: Ctx, argv: list[str]) -> list[str]:
        value = next(a for a in argv if a.startswith(key + "=")).partition("=")[2]
        return [Path(value).name]

    return names


def _and(*parts: Callable[[Ctx, list[str]], list[str]] | list[str]) -> Callable[[Ctx, list[str]], list[str]]:
    return lambda ctx, argv: [x for p in parts for x in (p(ctx, argv) if callable(p) else p)]


def sft_data(rows_or_text: list | str | bytes, name: str = "d.jsonl") -> Callable[[Ctx], list[str]]:
    """`selftaught sft data.source=<file of rows_or_text>`."""

    def build(ctx: Ctx) -> list[str]:
        path = (
            ctx.jsonl(name, rows_or_text) if isinstance(rows_or_text, list) else ctx.file(name, rows_or_text)
        )
        return ctx.recipe("sft", f"data.source={path}")

    return build


def dpo_data(rows: list) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ctx.recipe("dpo", f"data.source={ctx.jsonl('pairs.jsonl', rows)}")


def rm_data(rows: list) -> Callable[[Ctx], list[str]]:
    """`selftaught reward-model` with `rows` as both the training and the held-out pairs."""

    def build(ctx: Ctx) -> list[str]:
        path = ctx.jsonl("pairs.jsonl", rows)
        return ctx.recipe("reward-model", f"data.source={path}", f"data.valid_source={path}")

    return build


def rl_prompts(rows: list) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ctx.recipe("online-rl", f"rollouts.prompts={ctx.jsonl('prompts.jsonl', rows)}")


def gen_prompts(rows_or_text: list | str) -> Callable[[Ctx], list[str]]:
    def build(ctx: Ctx) -> list[str]:
        if isinstance(rows_or_text, list):
            return ctx.gen(prompts=ctx.jsonl("p.jsonl", rows_or_text))
        return ctx.gen(prompts=ctx.file("p.jsonl", rows_or_text))

    return build


def eval_data(rows: list, *extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ctx.eval("--data", ctx.jsonl("gsm.jsonl", rows), *extra)


def judge_data(rows: list) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ctx.judge("--data", ctx.jsonl("pairs.jsonl", rows))


def serve(*extra: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: ["serve", "--model", ctx.model, "--port", "0", *extra]


SRC_FILE = _override("data.source")
PROMPTS_FILE = _arg_after("--prompts")
DATA_FILE = _arg_after("--data")


def cases() -> list[Case]:
    c = Case
    return [
        # --- config keys, types, ranges, enums (sft unless named) ----------------------------------
        c("unknown key optim.lrr", lambda x: x.recipe("sft", "optim.lrr=1"), ["optim.lrr"]),
        c("unknown top key", lambda x: x.recipe("sft", "stepz=3"), ["stepz"]),
        c("optim.lr=abc", lambda x: x.recipe("sft", "optim.lr=abc"), ["optim.lr"]),
        c("seed=1.5", lambda x: x.recipe("sft", "seed=1.5"), ["seed"]),
        c("num_steps=true", lambda x: x.recipe("sft", "num_steps=true"), ["num_steps"]),
        c("num_steps=1e3", lambda x: x.recipe("sft", "num_steps=1e3"), ["num_steps"]),
        c("num_steps=0", lambda x: x.recipe("sft", "num_steps=0"), ["num_steps"]),
        c("num_steps=-5", lambda x: x.recipe("sft", "num_steps=-5"), ["num_steps"]),
        c("optim.lr=0", lambda x: x.recipe("sft", "optim.lr=0"), ["optim.lr"]),
        c("optim.lr=-1e-3", lambda x: x.recipe("sft", "optim.lr=-1e-3"), ["optim.lr"]),
        c("optim.lr=inf", lambda x: x.recipe("sft", "optim.lr=inf"), ["optim.lr"]),
        c("optim.lr=.nan", lambda x: x.recipe("sft", "optim.lr=.nan"), ["optim.lr"]),
        c("optim.lr=[1,2]", lambda x: x.recipe("sft", "optim.lr=[1, 2]"), ["optim.lr"]),
        c("optim.betas=[0.9]", lambda x: x.recipe("sft", "optim.betas=[0.9]"), ["optim.betas"]),
        c("optim.betas=[0.9,1.5]", lambda x: x.recipe("sft", "optim.betas=[0.9, 1.5]"), ["optim.betas"]),
        c(
            "optim.schedule=exponential",
            lambda x: x.recipe("sft", "optim.schedule=exponential"),
            ["optim.schedule"],
        ),
        c(
            "optim.warmup_steps=-1",
            lambda x: x.recipe("sft", "optim.warmup_steps=-1"),
            ["optim.warmup_steps"],
        ),
        c("optim.min_lr_ratio=2", lambda x: x.recipe("sft", "optim.min_lr_ratio=2"), ["optim.min_lr_ratio"]),
        c(
            "optim.max_grad_norm=-1",
            lambda x: x.recipe("sft", "optim.max_grad_norm=-1"),
            ["optim.max_grad_norm"],
        ),
        c(
            "optim.weight_decay=-0.1",
            lambda x: x.recipe("sft", "optim.weight_decay=-0.1"),
            ["optim.weight_decay"],
        ),
        c("optim.eps=0", lambda x: x.recipe("sft", "optim.eps=0"), ["optim.eps"]),
        c("optim.fused=maybe", lambda x: x.recipe("sft", "optim.fused=maybe"), ["optim.fused"]),
        c("lora.r=-2", lambda x: x.recipe("sft", "lora.r=-2"), ["lora.r"]),
        c("lora.alpha=0", lambda x: x.recipe("sft", "lora.r=4", "lora.alpha=0"), ["lora.alpha"]),
        c("lora.dropout=1.5", lambda x: x.recipe("sft", "lora.dropout=1.5"), ["lora.dropout"]),
        c(
            "lora.target_modules=[nope]",
            lambda x: x.recipe("sft", "lora.r=4", "lora.target_modules=[nope]"),
            ["lora.target_modules"],
        ),
        c("data.max_length=0", lambda x: x.recipe("sft", "data.max_length=0"), ["data.max_length"]),
        c("data.limit=-1", lambda x: x.recipe("sft", "data.limit=-1"), ["data.limit"]),
        c("data.limit=0", lambda x: x.recipe("sft", "data.limit=0"), ["data.limit"]),
        c("data.num_examples=0", lambda x: x.recipe("sft", "data.num_examples=0"), ["data.num_examples"]),
        c("data.levels=[1, 1]", lambda x: x.recipe("sft", "data.levels=[1, 1]"), ["data.levels"]),
        c("data.levels=[]", lambda x: x.recipe("sft", "data.levels=[]"), ["data.levels"]),
        c("data.bug=2", lambda x: x.recipe("sft", "data.bug=2"), ["data.bug"]),
        c(
            "data.strategy_weights={nope: 1}",
            lambda x: x.recipe("sft", "data.strategy_weights={nope: 1}"),
            ["data.strategy_weights"],
        ),
        c(
            "micro_batch_tokens=-1",
            lambda x: x.recipe("sft", "micro_batch_tokens=-1"),
            ["micro_batch_tokens"],
        ),
        c("batch_size=0", lambda x: x.recipe("sft", "batch_size=0"), ["batch_size"]),
        c(
            "parallel.strategy=nope",
            lambda x: x.recipe("sft", "parallel.strategy=nope"),
            ["parallel.strategy"],
        ),
        c("report_to=[nope]", lambda x: x.recipe("sft", "report_to=[nope]"), ["report_to"]),
        c(
            "report_to=tensorboard (not a list)",
            lambda x: x.recipe("sft", "report_to=tensorboard"),
            ["report_to"],
        ),
        c("eval.every=-2", lambda x: x.recipe("sft", "eval.every=-2"), ["eval.every"]),
        c("eval.temperature=-1", lambda x: x.recipe("sft", "eval.temperature=-1"), ["eval.temperature"]),
        c("eval.levels=[0]", lambda x: x.recipe("sft", "eval.levels=[0]"), ["eval.levels"]),
        c("eval.data=nope:x", lambda x: x.recipe("sft", "eval.data=nope:x"), ["nope:x"]),
        c("eval.data=world:nope", lambda x: x.recipe("sft", "eval.data=world:nope"), ["world:nope"]),
        c(
            "eval.data missing file",
            lambda x: x.recipe("sft", f"eval.data={x.tmp / 'missing-eval.jsonl'}"),
            ["missing-eval.jsonl"],
        ),
        c("keep_last=0", lambda x: x.recipe("dpo", "keep_last=0"), ["keep_last"]),
        c("log_every=0", lambda x: x.recipe("sft", "log_every=0"), ["log_every"]),
        c("out_dir= (empty)", lambda x: ["sft", f"model={x.model}", "out_dir="], ["out_dir"]),
        c("out_dir is a file", lambda x: x.recipe("sft", f"out_dir={x.file('f.txt', 'x')}"), ["out_dir"]),
        c("out_dir not writable", lambda x: x.recipe("sft", "out_dir=/sys/selftaught-run"), ["/sys"]),
        # --- overrides that are not key=value --------------------------------------------------------
        c("override without =", lambda x: x.recipe("sft", "optim.lr"), ["optim.lr"]),
        c("override =5", lambda x: x.recipe("sft", "=5"), ["=5"]),
        c("override optim..lr=1", lambda x: x.recipe("sft", "optim..lr=1"), ["optim..lr"]),
        c("override seed.x=1", lambda x: x.recipe("sft", "seed.x=1"), ["seed"]),
        c("override data.levels[5]=1", lambda x: x.recipe("sft", "data.levels[5]=1"), ["data.levels"]),
        c("override optim=3", lambda x: x.recipe("sft", "optim=3"), ["optim"]),
        c("override bad YAML value", lambda x: x.recipe("sft", "data.levels=[1, 2"), ["data.levels"]),
        # --- presets and --config --------------------------------------------------------------------
        c("--preset nope", lambda x: ["sft", "--preset", "nope"], ["nope"]),
        c("--config missing", lambda x: ["sft", "--config", str(x.tmp / "missing.yaml")], ["missing.yaml"]),
        c("--config is a directory", lambda x: ["sft", "--config", x.dir("cfgdir")], ["cfgdir"]),
        c("--config empty", lambda x: ["sft", "--config", x.file("e.yaml", "")], ["e.yaml"]),
        c("--config bad YAML", lambda x: ["sft", "--config", x.file("b.yaml", "optim: [1, 2\n")], ["b.yaml"]),
        c("--config a list", lambda x: ["sft", "--config", x.file("l.yaml", "- 1\n- 2\n")], ["l.yaml"]),
        c("--config a scalar", lambda x: ["sft", "--config", x.file("s.yaml", "hello\n")], ["s.yaml"]),
        c("--config unknown key", lambda x: ["sft", "--config", x.file("u.yaml", "stepz: 3\n")], ["stepz"]),
        c("--config optim: 5", lambda x: ["sft", "--config", x.file("o.yaml", "optim: 5\n")], ["optim"]),
        c(
            "--config binary",
            lambda x: ["sft", "--config", x.file("bin.yaml", b"\xff\xfe\x00garbage")],
            ["bin.yaml"],
        ),
        c(
            "--config and --preset",
            lambda x: ["sft", "--preset", "tiny", "--config", x.file("c.yaml", "seed: 1\n")],
            ["--config"],
        ),
        # --- models ----------------------------------------------------------------------------------
        c(
            "model=hub-like name, offline",
            lambda x: x.recipe("sft", "model=nobody/no-such-model"),
            ["nobody/no-such-model"],
        ),
        c(
            "model=/missing/path",
            lambda x: x.recipe("sft", f"model={x.tmp / 'no-model-here'}"),
            ["no-model-here"],
        ),
        c("model=empty dir", lambda x: x.recipe("sft", f"model={x.dir('emptymodel')}"), ["emptymodel"]),
        c("model=a file", lambda x: x.recipe("sft", f"model={x.file('m.txt', 'x')}"), ["m.txt"]),
        c("model=missing .gguf", lambda x: x.recipe("sft", f"model={x.tmp / 'm.gguf'}"), ["m.gguf"]),
        c(
            "model=garbage .gguf",
            lambda x: x.recipe("sft", f"model={x.file('g.gguf', b'GGUFnot really')}"),
            ["g.gguf"],
        ),
        c(
            "model truncated safetensors",
            lambda x: x.recipe("sft", f"model={x.broken_model('weights')}"),
            ["model-weights"],
        ),
        c(
            "model empty safetensors",
            lambda x: x.recipe("sft", f"model={x.broken_model('empty-weights')}"),
            ["model-empty-weights"],
        ),
        c(
            "model no safetensors",
            lambda x: x.recipe("sft", f"model={x.broken_model('no-weights')}"),
            ["model-no-weights"],
        ),
        c(
            "model malformed config.json",
            lambda x: x.recipe("sft", f"model={x.broken_model('config')}"),
            ["model-config"],
        ),
        c(
            "model config.json a list",
            lambda x: x.recipe("sft", f"model={x.broken_model('config-list')}"),
            ["model-config-list"],
        ),
        c(
            "model unknown model_type",
            lambda x: x.recipe("sft", f"model={x.broken_model('config-type')}"),
            ["model-config-type"],
        ),
        c(
            "model without tokenizer",
            lambda x: x.recipe("sft", f"model={x.broken_model('no-tokenizer')}"),
            ["model-no-tokenizer"],
        ),
        # --- SFT data files ----------------------------------------------------------------------------
        c(
            "sft data missing file",
            lambda x: x.recipe("sft", f"data.source={x.tmp / 'nope.jsonl'}"),
            SRC_FILE,
        ),
        c("sft data a directory", lambda x: x.recipe("sft", f"data.source={x.dir('datadir')}"), SRC_FILE),
        c("sft data .txt file", sft_data("hello\n", "d.txt"), SRC_FILE),
        c("sft data .json array", sft_data(json.dumps([CHAT]), "d.json"), SRC_FILE),
        c("sft data empty file", sft_data(""), SRC_FILE),
        c("sft data only blank lines", sft_data("\n\n  \n"), SRC_FILE),
        c(
            "sft data bad JSON line 3",
            sft_data(f"{json.dumps(CHAT)}\n{json.dumps(CHAT)}\n{{oops\n"),
            _and(SRC_FILE, [":3"]),
        ),
        c("sft data non-object line 2", sft_data(f"{json.dumps(CHAT)}\n[1, 2]\n"), _and(SRC_FILE, [":2"])),
        c("sft data not UTF-8", sft_data(b'{"messages": "\xff\xfe"}\n'), _and(SRC_FILE, [":1"])),
        c(
            "sft data truncated last line",
            sft_data(json.dumps(CHAT) + '\n{"messages": [{"ro'),
            _and(SRC_FILE, [":2"]),
        ),
        c("sft record missing fields", sft_data([CHAT, {"foo": 1}]), _and(SRC_FILE, ["record 1"])),
        c(
            "sft messages content int",
            sft_data([{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft messages bad role",
            sft_data([{"messages": [{"role": "bot", "content": "x"}]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft messages no assistant",
            sft_data([CHAT, {"messages": [{"role": "user", "content": "x"}]}]),
            _and(SRC_FILE, ["record 1"]),
        ),
        c(
            "sft messages start with assistant",
            sft_data([{"messages": [{"role": "assistant", "content": "x"}]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c("sft messages empty list", sft_data([{"messages": []}]), _and(SRC_FILE, ["record 0"])),
        c("sft messages a string", sft_data([{"messages": "hello"}]), _and(SRC_FILE, ["record 0"])),
        c(
            "sft messages turn not a dict",
            sft_data([{"messages": ["hi", "there"]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft prompt str + completion list",
            sft_data([{"prompt": "q", "completion": [{"role": "assistant", "content": "a"}]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft empty completion",
            sft_data([{"prompt": "q", "completion": ""}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft completion null",
            sft_data([{"prompt": "q", "completion": None}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft GSM8K answer without ####",
            sft_data([{"question": "Q?", "answer": "2"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft GSM8K question not a string",
            sft_data([{"question": 5, "answer": GSM["answer"]}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "sft GSM8K empty question",
            sft_data([GSM, {"question": " ", "answer": GSM["answer"]}]),
            _and(SRC_FILE, ["record 1"]),
        ),
        c(
            "sft GSM8K empty final answer",
            sft_data([{"question": "Q?", "answer": "reasoning\n#### "}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c("sft GSM8K only question", sft_data([{"question": "Q?"}]), _and(SRC_FILE, ["record 0"])),
        c(
            "sft data.source=hf: offline",
            lambda x: x.recipe("sft", "data.source=hf:nobody/no-such-dataset"),
            ["nobody/no-such-dataset"],
        ),
        c("sft data.source=world:nope", lambda x: x.recipe("sft", "data.source=world:nope"), ["world:nope"]),
        c(
            "sft data.source=world:sft:test",
            lambda x: x.recipe("sft", "data.source=world:sft:test"),
            ["world:sft"],
        ),
        # --- DPO / reward-model preference files --------------------------------------------------------
        c(
            "dpo missing rejected in record 2",
            dpo_data([PAIR, PAIR, {"prompt": "q", "chosen": "a"}]),
            _and(SRC_FILE, ["record 2", "rejected"]),
        ),
        c(
            "dpo rejected but no chosen",
            dpo_data([{"prompt": "q", "rejected": "b"}]),
            _and(SRC_FILE, ["chosen"]),
        ),
        c(
            "dpo chosen but no prompt",
            dpo_data([{"chosen": "a", "rejected": "b"}]),
            _and(SRC_FILE, ["prompt"]),
        ),
        c(
            "dpo empty chosen",
            dpo_data([{"prompt": "q", "chosen": "", "rejected": "b"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "dpo chosen an int",
            dpo_data([{"prompt": "q", "chosen": 5, "rejected": "b"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "dpo chosen a dict",
            dpo_data([{"prompt": "q", "chosen": {"content": "a"}, "rejected": "b"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "dpo empty prompt",
            dpo_data([{"prompt": "", "chosen": "a", "rejected": "b"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "dpo prompt messages bad role",
            dpo_data(
                [
                    {
                        "prompt": [{"role": "bot", "content": "q"}],
                        "chosen": [{"role": "assistant", "content": "a"}],
                        "rejected": [{"role": "assistant", "content": "b"}],
                    }
                ]
            ),
            _and(SRC_FILE, ["record 0"]),
        ),
        c(
            "dpo GSM8K non-integer answer",
            dpo_data([{"question": "Q?", "answer": "r\n#### 2.5"}]),
            _and(SRC_FILE, ["record 0"]),
        ),
        c("dpo beta=0", lambda x: x.recipe("dpo", "beta=0"), ["beta"]),
        c("dpo loss_type=nope", lambda x: x.recipe("dpo", "loss_type=nope"), ["loss_type"]),
        c(
            "dpo nll_normalization=nope",
            lambda x: x.recipe("dpo", "nll_normalization=nope"),
            ["nll_normalization"],
        ),
        c("dpo nll_scale=-1", lambda x: x.recipe("dpo", "nll_scale=-1"), ["nll_scale"]),
        c(
            "dpo data.samples_per_prompt=1",
            lambda x: x.recipe("dpo", "data.samples_per_prompt=1"),
            ["data.samples_per_prompt"],
        ),
        c("dpo data.temperature=-1", lambda x: x.recipe("dpo", "data.temperature=-1"), ["data.temperature"]),
        c(
            "dpo data.max_new_tokens=0",
            lambda x: x.recipe("dpo", "data.max_new_tokens=0"),
            ["data.max_new_tokens"],
        ),
        c("dpo data.num_prompts=0", lambda x: x.recipe("dpo", "data.num_prompts=0"), ["data.num_prompts"]),
        c(
            "dpo data.generation_batch_size=0",
            lambda x: x.recipe("dpo", "data.generation_batch_size=0"),
            ["data.generation_batch_size"],
        ),
        c("dpo data.reward=nosuch", lambda x: x.recipe("dpo", "data.reward=nosuch"), ["nosuch"]),
        c(
            "dpo data.reward=json:nosuch",
            lambda x: x.recipe("dpo", "data.reward=json:nosuch"),
            ["json:nosuch"],
        ),
        c("dpo data.pair_rule=nosuch", lambda x: x.recipe("dpo", "data.pair_rule=nosuch"), ["nosuch"]),
        c("reward-model prompt-only file", rm_data([{"prompt": "q"}]), _and(SRC_FILE, ["chosen"])),
        c(
            "reward-model empty rejected",
            rm_data([PAIR, {"prompt": "q", "chosen": "a", "rejected": ""}]),
            _and(SRC_FILE, ["record 1"]),
        ),
        c(
            "reward-model data.valid_fraction=1",
            lambda x: x.recipe("reward-model", "data.valid_fraction=1"),
            ["data.valid_fraction"],
        ),
        c(
            "reward-model micro_batch_size=-1",
            lambda x: x.recipe("reward-model", "micro_batch_size=-1"),
            ["micro_batch_size"],
        ),
        c(
            "reward-model data.num_pairs=0",
            lambda x: x.recipe("reward-model", "data.num_pairs=0"),
            ["data.num_pairs"],
        ),
        # --- online-rl --------------------------------------------------------------------------------------
        c("online-rl loss=ppo", lambda x: x.recipe("online-rl", "loss=ppo"), ["loss"]),
        c("online-rl sync_every=-1", lambda x: x.recipe("online-rl", "sync_every=-1"), ["sync_every"]),
        c(
            "online-rl rollouts.samples_per_prompt=1",
            lambda x: x.recipe("online-rl", "rollouts.samples_per_prompt=1"),
            ["rollouts.samples_per_prompt"],
        ),
        c("online-rl tasks=[]", lambda x: x.recipe("online-rl", "tasks=[]"), ["tasks"]),
        c(
            "online-rl tasks[0].reward=nosuch",
            lambda x: x.recipe("online-rl", "tasks[0].reward=nosuch"),
            ["nosuch"],
        ),
        c(
            "online-rl tasks[0].pair_rule=nosuch",
            lambda x: x.recipe("online-rl", "tasks[0].pair_rule=nosuch"),
            ["nosuch"],
        ),
        c("online-rl tasks[0].weight=-1", lambda x: x.recipe("online-rl", "tasks[0].weight=-1"), ["weight"]),
        c("online-rl tasks[0].weight=0", lambda x: x.recipe("online-rl", "tasks[0].weight=0"), ["weight"]),
        c("online-rl tasks[3].weight=1", lambda x: x.recipe("online-rl", "tasks[3].weight=1"), ["tasks[3]"]),
        c("online-rl tasks=[{nme: arith}]", lambda x: x.recipe("online-rl", "tasks=[{nme: arith}]"), ["nme"]),
        c(
            "online-rl reward_model without dir",
            lambda x: x.recipe("online-rl", "tasks[0].reward=reward_model"),
            ["reward_model"],
        ),
        c(
            "online-rl reward_model:<missing dir>",
            lambda x: x.recipe("online-rl", f"tasks[0].reward=reward_model:{x.tmp / 'no-rm'}"),
            ["no-rm"],
        ),
        c(
            "online-rl judge reward without judge_model",
            lambda x: x.recipe("online-rl", "tasks[0].reward=judge:j1-pointwise@1"),
            ["judge_model"],
        ),
        c(
            "online-rl rollouts.top_p=0",
            lambda x: x.recipe("online-rl", "rollouts.top_p=0"),
            ["rollouts.top_p"],
        ),
        c(
            "online-rl rollouts.limit=0",
            lambda x: x.recipe("online-rl", "rollouts.limit=0"),
            ["rollouts.limit"],
        ),
        c(
            "online-rl rollouts.num_shots=-1",
            lambda x: x.recipe("online-rl", "rollouts.num_shots=-1"),
            ["rollouts.num_shots"],
        ),
        c(
            "online-rl rollouts.stop=['']",
            lambda x: x.recipe("online-rl", "rollouts.stop=['']"),
            ["rollouts.stop"],
        ),
        c(
            "online-rl generator.kind=tpu",
            lambda x: x.recipe("online-rl", "generator.kind=tpu"),
            ["generator.kind"],
        ),
        c(
            "online-rl generator.keep_last=0",
            lambda x: x.recipe("online-rl", "generator.keep_last=0"),
            ["generator.keep_last"],
        ),
        c(
            "online-rl group_scorer=json:nosuch",
            lambda x: x.recipe("online-rl", "group_scorer=json:nosuch"),
            ["json:nosuch"],
        ),
        c("online-rl advantage=nope", lambda x: x.recipe("online-rl", "advantage=nope"), ["advantage"]),
        c("online-rl clip=-1", lambda x: x.recipe("online-rl", "clip=-1"), ["clip"]),
        c(
            "online-rl prompts missing file",
            lambda x: x.recipe("online-rl", f"rollouts.prompts={x.tmp / 'np.jsonl'}"),
            ["np.jsonl"],
        ),
        c(
            "online-rl prompts without prompt column",
            rl_prompts([{"text": "q"}]),
            _and(_override("rollouts.prompts"), ["record 0"]),
        ),
        c(
            "online-rl prompt messages bad role",
            rl_prompts([{"prompt": [{"role": "bot", "content": "q"}]}]),
            _and(_override("rollouts.prompts"), ["record 0"]),
        ),
        c(
            "online-rl prompt empty string",
            rl_prompts([{"prompt": ""}]),
            _and(_override("rollouts.prompts"), ["record 0"]),
        ),
        # --- generate ----------------------------------------------------------------------------------------
        c("generate --prompts missing", lambda x: x.gen(prompts=str(x.tmp / "nop.jsonl")), PROMPTS_FILE),
        c("generate --prompts a directory", lambda x: x.gen(prompts=x.dir("pdir")), PROMPTS_FILE),
        c("generate --prompts empty", gen_prompts(""), PROMPTS_FILE),
        c(
            "generate --prompts bad JSON line 3",
            gen_prompts('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": \n'),
            _and(PROMPTS_FILE, [":3"]),
        ),
        c("generate record without prompt", gen_prompts([{"text": "q"}]), _and(PROMPTS_FILE, ["record 0"])),
        c("generate prompt an int", gen_prompts([{"prompt": 5}]), _and(PROMPTS_FILE, ["record 0"])),
        c("generate prompt null", gen_prompts([{"prompt": None}]), _and(PROMPTS_FILE, ["record 0"])),
        c(
            "generate prompt messages bad role",
            gen_prompts([{"prompt": [{"role": "bot", "content": "q"}]}]),
            _and(PROMPTS_FILE, ["record 0"]),
        ),
        c("generate prompt messages empty", gen_prompts([{"prompt": []}]), _and(PROMPTS_FILE, ["record 0"])),
        c(
            "generate prompt empty string",
            gen_prompts([{"prompt": "1+1="}, {"prompt": ""}]),
            _and(PROMPTS_FILE, ["record 1"]),
        ),
        c(
            "generate messages content int",
            gen_prompts([{"messages": [{"role": "user", "content": 5}]}]),
            _and(PROMPTS_FILE, ["record 0"]),
        ),
        c("generate --limit -1", lambda x: x.gen("--limit", "-1"), ["--limit"]),
        c("generate --limit 0", lambda x: x.gen("--limit", "0"), ["--limit"]),
        c("generate --n 0", lambda x: x.gen("--n", "0"), ["--n"]),
        c("generate --n abc", lambda x: x.gen("--n", "abc"), ["--n"]),
        c("generate --temperature -1", lambda x: x.gen("--temperature", "-1"), ["--temperature"]),
        c("generate --top-p 0", lambda x: x.gen("--top-p", "0"), ["--top-p"]),
        c("generate --top-p 1.5", lambda x: x.gen("--top-p", "1.5"), ["--top-p"]),
        c("generate --max-new-tokens -5", lambda x: x.gen("--max-new-tokens", "-5"), ["--max-new-tokens"]),
        c("generate --batch-size 0", lambda x: x.gen("--batch-size", "0"), ["--batch-size"]),
        c("generate --shard-size 0", lambda x: x.gen("--shard-size", "0"), ["--shard-size"]),
        c("generate --stop ''", lambda x: x.gen("--stop", ""), ["--stop"]),
        c("generate --out is a directory", lambda x: x.gen()[:-4] + ["--out", x.dir("outdir")], ["outdir"]),
        c(
            "generate --out under a file",
            lambda x: x.gen()[:-4] + ["--out", x.file("pf", "x") + "/o.jsonl"],
            ["pf"],
        ),
        c(
            "generate --model missing",
            lambda x: [
                "generate",
                "--model",
                str(x.tmp / "nomodel"),
                "--prompts",
                x.jsonl("p.jsonl", [{"prompt": "q"}]),
                "--out",
                str(x.tmp / "o"),
            ],
            ["nomodel"],
        ),
        c(
            "generate --model corrupt",
            lambda x: [
                "generate",
                "--model",
                x.broken_model("weights"),
                "--prompts",
                x.jsonl("p.jsonl", [{"prompt": "q"}]),
                "--out",
                str(x.tmp / "o"),
            ],
            ["model-weights"],
        ),
        c(
            "generate without --out",
            lambda x: ["generate", "--model", x.model, "--prompts", "p.jsonl"],
            ["--out"],
        ),
        # --- eval -----------------------------------------------------------------------------------------------
        c("eval --data world:nope", lambda x: x.eval("--data", "world:nope"), ["world:nope"]),
        c("eval --data world:", lambda x: x.eval("--data", "world:"), ["world:"]),
        c("eval --data missing", lambda x: x.eval("--data", str(x.tmp / "nodata.jsonl")), DATA_FILE),
        c(
            "eval --data record without answer",
            eval_data([{"question": "Q?"}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c(
            "eval --data answer without ####",
            eval_data([{"question": "Q?", "answer": "2"}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c(
            "eval --data answer not a string",
            eval_data([{"question": "Q?", "answer": 2}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c(
            "eval --data question null",
            eval_data([{"question": None, "answer": GSM["answer"]}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c("eval --data empty file", lambda x: x.eval("--data", x.file("e.jsonl", "")), DATA_FILE),
        c(
            "eval --limit -1",
            lambda x: x.eval("--data", x.jsonl("g.jsonl", [GSM]), "--limit", "-1"),
            ["--limit"],
        ),
        c(
            "eval --limit 0",
            lambda x: x.eval("--data", x.jsonl("g.jsonl", [GSM]), "--limit", "0"),
            ["--limit"],
        ),
        c("eval --per-level 0", lambda x: x.eval("--per-level", "0"), ["--per-level"]),
        c("eval --per-level -3", lambda x: x.eval("--per-level", "-3"), ["--per-level"]),
        c("eval --levels 1,x", lambda x: x.eval("--levels", "1,x"), ["--levels"]),
        c("eval --levels 0", lambda x: x.eval("--levels", "0"), ["--levels"]),
        c("eval --levels ''", lambda x: x.eval("--levels", ""), ["--levels"]),
        c(
            "eval --num-shots 99",
            lambda x: x.eval("--data", x.jsonl("g.jsonl", [GSM]), "--num-shots", "99"),
            ["--num-shots"],
        ),
        c(
            "eval --num-shots -1",
            lambda x: x.eval("--data", x.jsonl("g.jsonl", [GSM]), "--num-shots", "-1"),
            ["--num-shots"],
        ),
        c("eval --n 0", lambda x: x.eval("--n", "0"), ["--n"]),
        c("eval --out a directory", lambda x: x.eval("--out", x.dir("evalout")), ["evalout"]),
        c("eval --model empty dir", lambda x: ["eval", "--model", x.dir("em"), "--per-level", "1"], ["em"]),
        # --- eval-judge -----------------------------------------------------------------------------------------
        c("eval-judge --template nope", lambda x: x.judge("--template", "nope@1"), ["nope@1"]),
        c("eval-judge --data missing", lambda x: x.judge("--data", str(x.tmp / "nopairs.jsonl")), DATA_FILE),
        c("eval-judge --data world:nope", lambda x: x.judge("--data", "world:nope"), ["world:nope"]),
        c(
            "eval-judge pair without chosen",
            judge_data([{"prompt": "q", "rejected": "b"}]),
            _and(DATA_FILE, ["record 0", "chosen"]),
        ),
        c(
            "eval-judge chosen a dict",
            judge_data([{"prompt": "q", "chosen": {"a": 1}, "rejected": "b"}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c(
            "eval-judge prompt an int",
            judge_data([{"prompt": 3, "chosen": "a", "rejected": "b"}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c(
            "eval-judge prompt messages bad role",
            judge_data([{"prompt": [{"role": "bot", "content": "q"}], "chosen": "a", "rejected": "b"}]),
            _and(DATA_FILE, ["record 0"]),
        ),
        c("eval-judge --limit -1", lambda x: x.judge("--limit", "-1"), ["--limit"]),
        c("eval-judge --limit 0", lambda x: x.judge("--limit", "0"), ["--limit"]),
        c("eval-judge --prompt-style html", lambda x: x.judge("--prompt-style", "html"), ["--prompt-style"]),
        c("eval-judge --n 0", lambda x: x.judge("--n", "0"), ["--n"]),
        # --- serve (subprocesses: an accepted value would start a server) ----------------------------------------
        c("serve --port -1", serve("--port", "-1"), ["--port"], subprocess=True),
        c("serve --port 70000", serve("--port", "70000"), ["--port"], subprocess=True),
        c("serve --port abc", serve("--port", "abc"), ["--port"], subprocess=True),
        c("serve --batch-size 0", serve("--batch-size", "0"), ["--batch-size"], subprocess=True),
        c("serve --max-wait-ms -5", serve("--max-wait-ms", "-5"), ["--max-wait-ms"], subprocess=True),
        c(
            "serve --allow-reload without key",
            serve("--allow-reload", "/tmp"),
            ["--api-key-env"],
            subprocess=True,
        ),
        c(
            "serve --api-key-env unset",
            serve("--api-key-env", "SELFTAUGHT_PROBE_UNSET"),
            ["SELFTAUGHT_PROBE_UNSET"],
            subprocess=True,
        ),
        c("serve --max-n 0", serve("--max-n", "0"), ["--max-n"], subprocess=True),
        c("serve --max-tokens 0", serve("--max-tokens", "0"), ["--max-tokens"], subprocess=True),
        c("serve --timeout-s 0", serve("--timeout-s", "0"), ["--timeout-s"], subprocess=True),
        c(
            "serve --max-connections 0",
            serve("--max-connections", "0"),
            ["--max-connections"],
            subprocess=True,
        ),
        c(
            "serve --max-body-bytes -1",
            serve("--max-body-bytes", "-1"),
            ["--max-body-bytes"],
            subprocess=True,
        ),
        c(
            "serve --model missing",
            lambda x: ["serve", "--model", str(x.tmp / "nomodel"), "--port", "0"],
            ["nomodel"],
            subprocess=True,
        ),
        # --- world, demo, repro, report, top level -----------------------------------------------------------------
        c("world pretrain unknown key", lambda x: ["world", "pretrain", "stepz=1"], ["stepz"]),
        c("world pretrain --preset nope", lambda x: ["world", "pretrain", "--preset", "nope"], ["nope"]),
        c("world pretrain num_steps=0", lambda x: ["world", "pretrain", "num_steps=0"], ["num_steps"]),
        c("world nosuch", lambda x: ["world", "nosuch"], ["nosuch"]),
        c("world (no command)", lambda x: ["world"], ["world"]),
        c("demo --out is a file", lambda x: ["demo", "--out", x.file("demo.txt", "x")], ["demo.txt"]),
        c("demo --bogus", lambda x: ["demo", "--bogus"], ["--bogus"]),
        c("demo extra argument", lambda x: ["demo", "now"], ["now"]),
        c("repro (no command)", lambda x: ["repro"], ["repro"]),
        c("repro online-rl --arms nosuch", lambda x: ["repro", "online-rl", "--arms", "nosuch"], ["nosuch"]),
        c(
            "repro online-rl --steps 0",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--steps", "0"],
            ["--steps"],
        ),
        c("repro online-rl --seeds x", lambda x: ["repro", "online-rl", "--seeds", "x"], ["--seeds"]),
        c(
            "repro online-rl --per-level 0",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--per-level", "0"],
            ["--per-level"],
        ),
        c(
            "repro online-rl --eval-every -5",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--eval-every", "-5"],
            ["--eval-every"],
        ),
        c(
            "repro online-rl --lr 0",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--lr", "0"],
            ["--lr"],
        ),
        c(
            "repro online-rl --lr -1",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--lr", "-1"],
            ["--lr"],
        ),
        c(
            "repro online-rl --adam-eps 0",
            lambda x: ["repro", "online-rl", "--out", x.out(), "--adam-eps", "0"],
            ["--adam-eps"],
        ),
        c(
            "repro online-rl --out is a file",
            lambda x: ["repro", "online-rl", "--out", x.file("r.txt", "x")],
            ["r.txt"],
        ),
        c(
            "repro online-rl-length --reward nope",
            lambda x: ["repro", "online-rl-length", "--reward", "nope"],
            ["--reward"],
        ),
        c(
            "repro online-rl-length --steps -1",
            lambda x: ["repro", "online-rl-length", "--out", x.out(), "--steps", "-1"],
            ["--steps"],
        ),
        c("report missing dir", lambda x: ["report", str(x.tmp / "norun")], ["norun"]),
        c("report dir without metrics", lambda x: ["report", x.dir("emptyrun")], ["emptyrun"]),
        c("unknown command", lambda x: ["trian"], ["trian"]),
    ]


# --- running a case --------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    argv: list[str]
    cls: str
    message: str
    rc: int | str
    seconds: float
    internal: list[str] = field(default_factory=list)
    unlocated: list[str] = field(default_factory=list)


def _on_alarm(signum: int, frame: object) -> None:
    raise TimedOut()


def run_in_process(argv: list[str], timeout: int) -> tuple[int | str, str]:
    """Exit code (or `work` / `timeout` / `exception`) and stderr of `selftaught <argv>` in this process."""
    from selftaught.cli import main

    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(timeout)
    rc: int | str
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exit_:
                rc = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except WorkStarted:
                rc = "work"
            except TimedOut:
                rc = "timeout"
            except Exception:  # noqa: BLE001  (a traceback is a finding, not a probe failure)
                traceback.print_exc(file=err)
                rc = "exception"
    finally:
        signal.alarm(0)
    return rc, err.getvalue()


def run_subprocess(argv: list[str], timeout: int, env: dict[str, str]) -> tuple[int | str, str]:
    cmd = [
        sys.executable,
        "-c",
        "import sys; from selftaught.cli import main; sys.exit(main(sys.argv[1:]))",
        *argv,
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as expired:
        err = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        return "timeout", err
    return done.returncode, done.stderr


def classify(rc: int | str, err: str) -> tuple[str, str]:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if rc in ("work", "timeout") or rc == 0:
        what = {"work": "training started", "timeout": "ran past its time limit"}.get(str(rc), "exit 0")
        return "silent", f"[{what}] {last}"[:300]
    if rc == "exception" or "Traceback (most recent call last)" in err:
        return "traceback", last[:300]
    if rc == 2 and "error:" in last:
        return "clear", last
    return "other", f"[exit {rc}] {last}"[:300]


# --- the "names internals" heuristic ----------------------------------------------------------------


PYTHON_INTERNALS = [
    r"__\w+__",
    r"got an unexpected keyword",
    r"missing \d+ required (positional|keyword)",
    r"takes \d+ positional",
    r"NoneType",
    r"object has no attribute",
    r"KeyError",
    r"TypeError",
    r"AttributeError",
    r"IndexError",
    r"not subscriptable",
    r"unhashable type",
    r"object is not (iterable|callable)",
    r"list index out of range",
    r"invalid literal for int\(\)",
    r"\bselftaught\.\w+",
    r"\b[a-z_][a-z0-9]*_[a-z0-9_]*\(\)?",  # a snake_case call: foo_bar( or foo_bar()
]


def internal_names() -> tuple[set[str], set[str]]:
    """Function names with an underscore and CamelCase class names defined in `selftaught`, minus
    the names users type (config keys, CLI flags)."""
    functions: set[str] = set()
    classes: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "_" in node.name.strip("_"):
                functions.add(node.name)
            elif isinstance(node, ast.ClassDef) and len(re.findall(r"[A-Z]", node.name)) >= 2:
                classes.add(node.name)
    return functions - user_words(), classes


def user_words() -> set[str]:
    """Every config key (each dotted part) of every recipe, and every CLI flag as a Python name."""
    from selftaught.cli import build_parser
    from selftaught.config import describe
    from selftaught.presets import RECIPES

    words: set[str] = set()
    for recipe in RECIPES.values():
        for key, _, _ in describe(recipe.preset(recipe.presets[0])):
            words.update(re.split(r"[.\[\]]", key))
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:  # noqa: SLF001
            words.update(s.lstrip("-").replace("-", "_") for s in action.option_strings)
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                parsers.extend(action.choices.values())
    # reward names, pair rules, templates: what users type as values
    from selftaught.rewards.registry import REWARDS
    from selftaught.selection.rollouts import PAIR_RULES

    words.update(REWARDS)
    words.update(PAIR_RULES)
    return words - {""}


def find_internals(message: str, functions: set[str], classes: set[str]) -> list[str]:
    found = [m.group(0) for pattern in PYTHON_INTERNALS for m in re.finditer(pattern, message)]
    tokens = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message))
    found += sorted(tokens & functions) + sorted(tokens & classes)
    return [f for f in dict.fromkeys(found) if f.rstrip("(").rstrip(")").rstrip("(") not in user_words_cache]


user_words_cache: set[str] = set()


# --- main ----------------------------------------------------------------------------------------------------


def build_tiny_model(out_dir: Path) -> str:
    from selftaught.models.io import save_model
    from selftaught.models.tiny import build_tiny_llama
    from selftaught.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_tiny_llama(
        "xs",
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=0,
    )
    return str(save_model(model, tokenizer, out_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON here")
    parser.add_argument("-k", default=None, help="only the cases whose name contains this")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per case before it counts as silent")
    parser.add_argument("--width", type=int, default=160, help="message column width in the table")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="selftaught-bad-inputs-"))
    os.environ["SELFTAUGHT_CACHE"] = str(tmp / "cache")  # never train into (or read) the user's cache
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    torch.set_num_threads(1)

    def stop_training(optimizer: object, args: object, kwargs: object) -> None:
        raise WorkStarted()

    register_optimizer_step_pre_hook(stop_training)
    ctx = Ctx(tmp=tmp, model=build_tiny_model(tmp / "tiny-model"))
    functions, classes = internal_names()
    user_words_cache.update(user_words())

    selected = [case for case in cases() if args.k is None or args.k in case.name]
    names = [case.name for case in selected]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"duplicate case names: {duplicates}"
    rows: list[Row] = []
    try:
        for case in selected:
            argv_ = case.argv(ctx)
            start = time.perf_counter()
            timeout = min(case.timeout, args.timeout)
            if case.subprocess:
                rc, err = run_subprocess(argv_, timeout, env)
            else:
                rc, err = run_in_process(argv_, timeout)
            cls, message = classify(rc, err)
            row = Row(case.name, argv_, cls, message, rc, round(time.perf_counter() - start, 2))
            if cls == "clear":
                row.internal = find_internals(message, functions, classes)
                wanted = case.names(ctx, argv_) if callable(case.names) else case.names
                row.unlocated = [w for w in wanted if w not in message]
            rows.append(row)
            flag = ("  INTERNAL " + ",".join(row.internal) if row.internal else "") + (
                "  UNLOCATED " + ",".join(row.unlocated) if row.unlocated else ""
            )
            print(f"{case.name[:44]:44s} {cls:9s} {message[: args.width]}{flag}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    counts = {k: sum(r.cls == k for r in rows) for k in ("clear", "traceback", "silent", "other")}
    internal = sum(bool(r.internal) for r in rows)
    unlocated = sum(bool(r.unlocated) for r in rows)
    summary = (
        f"{len(rows)} inputs: {counts['clear']} clear ({internal} of them name internals), "
        f"{counts['traceback']} tracebacks, {counts['silent']} silent accepts, {counts['other']} other"
    )
    print()
    print(summary)
    print(f"{unlocated} clear messages do not name the file, record, key or flag the case says they must")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "rows": [asdict(r) for r in rows]}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
