"""`selftaught repro divpo`: DivPO against online DPO on the tiny world's persona task (papers_B §3.7).

Every run starts from the persona seed model (`tiny-world-persona`: `Make a persona.` ->
`name city job`, each slot Zipf-skewed over 40 values, 13% invalid at T = 1) and is the `divpo`
recipe's `tiny` preset (online, s = 1, reference frozen at the seed, 32 prompts x 16 samples,
beta 0.1, lr 1e-4) with one arm's overrides (`RECIPES["divpo"].arms`):

    dpo                 random valid vs random invalid sample (`correct_vs_incorrect`)
    divpo-frequency     most diverse valid vs least diverse invalid, diversity = rarity of the
                        sample's words within its pool of 16
    divpo-probability   the same with diversity = -log pi(y|x) under the current policy

Two sweeps give the quality-diversity frontier: DPO with other betas (`--betas`), and the seed
model sampled at other temperatures (`--temperatures`, no training). Every point is measured on the
same 1000 samples' worth of prompts at T = 1 (sweep points at their T): validity (the reward) and
the mean per-slot unique ratio within pools of 16 samples (the seed model: about 0.53; uniform over
40 values: 0.83), with name entropy and the head name's share.

`selftaught repro divpo-keywords` is the graded-quality study (papers_B §3.7's keyword-story
analogue): the keywords seed model (`tiny-world-keywords`; `divpo --preset tiny-keywords`: 5 of 60
words per topic, quality = mean word score in {0, .5, 1}, many word sets tie at 1), DPO (best vs
worst) against DivPO (probability criterion) at rho 0, .1, .2, .3: the width of the quality pools
trades quality for diversity. Points are quality against the mean number of distinct words in pools
of 16 samples of a topic.

Each run goes to `<out>/<arm>/seed-<k>/` (a finished run of the same config is reused, as in
`repro online-rl`); `<out>/table.md` has mean +- se over seeds, `<out>/frontier.png` the plot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftaught.config import apply_overrides, to_dict
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.presets import RECIPES

if TYPE_CHECKING:
    from selftaught.recipes.online_rl import OnlineRLConfig

DIVPO = RECIPES["divpo"]


@dataclass(frozen=True)
class Study:
    """One reproduction: a divpo preset, its arms and the validation metrics of its table."""

    preset: str
    arms: dict[str, tuple[str, ...]]
    """Arm name -> the `key=value` overrides that set it apart from the preset."""
    metrics: tuple[str, ...]
    """The table's columns (`val_<name>` of the validation); the first is the quality axis."""
    diversity: str
    """The metric on the frontier plot's diversity axis."""
    dpo_arm: str = "dpo"
    """The arm that the beta sweep varies."""


PERSONA = Study(
    preset="tiny",
    arms=DIVPO.arms,
    metrics=("validity", "mean_unique_ratio", "name_entropy_bits", "name_top1_share"),
    diversity="mean_unique_ratio",
)
KEYWORDS = Study(
    preset="tiny-keywords",
    arms={
        "dpo": ("tasks[0].pair_rule=best_vs_worst",),
        **{f"divpo-rho-{rho:g}": (f"tasks[0].divpo.rho={rho}",) for rho in (0.0, 0.1, 0.2, 0.3)},
    },
    metrics=("quality", "unique_1grams", "entropy_1gram_bits", "head_word_share", "validity"),
    diversity="unique_1grams",
)
STUDIES = {"divpo": PERSONA, "divpo-keywords": KEYWORDS}
"""`selftaught repro <name>` -> its study."""
ARMS = PERSONA.arms


def base_config(num_steps: int, num_samples: int, study: Study = PERSONA) -> OnlineRLConfig:
    """The study's divpo preset, validated on `num_samples` samples at T = 1 before and after training."""
    cfg = DIVPO.preset(study.preset)
    evaluation = replace(cfg.eval, per_level=num_samples, every=0)
    return replace(cfg, num_steps=num_steps, eval=evaluation, checkpoint_every=0)


def run_arm(cfg: OnlineRLConfig, metrics: tuple[str, ...] = PERSONA.metrics) -> dict[str, Any]:
    """One divpo run, or the result of the finished run of the same config in `cfg.out_dir`."""
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    return run_once(cfg.out_dir, fingerprint, partial(_run_and_summarize, cfg, metrics))


