"""system2-distill: compile a System 2 method's self-consistent answers into System 1 (Yu et al. 2024,
papers_A §3).

Algorithm (papers_A §3.1; every step a resumable stage under `out_dir`, a rerun reuses what is done):
  1. inputs       `num_inputs` unlabelled training inputs of `task` (their labels are never read,
                  except to report how often the kept targets are right: `kept_target_accuracy`)
  2. system2      the System 2 method (`method`, e.g. CoT) on every input, `samples` runs each at
                  `temperature`: final answers, responses and the tokens of every call
                  (`system2/`, shards); `curation=swap` also on the swapped inputs (`system2-swapped/`)
  3. curate       one target per input or none: majority vote with `min_share`, USC (the model
                  names the most consistent response, `usc/`), swap consistency, or no filter (the
                  first sample); writes `data/sft.jsonl`: (the original input as System 1 sees it
                  -> the final answer only)
  4. distil       SFT of the *same* starting model on it, through the `sft` recipe (`distilled/`)
  5. evaluate     greedy on `eval_num` held-out inputs: System 1 (the base model, the input
                  alone), System 2 (the method) and the distilled System 1: accuracy, parse rate
                  and generated tokens per input including every intermediate call; pairwise
                  tasks in both orders, with % inconsistent (`eval/<arm>/`)
Writes `<out_dir>/table.md` and `summary.json`.

This is a flow, not a recipe: it composes the sft recipe (layer L7, like rag-self-demos).

CPU: selftaught system2-distill                           (tiny world: last letters, `tiny-world-system2`)
     selftaught system2-distill --preset tiny-smoke
     selftaught system2-distill --preset gemma3-270m     (GSM8K, CoT x 8, majority vote; slow)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.configs.recipes import SFTConfig, SFTDataConfig
from selftaught.configs.system2 import System2DistillConfig as System2DistillConfig
from selftaught.configs.train import EvalConfig, OptimConfig
from selftaught.data.shards import compute_fingerprint, run_once, run_stage
from selftaught.data.sources import write_jsonl
from selftaught.data.templates import get_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.evals.accuracy import mean_and_stderr
from selftaught.pipelines.stages import shard_seed
from selftaught.pipelines.system2 import METHODS, System2Method, System2Output, build_method, usc_choices
from selftaught.pipelines.system2_tasks import Task, get_task, load_inputs
from selftaught.recipes import sft
from selftaught.selection import curation

Record = dict[str, Any]


def run(cfg: System2DistillConfig) -> dict[str, Any]:
    out, task = Path(cfg.out_dir), get_task(cfg.task)
    out.mkdir(parents=True, exist_ok=True)
    train = load_inputs(cfg.task, "train", cfg.num_inputs, seed=cfg.seed, path=cfg.train_data)
    test = load_inputs(cfg.task, "test", cfg.eval_num, seed=0, path=cfg.test_data)
    stage = Path(cfg.samples_dir) if cfg.samples_dir else out / "system2"
    samples = system2_samples(cfg, task, train, stage)
    swapped = None
    if cfg.curation == "swap" and task.swap is not None:  # the config allows swap for pairwise tasks only
        swapped_inputs = [task.swap(r) for r in train]
        swapped = system2_samples(cfg, task, swapped_inputs, stage.with_name(f"{stage.name}-swapped"))
    kept = curate(cfg, task, train, samples, swapped, out)
    rows = [{"arm": "system1", **evaluate(cfg, task, "direct", cfg.model, test, out / "eval" / "system1")}]
    if cfg.eval_s2:
        rows.append(
            {
                "arm": f"system2 ({cfg.method})",
                **evaluate(cfg, task, cfg.method, cfg.model, test, out / "eval" / "system2"),
            }
        )
    distilled = distil(cfg, task, out / "data" / "sft.jsonl", out / "distilled", kept["num_kept"])
    rows.append(
        {
            "arm": "distilled system1",
            **evaluate(cfg, task, "direct", distilled, test, out / "eval" / "distilled"),
        }
    )
    (out / "table.md").write_text(format_table(rows, kept))
    (out / "summary.json").write_text(json.dumps({"curation": kept, "arms": rows}, indent=2))
    print(format_table(rows, kept), flush=True)
    return {"out_dir": cfg.out_dir, "curation": kept, "arms": rows}


@cache
def _engine(kind: str, model: str, batch_size: int) -> Engine:
    """The engine of `model`, loaded once per process (a finished stage never loads it)."""
    if kind == "vllm":
        from selftaught.engines.vllm import VLLMEngine

        return VLLMEngine(model)
    from selftaught.engines.hf import HFEngine
    from selftaught.models.io import load_model

    loaded, tokenizer = load_model(model)
    return HFEngine(loaded, tokenizer, batch_size=batch_size)


def method_for(
    cfg: System2DistillConfig, task: Task, name: str, model: str, sampling: SamplingParams
) -> System2Method:
    """`name` over `model`'s engine with the task's templates (and `cfg.templates` over them)."""
    if name not in METHODS:
        raise ValueError(f"config key 'method' must be one of {sorted(METHODS)}, got {name!r}")
    roles = {
        role: t for role, t in {**task.templates, **cfg.templates}.items() if role in METHODS[name].roles
    }
    engine = _engine(cfg.engine, model, cfg.batch_size)
    return build_method(name, engine, sampling, task.extract, templates=roles, raw=task.raw)


def _sampling(
    cfg: System2DistillConfig, task: Task, *, greedy: bool, s1: bool = False, seed: int = 0
) -> SamplingParams:
    return SamplingParams(
        temperature=0.0 if greedy else cfg.temperature,
        top_p=1.0 if greedy else cfg.top_p,
        max_new_tokens=cfg.s1_max_new_tokens if s1 else cfg.max_new_tokens,
        stop=list(task.stop),
        seed=seed,
    )


def _settings(cfg: System2DistillConfig, *keys: str) -> dict[str, Any]:
    settings = to_dict(cfg)
    return {k: settings[k] for k in keys}


def system2_samples(
    cfg: System2DistillConfig, task: Task, inputs: list[Record], out_dir: Path
) -> list[Record]:
    """Step 2: `samples` System 2 runs per input, one shard of `shard_size` inputs at a time."""

    def run_shard(chunk: list[tuple[int, Record]]) -> list[Record]:
        sampling = _sampling(cfg, task, greedy=False, seed=shard_seed(cfg.seed, chunk[0][0]))
        method = method_for(cfg, task, cfg.method, cfg.model, sampling)
        outputs = method.run_batch([r for _, r in chunk], n=cfg.samples)
        return [_stored(record, outs) for (_, record), outs in zip(chunk, outputs, strict=True)]

    keys = (
        "model",
        "task",
        "method",
        "templates",
        "samples",
        "temperature",
        "top_p",
        "max_new_tokens",
        "seed",
    )
    fingerprint = compute_fingerprint({**_settings(cfg, *keys), "inputs": [r["id"] for r in inputs]})
    return run_stage(
        out_dir,
        list(enumerate(inputs)),
        run_shard,
        shard_size=cfg.shard_size,
        fingerprint=fingerprint,
        desc=out_dir.name,
    )


def _stored(record: Record, outputs: list[System2Output]) -> Record:
    return {
        "id": record["id"],
        "finals": [o.final for o in outputs],
        "responses": [o.response for o in outputs],
        "intermediates": [o.intermediates for o in outputs],
        "num_tokens": [o.num_tokens for o in outputs],
    }


def curate(
    cfg: System2DistillConfig,
    task: Task,
    train: list[Record],
    samples: list[Record],
    swapped: list[Record] | None,
    out: Path,
) -> dict[str, Any]:
    """Step 3: the targets of the chosen curation, written as `data/sft.jsonl`; counts and costs."""
    usc = usc_stage(cfg, task, train, samples, out / "usc") if cfg.curation == "usc" else None
    keys = ("curation", "min_share")
    fingerprint = compute_fingerprint(
        {**_settings(cfg, *keys), "samples": samples, "swapped": swapped, "usc": usc}
    )
    return run_once(
        out / "data", fingerprint, lambda: _curate(cfg, task, train, samples, swapped, usc, out / "data")
    )


def _curate(
    cfg: System2DistillConfig,
    task: Task,
    train: list[Record],
    samples: list[Record],
    swapped: list[Record] | None,
    usc: list[Record] | None,
    out_dir: Path,
) -> dict[str, Any]:
    finals = [s["finals"] for s in samples]
    if cfg.curation == "majority":
        targets, counts = curation.majority_targets(finals, cfg.min_share)
    elif cfg.curation == "usc":
        targets, counts = curation.usc_targets(finals, [u["choice"] for u in usc or []])
    elif cfg.curation == "swap":
        assert swapped is not None and task.inverse is not None
        targets, counts = curation.perturbation_targets(
            finals, [s["finals"] for s in swapped], task.inverse, cfg.min_share
        )
    else:
        targets, counts = curation.first_targets(finals)
    direct = {**task.templates, **cfg.templates}["direct"]
    examples = [
        _sft_record(task, direct, record, target)
        for record, target in zip(train, targets, strict=True)
        if target is not None
    ]
    write_jsonl(out_dir / "sft.jsonl", examples)
    right = [task.same(t, r["answer"]) for r, t in zip(train, targets, strict=True) if t is not None]
    all_finals = [f for fs in finals for f in fs]
    tokens = [t for s in [*samples, *(swapped or [])] for t in s["num_tokens"]] + [
        t for u in usc or [] for t in [u["usc_tokens"]]
    ]
    return {
        **counts,
        "num_samples_unparsed": sum(f is None for f in all_finals),
        "sample_accuracy": sum(
            f is not None and task.same(f, r["answer"])
            for r, s in zip(train, samples, strict=True)
            for f in s["finals"]
        )
        / max(1, len(all_finals)),
        "kept_target_accuracy": sum(right) / len(right) if right else None,
        "curation_tokens_per_input": sum(tokens) / max(1, len(train)),
    }


def _sft_record(task: Task, direct: str, record: Record, target: str) -> Record:
    """(the original input as System 1 sees it -> the final answer only), chat or raw text."""
    prompt = get_template(direct).render(record["id"], {"question": record["question"]}, raw=task.raw)
    completion = task.target(target)
    if task.raw:
        return {"id": record["id"], "prompt": prompt.text, "completion": completion}
    return {"id": record["id"], "messages": [*prompt.messages, {"role": "assistant", "content": completion}]}


def usc_stage(
    cfg: System2DistillConfig, task: Task, train: list[Record], samples: list[Record], out_dir: Path
) -> list[Record]:
    """USC's choice per input (one greedy call listing its responses), as a stage."""

    def run_shard(chunk: list[tuple[Record, Record]]) -> list[Record]:
        method = method_for(cfg, task, cfg.method, cfg.model, _sampling(cfg, task, greedy=True))
        outputs = [
            [System2Output(f, r) for f, r in zip(s["finals"], s["responses"], strict=True)] for _, s in chunk
        ]
        choices, tokens = usc_choices(method, [r for r, _ in chunk], outputs)
        return [
            {"id": r["id"], "choice": c, "usc_tokens": t}
            for (r, _), c, t in zip(chunk, choices, tokens, strict=True)
        ]

    fingerprint = compute_fingerprint({"model": cfg.model, "samples": samples, "template": "usc@1"})
    return run_stage(
        out_dir,
        list(zip(train, samples, strict=True)),
        run_shard,
        shard_size=cfg.shard_size,
        fingerprint=fingerprint,
        desc="usc",
    )


