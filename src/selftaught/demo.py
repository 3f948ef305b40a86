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
                 (level 4 is longer than anything trained on: length generalisation)

Writes `<out>/report.md` (the table and examples) and `<out>/rl/report/report.html` (the RL run's
curves: reward, accuracy, length, entropy, staleness). A stage whose model exists is reused, and an
interrupted stage resumes from its last checkpoint, so rerunning the command is cheap.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.evals.accuracy import EvalResult
from selftaught.models.io import load_model
from selftaught.presets import tiny
from selftaught.recipes import online_rl, sft
from selftaught.recipes.common import EvalConfig
from selftaught.recipes.world_pretrain import WorldPretrainConfig, greedy_accuracy, pretrained_student
from selftaught.report import render_report
from selftaught.world.arith import sample_eval_set, to_prompt


def run_demo(
    out_dir: str = "runs/demo",
    *,
    student: str | None = None,
    sft_steps: int = 150,
    rl_steps: int = 200,
    per_level: int = 200,
    levels: tuple[int, ...] = (1, 2, 3, 4),
) -> dict[str, Any]:
    """Run the flywheel (see the module doc); returns each stage's test accuracy and the paths."""
    start = time.perf_counter()
    out = Path(out_dir)
    stages = {"student": Path(student) if student else pretrained_student()}
    sft_cfg = tiny.sft()
    sft_cfg = replace(
        sft_cfg,
        out_dir=str(out / "sft"),
        model=str(stages["student"]),
        num_steps=sft_steps,
        data=replace(sft_cfg.data, bug=WorldPretrainConfig().bug),  # the student's own teacher
        optim=replace(sft_cfg.optim, warmup_steps=min(sft_cfg.optim.warmup_steps, sft_steps // 10)),
    )
    stages["sft"] = _stage(sft.run, sft_cfg)
    rl_eval = EvalConfig(data="world:valid", per_level=100, every=max(1, rl_steps // 4), seed=0)
    stages["rl"] = _stage(
        online_rl.run,
        replace(
            tiny.online_rl(),
            out_dir=str(out / "rl"),
            model=str(stages["sft"]),
            num_steps=rl_steps,
            eval=rl_eval,
        ),
    )
    prompts = [to_prompt(p) for p in sample_eval_set("test", per_level, list(levels), seed=0)]
    results = {name: greedy_accuracy(*load_model(str(path)), prompts) for name, path in stages.items()}
    page = render_report(out / "rl")
    report = _report(results, prompts, per_level, time.perf_counter() - start, page)
    (out / "report.md").write_text(report)
    print(report)
    print(f"report written to {out / 'report.md'}; the RL run's curves: {page}")
    return {**{name: r.accuracy for name, r in results.items()}, "report": str(out / "report.md")}


def _stage(run: Any, cfg: Any) -> Path:
    """The stage's model directory, training it unless it exists (a rerun reuses or resumes)."""
    model_dir = Path(cfg.out_dir) / "model"
    if not (model_dir / "config.json").is_file():
        print(f"== {Path(cfg.out_dir).name}: training into {cfg.out_dir}", flush=True)
        run(cfg)
    return model_dir


def _report(results: dict[str, EvalResult], prompts: list, per_level: int, seconds: float, page: Path) -> str:
    groups = sorted(next(iter(results.values())).groups)
    header = "| stage | " + " | ".join(groups) + " | all (+- se) |"
    lines = [header, "|---" * (len(groups) + 2) + "|"]
    for name, result in results.items():
        cells = " | ".join(f"{result.groups[g].accuracy:.3f}" for g in groups)
        lines.append(f"| {name} | {cells} | **{result.accuracy:.3f}** +- {result.stderr:.3f} |")
    examples = "\n".join(
        f"    {p.messages[0]['content']}  ->  {c[0].text}"
        for p, c in list(zip(prompts, results["rl"].completions, strict=True))[::per_level]
    )
    return (
        "# selftaught demo: student -> SFT (buggy teacher) -> semi-online DPO on the tiny world\n\n"
        f"Greedy accuracy on held-out test problems ({per_level} per level; level 4 is longer than any "
        "training problem):\n\n" + "\n".join(lines) + "\n\n"
        f"Examples after RL (one per level):\n\n{examples}\n\n"
        f"RL curves: {page}\n\nTotal demo time: {seconds:.0f} s.\n"
    )