def _run_and_summarize(cfg: OnlineRLConfig, metrics: tuple[str, ...]) -> dict[str, Any]:
    from selftaught.runlog import read_metrics

    start = time.perf_counter()
    DIVPO.run(cfg)
    wall = time.perf_counter() - start
    rows = [r for r in read_metrics(cfg.out_dir) if "val_validity" in r]
    return {
        "initial": {m: rows[0][f"val_{m}"] for m in metrics},
        "final": {m: rows[-1][f"val_{m}"] for m in metrics},
        "wall_seconds": wall,
    }


def temperature_point(
    out_dir: str, base: OnlineRLConfig, temperature: float, metrics: tuple[str, ...] = PERSONA.metrics
) -> dict[str, float]:
    """The seed model's metrics on the base's validation set at `temperature` (cached in `out_dir`)."""
    model, data, num_samples = base.model, base.eval.data, base.eval.per_level
    settings = {"model": model, "data": data, "temperature": temperature, "num_samples": num_samples}
    fingerprint = compute_fingerprint({**settings, "metrics": list(metrics)})
    return run_once(
        out_dir, fingerprint, partial(_sample_stats, model, data, temperature, num_samples, list(metrics))
    )


def _sample_stats(
    model: str, data: str, temperature: float, num_samples: int, metrics: list[str]
) -> dict[str, float]:
    from selftaught.models.io import load_model
    from selftaught.train.evaluation import eval_metrics, evaluate_policy
    from selftaught.train.loop import EvalConfig

    policy, tokenizer = load_model(model)
    evaluation = EvalConfig(data=data, per_level=num_samples, temperature=temperature, seed=0)
    values = eval_metrics(evaluate_policy(policy, tokenizer, evaluation))
    return {m: values[f"val_{m}"] for m in metrics}


def divpo_table(
    out_dir: str,
    *,
    seeds: list[int],
    arms: list[str],
    num_steps: int,
    num_samples: int,
    betas: list[float],
    temperatures: list[float],
    overrides: dict[str, Any] | None = None,
    study: Study = PERSONA,
) -> str:
    """Run the arms and sweeps; write `<out_dir>/table.md` and `<out_dir>/frontier.png`; the table.
    `overrides`: config fields replaced in the shared base (tests: a smaller model and batch)."""
    unknown = sorted(set(arms) - set(study.arms))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {sorted(study.arms)}")
    base = replace(base_config(num_steps, num_samples, study), **(overrides or {}))
    runs: dict[str, list[dict[str, Any]]] = {}
    named = [(arm, list(study.arms[arm])) for arm in arms]
    named += [(f"dpo-beta-{beta:g}", [*study.arms[study.dpo_arm], f"beta={beta}"]) for beta in betas]
    for name, arm_overrides in named:
        for seed in seeds:
            print(f"== {name}, seed {seed}", flush=True)
            cfg = replace(base, out_dir=f"{out_dir}/{name}/seed-{seed}", seed=seed)
            runs.setdefault(name, []).append(run_arm(apply_overrides(cfg, arm_overrides), study.metrics))
    sweep = {
        t: temperature_point(f"{out_dir}/temperature/t-{t:g}", base, t, study.metrics) for t in temperatures
    }
    table = format_table(base, seeds, runs, sweep, study)
    Path(out_dir, "table.md").write_text(table)
    plot(out_dir, base, runs, sweep, study)
    return table


def format_table(
    base: OnlineRLConfig,
    seeds: list[int],
    runs: dict[str, list[dict[str, Any]]],
    sweep: dict[float, dict[str, float]],
    study: Study = PERSONA,
) -> str:
    """Markdown: the seed model, then one row per arm (mean +- se over seeds), then the temperature sweep."""
    from selftaught.evals.accuracy import mean_and_stderr

    metrics, quality, diversity = study.metrics, study.metrics[0], study.diversity
    first = next(iter(runs.values()))[0]["initial"]
    lines = [
        f"{base.num_steps} online steps of {base.rollouts.num_prompts} prompts x "
        f"{base.rollouts.samples_per_prompt} samples, beta {base.beta:g} unless named, lr {base.optim.lr:g}, "
        f"seeds {seeds}; each point: {base.eval.per_level} samples at T = 1 (sweep rows: at their T).",
        "",
        f"| arm | {' | '.join(metrics)} | {quality} per seed | {diversity} per seed | wall s |",
        "|---" * (len(metrics) + 4) + "|",
        "| seed model | " + " | ".join(f"{first[m]:.3f}" for m in metrics) + " | | | |",
    ]
    for name, results in runs.items():
        cells = []
        for metric in metrics:
            mean, se = mean_and_stderr([r["final"][metric] for r in results])
            cells.append(f"{mean:.3f} +- {se:.3f}")
        per_seed = [" ".join(f"{r['final'][m]:.3f}" for r in results) for m in (quality, diversity)]
        wall = sum(r["wall_seconds"] for r in results) / len(results)
        lines.append(f"| {name} | {' | '.join(cells)} | {per_seed[0]} | {per_seed[1]} | {wall:.0f} |")
    for t, stats in sweep.items():
        lines.append(
            f"| seed model, T = {t:g} | " + " | ".join(f"{stats[m]:.3f}" for m in metrics) + " | | | |"
        )
    return "\n".join(lines) + "\n"