def distil(cfg: System2DistillConfig, task: Task, data: Path, out_dir: Path, num_kept: int) -> str:
    """Step 4: SFT of the starting model on the curated targets (the sft recipe, run once); the model dir."""
    if num_kept == 0:
        raise ValueError(
            f"{data}: curation kept no input, nothing to distil; lower min_share or raise samples / num_inputs"
        )
    sft_cfg = SFTConfig(
        out_dir=str(out_dir / "run"),
        model=cfg.model,
        seed=cfg.seed,
        num_steps=cfg.sft_steps,
        batch_size=min(cfg.sft_batch_size, num_kept),
        data=SFTDataConfig(source=str(data), max_length=cfg.sft_max_length),
        micro_batch_tokens=0,
        precision=cfg.precision,
        activation_checkpointing=cfg.activation_checkpointing,
        lora=cfg.lora,
        optim=OptimConfig(
            lr=cfg.sft_lr,
            betas=(0.9, 0.98),
            schedule="cosine",
            warmup_steps=min(10, cfg.sft_steps - 1),
            min_lr_ratio=0.1,
        ),
        eval=EvalConfig(every=-1),
        checkpoint_every=max(cfg.sft_steps // 4, 1),
        log_every=25,
    )
    settings = {k: v for k, v in to_dict(sft_cfg).items() if k != "out_dir"}
    run_once(
        out_dir, compute_fingerprint({**settings, "data_file": data.read_text()}), lambda: sft.run(sft_cfg)
    )
    return str(out_dir / "run" / "model")


def evaluate(
    cfg: System2DistillConfig, task: Task, method: str, model: str, test: list[Record], out_dir: Path
) -> dict[str, Any]:
    """Step 5: greedy accuracy and tokens of `method` over `model` on `test` (both orders if pairwise)."""
    keys = ("task", "templates", "max_new_tokens", "s1_max_new_tokens")
    fingerprint = compute_fingerprint(
        {**_settings(cfg, *keys), "method": method, "model": model, "test": [r["id"] for r in test]}
    )
    return run_once(out_dir, fingerprint, lambda: _evaluate(cfg, task, method, model, test))


def _evaluate(
    cfg: System2DistillConfig, task: Task, method: str, model: str, test: list[Record]
) -> dict[str, Any]:
    runner = method_for(cfg, task, method, model, _sampling(cfg, task, greedy=True, s1=method == "direct"))
    outputs = [outs[0] for outs in runner.run_batch(test)]
    correct = [
        float(o.final is not None and task.same(o.final, r["answer"]))
        for o, r in zip(outputs, test, strict=True)
    ]
    accuracy, stderr = mean_and_stderr(correct)
    result = {
        "accuracy": accuracy,
        "stderr": stderr,
        "parsed": sum(o.final is not None for o in outputs) / len(test),
        "tokens": sum(o.num_tokens for o in outputs) / len(test),
    }
    if task.swap is not None and task.inverse is not None:
        flipped = [outs[0] for outs in runner.run_batch([task.swap(r) for r in test])]
        agree = [
            a.final is not None and b.final is not None and task.inverse(b.final) == a.final
            for a, b in zip(outputs, flipped, strict=True)
        ]
        result["inconsistent"] = 1 - sum(agree) / len(test)
        result["tokens"] = (result["tokens"] + sum(o.num_tokens for o in flipped) / len(test)) / 2
    return result


def format_table(rows: list[dict[str, Any]], kept: dict[str, Any]) -> str:
    """Markdown: one row per arm (accuracy +- se, parse rate, tokens per input, % inconsistent)."""
    lines = ["| arm | accuracy | parsed | tokens / input | inconsistent |", "|---|---|---|---|---|"]
    for row in rows:
        inconsistent = f"{row['inconsistent']:.3f}" if "inconsistent" in row else "-"
        lines.append(
            f"| {row['arm']} | {row['accuracy']:.3f} +- {row['stderr']:.3f} | {row['parsed']:.3f} | {row['tokens']:.1f} | {inconsistent} |"
        )
    target = kept.get("kept_target_accuracy")
    lines.append(
        f"\nCuration kept {kept['num_kept']} of {kept['num_items']} inputs (targets right: "
        f"{'-' if target is None else f'{target:.3f}'}; System 2 sample accuracy {kept['sample_accuracy']:.3f}; "
        f"{kept['curation_tokens_per_input']:.1f} tokens per input to curate)."
    )
    return "\n".join(lines) + "\n"
