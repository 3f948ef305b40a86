"""`selftaught demo` (`make demo`): the self-improvement flywheel on the embedded tiny world.

    1. student   reuse the cached tiny-world student, or pretrain it (~3 minutes, first use only):
                 an xs Llama trained on a buggy teacher that forgets carries (~55% greedy accuracy)
    2. sft       continued SFT on more demonstrations of the same buggy teacher: imitation cannot
                 fix the teacher's bug, so this stage stays flat or loses a few points (the control
                 of TINYWORLD §3b)
    3. rl        semi-online DPO (s = 10) with the verifiable answer reward: 32 problems x 8 samples
                 per step, a random correct vs a random incorrect sample as the pair; the answer
                 check exposes the forgotten carries that the demonstrations teach
    4. evaluate  greedy accuracy of every stage on the same held-out test problems, per level
                 (level 4 is longer than anything trained on: length generalisation). "all" is
                 levels 1-3, the levels `selftaught eval` and `eval.levels` evaluate by default,
                 on the same problems as `selftaught eval --data world:test --per-level N` (seed 0);
                 level 4 has its own column

Writes `<out>/report.md` (the table and examples) and `<out>/rl/report/report.html` (the RL run's
curves: reward, accuracy, length, entropy, staleness). Each training stage runs once per config
(`data.shards.run_once`, keyed by the stage's config): a finished stage is reused, an interrupted
one resumes from its last checkpoint, so rerunning the command is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.evals.accuracy import EvalResult, mean_and_stderr
from selftaught.evals.sets import world_is_correct
from selftaught.models.io import load_model
from selftaught.models.policy import policy_source
from selftaught.presets import online_rl as online_rl_presets
from selftaught.presets import sft as sft_presets
from selftaught.recipes import TINY_WORLD, online_rl, sft
from selftaught.recipes.world_pretrain import WorldPretrainConfig
from selftaught.report import render_report
from selftaught.train.evaluation import evaluate_policy
from selftaught.train.loop import EvalConfig


def run_demo(
    out_dir: str = "runs/demo",
    *,
    student: str | None = None,
    sft_steps: int = 150,
    rl_steps: int = 200,
    per_level: int = 200,
    levels: tuple[int, ...] = (1, 2, 3, 4),
) -> dict[str, Any]:
    """Run the flywheel (see the module doc); returns each stage's test accuracy ("all": the levels of
    `ALL_LEVELS` among `levels`) and the paths."""
    start = time.perf_counter()
    out = Path(out_dir)
    stages = {"student": Path(policy_source(student or TINY_WORLD))}
    sft_cfg = sft_presets.tiny()
    sft_cfg = replace(
        sft_cfg,
        out_dir=str(out / "sft"),
        model=str(stages["student"]),
        num_steps=sft_steps,
        data=replace(sft_cfg.data, bug=WorldPretrainConfig().bug),  # the student's own teacher
        optim=replace(sft_cfg.optim, warmup_steps=min(sft_cfg.optim.warmup_steps, sft_steps // 10)),
    )
    stages["sft"] = stage(sft.run, sft_cfg)
    rl_eval = EvalConfig(data="world:valid", per_level=100, every=max(1, rl_steps // 4), seed=0)
    rl_cfg = replace(
        online_rl_presets.tiny(),
        out_dir=str(out / "rl"),
        model=str(stages["sft"]),
        num_steps=rl_steps,
        eval=rl_eval,
    )
    stages["rl"] = stage(online_rl.run, rl_cfg)
    test = EvalConfig(data="world:test", per_level=per_level, levels=list(levels), seed=0, batch_size=512)
    results = {name: evaluate_policy(*load_model(str(path)), test) for name, path in stages.items()}
    all_levels = tuple(level for level in levels if level in ALL_LEVELS) or tuple(levels)
    overall = {name: level_accuracy(result, all_levels) for name, result in results.items()}
    page = render_report(out / "rl")
    label = ",".join(map(str, all_levels))
    report = _report(results, overall, label, per_level, time.perf_counter() - start, page)
    (out / "report.md").write_text(report)
    print(report)
    print(f"report written to {out / 'report.md'}; the RL run's curves: {page}")
    return {**{name: acc for name, (acc, _) in overall.items()}, "report": str(out / "report.md")}


ALL_LEVELS = tuple(EvalConfig().levels)
"""The levels of the report's "all" column: those `selftaught eval` and `eval.levels` evaluate by
default (1-3, the trained ones), so "all" means the same in both; other levels get their own column."""


def level_accuracy(result: EvalResult, levels: tuple[int, ...]) -> tuple[float, float]:
    """Accuracy and standard error over the problems of `levels`.
    The problems of levels 1-3 are the same with or without level 4 in the sample (levels are drawn
    in order from one seeded stream), so this equals `selftaught eval` on those levels."""
    per_problem = [
        sum(world_is_correct(p, c) for c in cs) / len(cs)
        for p, cs in zip(result.prompts, result.completions, strict=True)
        if p.meta.get("level") in levels
    ]
    return mean_and_stderr(per_problem)


def stage(run: Callable[[Any], Any], cfg: Any) -> Path:
    """The stage's model directory, training it once per config (`run_once`; a rerun reuses or resumes)."""
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    run_once(cfg.out_dir, fingerprint, lambda: _announce_and_run(run, cfg))
    return Path(cfg.out_dir) / "model"


def _announce_and_run(run: Callable[[Any], Any], cfg: Any) -> dict[str, Any]:
    print(f"== {Path(cfg.out_dir).name}: training into {cfg.out_dir}", flush=True)
    return run(cfg)


def _report(
    results: dict[str, EvalResult],
    overall: dict[str, tuple[float, float]],
    all_levels: str,
    per_level: int,
    seconds: float,
    page: Path,
) -> str:
    groups = sorted(next(iter(results.values())).groups)
    header = "| stage | " + " | ".join(groups) + f" | all: levels {all_levels} (+- se) |"
    lines = [header, "|---" * (len(groups) + 2) + "|"]
    for name, result in results.items():
        cells = " | ".join(f"{result.groups[g].accuracy:.3f}" for g in groups)
        accuracy, stderr = overall[name]
        lines.append(f"| {name} | {cells} | **{accuracy:.3f}** +- {stderr:.3f} |")
    rl = results["rl"]
    examples = "\n".join(
        f"    {p.messages[0]['content']}  ->  {c[0].text}"
        for p, c in list(zip(rl.prompts, rl.completions, strict=True))[::per_level]
    )
    return (
        "# selftaught demo: student -> SFT (buggy teacher) -> semi-online DPO on the tiny world\n\n"
        f"Greedy accuracy on held-out test problems ({per_level} per level; level 4 is longer than any "
        f'training problem; "all" is levels {all_levels}, as in `selftaught eval`):\n\n'
        + "\n".join(lines)
        + "\n\n"
        f"Examples after RL (one per level):\n\n{examples}\n\n"
        f"RL curves: {page}\n\nTotal demo time: {seconds:.0f} s.\n"
    )