def plot(
    out_dir: str,
    base: OnlineRLConfig,
    runs: dict[str, list[dict[str, Any]]],
    sweep: dict[float, dict[str, float]],
    study: Study = PERSONA,
) -> Path:
    """Quality against diversity: the DivPO arms, the DPO beta sweep and the temperature sweep."""
    from selftaught.evals.diversity import plot_frontier

    quality, diversity = study.metrics[0], study.diversity

    def mean_point(label: str, results: list[dict[str, Any]]) -> tuple[str, float, float]:
        finals = [r["final"] for r in results]
        return (
            label,
            sum(f[quality] for f in finals) / len(finals),
            sum(f[diversity] for f in finals) / len(finals),
        )

    dpo = {name: res for name, res in runs.items() if name == study.dpo_arm or name.startswith("dpo-beta-")}
    beta_of = {n: base.beta if n == study.dpo_arm else float(n.removeprefix("dpo-beta-")) for n in dpo}
    series = {
        "DivPO": [mean_point(name, res) for name, res in runs.items() if name.startswith("divpo")],
        "DPO, beta sweep": sorted(
            (mean_point(f"beta {beta_of[n]:g}", res) for n, res in dpo.items()), key=lambda point: point[2]
        ),
        "seed model, temperature sweep": [
            (f"T {t:g}", s[quality], s[diversity]) for t, s in sorted(sweep.items())
        ],
    }
    return plot_frontier(series, Path(out_dir, "frontier.png"), x_label=diversity, y_label=quality)


# --- command line ----------------------------------------------------------------------------------

HELP = {
    "divpo": "DivPO vs online DPO on the persona task, with beta and T sweeps",
    "divpo-keywords": "DPO vs DivPO's rho sweep on the graded keywords task, with beta and T sweeps",
}


def add_parser(commands: Any) -> None:
    """`selftaught repro divpo` and `selftaught repro divpo-keywords`."""
    for name, study in STUDIES.items():
        parser = commands.add_parser(name, help=HELP[name])
        parser.add_argument("--out", default=f"runs/repro-{name}", help="output directory")
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        parser.add_argument("--arms", nargs="+", default=list(study.arms), choices=list(study.arms))
        parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run (default 100)")
        parser.add_argument("--samples", type=int, default=1000, help="samples per evaluation (default 1000)")
        parser.add_argument("--betas", type=float, nargs="*", default=[0.02, 0.5], help="extra DPO betas")
        parser.add_argument("--temperatures", type=float, nargs="*", default=[0.7, 1.3, 1.6])
        parser.set_defaults(func=partial(_cmd, study=study))


def _cmd(args: Any, study: Study) -> None:
    from selftaught.train.loop import check_out_dir

    for flag, value in (("--steps", args.steps), ("--samples", args.samples)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if any(b <= 0 for b in args.betas) or any(t < 0 for t in args.temperatures):
        raise ValueError("--betas must be > 0 and --temperatures >= 0")
    check_out_dir(args.out, "--out")
    table = divpo_table(
        args.out,
        seeds=args.seeds,
        arms=args.arms,
        num_steps=args.steps,
        num_samples=args.samples,
        betas=args.betas,
        temperatures=args.temperatures,
        study=study,
    )
    print(
        f"{table}\ntable written to {Path(args.out) / 'table.md'}, plot to {Path(args.out) / 'frontier.png'}"
    )
