"""`selftaught repro natural-thoughts`: NaturalThoughts' claims in the tiny world (papers_A.md §2.6).

Per seed k, one pool (`<out>/seed-k/pool`: the oracle teacher's traces of 2000 train questions of
levels 1-4 sampled with seed k, annotated, labelled by the weak `tiny-world` student) and one run of
the `natural-thoughts` flow per arm (`<out>/seed-k/<arm>`), each SFT with the same steps, batch and
lr from one warm-up student (`warm_up`: `tiny-world` taught the `<think>` format, the control
instructions and the strategy tokens on levels 1-3 only, once); the flow evaluates every run on the
test questions (levels 1-4) in the three inference modes. Arms:

  selection at an equal budget (S2 targets):  random, disagree, strategy_window
  random with scale:                          random at budgets SCALE
  mixed targets (random selection):           s2 (= random), s1, random_mix p in MIX_P, difficulty_mix

Tables (mean +- se over seeds): hard (level-4) and overall accuracy in think mode for each selection,
with what each selection holds; accuracy by budget; accuracy and mean generated tokens per target
arm and mode; and adaptive mode's tokens and think rate per level. `<out>/frontier.png` plots
accuracy against mean tokens for every target arm and mode. An interrupted reproduction resumes
(every stage of every run is reused).

`selftaught list` builds this module's parser, so the flow and torch are imported inside the
functions that run them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.presets import RECIPES

FLOW = RECIPES["natural-thoughts"]
BEGIN, END = "<!-- repro natural-thoughts: begin -->", "<!-- repro natural-thoughts: end -->"
BUDGET = 400
SCALE = (100, 400)
MIX_P = (0.25, 0.75)
SELECTIONS = ("random", "disagree", "strategy_window")
MODES = ("no_think", "think", "adaptive")
REPRO_OVERRIDES = ("sft_lr=0.0005", "sft_batch_size=24", "eval_per_level=50")
WARMUP_STEPS, WARMUP_LR = 1000, 1e-3
"""Changes to the `tiny` preset for the reproduction's CPU budget (before the command's own overrides)."""


def arms(budget: int = BUDGET, scale: tuple[int, ...] = SCALE) -> dict[str, dict[str, Any]]:
    """Arm name -> config changes (arms with equal changes are one run)."""
    out: dict[str, dict[str, Any]] = {}
    for selection in SELECTIONS:
        out[f"select-{selection}"] = {"selection": selection, "budget": budget, "targets": "s2"}
    for size in scale:
        out[f"scale-{size}"] = {"selection": "random", "budget": size, "targets": "s2"}
    out["target-s2"] = {"selection": "random", "budget": budget, "targets": "s2"}
    out["target-s1"] = {"selection": "random", "budget": budget, "targets": "s1"}
    for p in MIX_P:
        out[f"target-mix-{p}"] = {
            "selection": "random",
            "budget": budget,
            "targets": "random_mix",
            "mix_p": p,
        }
    out["target-difficulty"] = {"selection": "random", "budget": budget, "targets": "difficulty_mix"}
    return out


def warm_up(base: Any, out_dir: Path, steps: int, num_questions: int = 3000) -> Path:
    """The format warm-up (run once, seed 0): the base student SFT'd on a random S1/S2 mix (p 0.5) of
    3000 traces of levels 1-3 only, so every arm starts from a student that knows `<think>`, the
    control instructions and the strategy tokens, and level 4 (the hard items) comes only from the
    arms' selections. Its own evaluation is the table's first row."""
    cfg = replace(
        base,
        out_dir=str(out_dir),
        levels=[1, 2, 3],
        eval_levels=[1, 2, 3, 4],
        num_questions=num_questions,
        selection="random",
        budget=num_questions,
        targets="random_mix",
        mix_p=0.5,
        sft_steps=steps,
        sft_lr=WARMUP_LR,
        sft_batch_size=32,
        hard_level=4,
        seed=0,
    )
    if not (out_dir / "summary.json").exists():
        print(f"== natural-thoughts warm-up ({steps} steps)", flush=True)
        FLOW.run(cfg)
    return out_dir


def run_name(changes: dict[str, Any]) -> str:
    """The run directory of a set of changes (equal changes share it)."""
    parts = [f"{k}={changes[k]}" for k in sorted(changes)]
    return "_".join(parts).replace("=", "-")


def nt_table(
    out_dir: str,
    *,
    seeds: list[int],
    steps: int,
    budget: int = BUDGET,
    preset: str = "tiny",
    overrides: list[str] | None = None,
    warmup_steps: int = WARMUP_STEPS,
    warmup_questions: int = 3000,
) -> str:
    """Run every arm for every seed, write `<out_dir>/table.md` and `frontier.png`; return the table.
    `overrides` (`key=value`) change the preset before the arms do."""
    from selftaught.config import apply_overrides

    base = apply_overrides(FLOW.preset(preset), [*REPRO_OVERRIDES, *(overrides or [])])
    warm = warm_up(base, Path(out_dir) / "warmup", warmup_steps, warmup_questions)
    base = replace(base, model=str(warm / "sft" / "run" / "model"))
    results: dict[str, list[dict[str, Any]]] = {"warm-up": [json.loads((warm / "summary.json").read_text())]}
    plan = arms(budget)
    for seed in seeds:
        for arm, changes in plan.items():
            run_dir = Path(out_dir) / f"seed-{seed}" / run_name(changes)
            cfg = replace(
                base,
                **changes,
                out_dir=str(run_dir),
                pool_dir=str(Path(out_dir) / f"seed-{seed}" / "pool"),
                seed=seed,
                sft_steps=steps,
            )
            if not (run_dir / "summary.json").exists():
                print(f"== natural-thoughts seed {seed}: {arm} ({run_dir.name})", flush=True)
                FLOW.run(cfg)
            results.setdefault(arm, []).append(json.loads((run_dir / "summary.json").read_text()))
    table = format_table(results, seeds, steps, budget)
    Path(out_dir, "table.md").write_text(table)
    plot_frontier(results, Path(out_dir) / "frontier.png")
    return table


def _ms(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    mean, se = mean_and_stderr([scale * v for v in values])
    return f"{mean:.{digits}f} +- {se:.{digits}f}"


def format_table(results: dict[str, list[dict[str, Any]]], seeds: list[int], steps: int, budget: int) -> str:
    """Markdown: the four tables of the module docstring."""

    def ev(arm: str, mode: str, part: str, key: str) -> list[float]:
        return [s["eval"][mode][part][key] for s in results[arm]]

    lines = [
        f"Seeds {seeds}; every run: SFT of `tiny-world` for {steps} steps of 24 (lr 5e-4) on its targets, from the warm-up student; test: 50 "
        "questions per level 1-4, greedy; hard = level 4 (the base student: ~2-6% there). Mean +- se over seeds.",
        "",
        "Warm-up student (every arm's start; levels 1-3 only, random S1/S2 mix): "
        + "; ".join(
            f"{m}: all {_ms(ev('warm-up', m, 'all', 'accuracy'))}%, level 4 {_ms(ev('warm-up', m, 'hard', 'accuracy'))}%, "
            f"{_ms(ev('warm-up', m, 'all', 'mean_tokens'), 1.0)} tokens"
            for m in MODES
        ),
        "",
        f"**Selection at an equal budget ({budget} traces, S2 targets), think mode**",
        "",
        "| selection | hard acc % | all acc % | level-4 share of the selection % | disagree share % | mean trace tokens |",
        "|---|---|---|---|---|---|",
    ]
    for selection in SELECTIONS:
        arm = f"select-{selection}"
        chosen = [s["selected"] for s in results[arm]]
        lines.append(
            f"| {selection} | {_ms(ev(arm, 'think', 'hard', 'accuracy'))} | {_ms(ev(arm, 'think', 'all', 'accuracy'))} | "
            f"{_ms([c.get('level_4', 0.0) for c in chosen])} | {_ms([c['disagree_share'] for c in chosen])} | "
            f"{_ms([c['mean_tokens'] for c in chosen], 1.0)} |"
        )
    lines += [
        "",
        "**Random selection with scale (S2 targets), think mode**",
        "",
        "| budget | hard acc % | all acc % |",
        "|---|---|---|",
    ]
    for arm in (a for a in results if a.startswith("scale-")):
        lines.append(
            f"| {arm[6:]} | {_ms(ev(arm, 'think', 'hard', 'accuracy'))} | {_ms(ev(arm, 'think', 'all', 'accuracy'))} |"
        )
    target_arms = [a for a in results if a.startswith("target-")]
    lines += [
        "",
        f"**Mixed targets (random {budget}): accuracy and mean generated tokens per inference mode**",
        "",
        "| targets | s2 share % | "
        + " | ".join(f"{m} acc % | {m} tokens" for m in MODES)
        + " | adaptive think rate % |",
        "|---|---|" + "---|---|" * len(MODES) + "---|",
    ]
    for arm in target_arms:
        share = [s["targets"]["s2"] / max(s["targets"]["s1"] + s["targets"]["s2"], 1) for s in results[arm]]
        cells = [
            f"{_ms(ev(arm, m, 'all', 'accuracy'))} | {_ms(ev(arm, m, 'all', 'mean_tokens'), 1.0)}"
            for m in MODES
        ]
        lines.append(
            f"| {arm[7:]} | {_ms(share)} | "
            + " | ".join(cells)
            + f" | {_ms(ev(arm, 'adaptive', 'all', 'think_rate'))} |"
        )
    lines += [
        "",
        "**Adaptive mode by level: mean generated tokens (think rate %)**",
        "",
        "| targets | level 1 | level 2 | level 3 | level 4 |",
        "|---|---|---|---|---|",
    ]
    for arm in target_arms:
        cells = [
            f"{_ms(ev(arm, 'adaptive', f'group={k}', 'mean_tokens'), 1.0)} ({_ms(ev(arm, 'adaptive', f'group={k}', 'think_rate'), 100.0, 0)})"
            for k in (1, 2, 3, 4)
        ]
        lines.append(f"| {arm[7:]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_frontier(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Accuracy (all levels) against mean generated tokens, one point per target arm and mode (seed means)."""
    from selftaught.report.render import _matplotlib

    figure_class, canvas_class, _ = _matplotlib()
    figure = figure_class(figsize=(6.4, 4.4))
    canvas_class(figure)
    axes = figure.add_subplot(1, 1, 1)
    markers = {"no_think": "o", "think": "s", "adaptive": "^"}
    for index, arm in enumerate(a for a in results if a.startswith("target-")):
        for mode, marker in markers.items():
            xs = [s["eval"][mode]["all"]["mean_tokens"] for s in results[arm]]
            ys = [100 * s["eval"][mode]["all"]["accuracy"] for s in results[arm]]
            axes.scatter(
                sum(xs) / len(xs),
                sum(ys) / len(ys),
                marker=marker,
                color=f"C{index}",
                label=f"{arm[7:]}, {mode}",
            )
    axes.set_xlabel("mean generated tokens")
    axes.set_ylabel("accuracy, levels 1-4 (%)")
    axes.set_title("natural-thoughts, tiny world: accuracy vs tokens")
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_results(path: Path, table: str, command: str, image: str | None = None) -> None:
    """Put `table` between this study's markers in `path` (appending a section when they are absent)."""
    picture = f"\n![accuracy vs tokens]({image})\n" if image else ""
    block = f"{BEGIN}\n_Regenerated by `{command}`._\n\n{table}{picture}{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + f"\n\n## NaturalThoughts in the tiny world (`selftaught repro natural-thoughts`)\n\n{block}\n"
        )
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "natural-thoughts",
        help="NaturalThoughts: selection at a budget, scale, S1/S2 mixed targets, over seeds",
    )
    parser.add_argument("--out", default="runs/repro-natural-thoughts", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=150, help="SFT steps per run (default 150)")
    parser.add_argument("--budget", type=int, default=BUDGET, help=f"traces per selection (default {BUDGET})")
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="flow config overrides of the tiny preset"
    )
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    import shutil

    from selftaught.train.loop import check_out_dir

    check_out_dir(args.out, "--out")
    if len(args.seeds) < 2 or args.steps < 1 or args.budget < 1:
        raise ValueError("--seeds needs at least two seeds (a standard error), --steps and --budget >= 1")
    table = nt_table(
        args.out, seeds=args.seeds, steps=args.steps, budget=args.budget, overrides=args.overrides
    )
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        results = Path(args.results)
        image = results.parent / "img" / "natural-thoughts-frontier.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(args.out) / "frontier.png", image)
        seeds = " ".join(str(s) for s in args.seeds)
        write_results(
            results,
            table,
            f"selftaught repro natural-thoughts --seeds {seeds} --steps {args.steps}",
            "img/natural-thoughts-frontier.png",
        )
        print(f"and to {args.results}")
