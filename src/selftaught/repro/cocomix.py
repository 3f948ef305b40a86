"""`selftaught repro cocomix`: CoCoMix against its baselines in the tiny concept world (papers_B §5.10).

Every run is the cocomix recipe's `tiny` preset (a 4-layer d = 64 student, context 128, 16 sequences
x 300 steps = 614k tokens, AdamW 3e-3 cosine) with one arm's overrides (`RECIPES["cocomix"].arms`),
over seeds; all arms share one teacher (4 layers, d = 128) and its SAE (`<out>/teacher`), and are
validated on the same held-out sequences:

    ntp                 plain NTP, width matched to CoCoMix's active parameters
    cocomix             concept prediction (attribution labels, lambda 0.1) + interleaving
    add                 concept prediction + h + c_hat (no interleaving)
    pause               a learned pause vector interleaved (lambda 0)
    kd                  NTP + 0.1 KL(teacher || student), width-matched
    activation-labels   CoCoMix with the most active SAE latents as labels
    ntp-flops           NTP (width-matched) trained for more steps: CoCoMix's training FLOPs
                        (student only: the teacher's forward + backward is extra)

`--weak-to-strong` adds the same comparison under a teacher weaker than the student (d = 32): arms
`w2s-cocomix` and `w2s-kd` against the same `ntp` runs.

Runs are reused when finished with the same config (`run_once`). The table (validation perplexity
at equal tokens, mean +- s.e. over seeds, the paired difference to NTP, the perplexity at the
first validation, parameters, FLOPs, wall time, and the concept / steering diagnostics) goes to
`<out>/table.md` and, with `--results FILE`, between this study's markers in FILE
(docs/results.md by default).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftaught.config import apply_overrides, to_dict
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.presets import RECIPES
from selftaught.runlog import read_metrics

if TYPE_CHECKING:
    from selftaught.configs.cocomix import CocomixConfig

RECIPE = RECIPES["cocomix"]
WEAK_TEACHER = ("teacher.shape.hidden_size=32", "teacher.shape.ffn_size=128")
EXTRA_ARMS: dict[str, tuple[str, ...]] = {
    "w2s-cocomix": WEAK_TEACHER,
    "w2s-kd": (*RECIPE.arms["kd"], *WEAK_TEACHER),
}
MAIN_ARMS = [*RECIPE.arms, "ntp-flops"]
BEGIN, END = "<!-- repro cocomix: begin -->", "<!-- repro cocomix: end -->"


def arm_config(base: CocomixConfig, out_dir: str, arm: str, seed: int) -> CocomixConfig:
    """`arm`'s config for `seed` in `<out_dir>/<arm>/seed-<k>`, sharing `<out_dir>/teacher`."""
    if arm == "ntp-flops":
        return _flops_matched(base, out_dir, seed)
    overrides = RECIPE.arms[arm] if arm in RECIPE.arms else EXTRA_ARMS[arm]
    cfg = replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed)
    cfg = replace(cfg, teacher=replace(cfg.teacher, dir=f"{out_dir}/teacher"))
    return apply_overrides(cfg, list(overrides))


def _flops_matched(base: CocomixConfig, out_dir: str, seed: int) -> CocomixConfig:
    """NTP with its steps scaled by CoCoMix's student training FLOPs per token over NTP's."""
    from selftaught.recipes.cocomix import build_student, forward_flops_per_token

    cocomix, ntp = arm_config(base, out_dir, "cocomix", seed), arm_config(base, out_dir, "ntp", seed)
    ratio = forward_flops_per_token(cocomix, build_student(cocomix, cocomix.sae.num_latents)) / (
        forward_flops_per_token(ntp, build_student(ntp, ntp.sae.num_latents))
    )
    steps = round(ntp.num_steps * ratio)
    return replace(ntp, out_dir=f"{out_dir}/ntp-flops/seed-{seed}", num_steps=steps)


def run_arm(cfg: CocomixConfig) -> dict[str, Any]:
    """One run (reused when finished): its summary, the validation curve and the wall time. The
    fingerprint leaves out `out_dir`, and the teacher and SAE when the arm uses none."""
    settings = {k: v for k, v in to_dict(cfg).items() if k != "out_dir"}
    if not cfg.needs_teacher:
        settings = {k: v for k, v in settings.items() if k not in ("teacher", "sae", "steering")}
    return run_once(cfg.out_dir, compute_fingerprint(settings), partial(_run, cfg))


def _run(cfg: CocomixConfig) -> dict[str, Any]:
    start = time.perf_counter()
    summary = RECIPE.run(cfg)
    curve = [(r["step"], r["val_ppl"]) for r in read_metrics(cfg.out_dir) if "val_ppl" in r]
    return {**summary, "seed": cfg.seed, "curve": curve, "wall_seconds": time.perf_counter() - start}


def cocomix_table(out_dir: str, *, seeds: list[int], arms: list[str], num_steps: int) -> str:
    """Run every arm for every seed; write and return `<out_dir>/table.md`."""
    base = replace(RECIPE.preset("tiny"), num_steps=num_steps)
    base = replace(
        base, optim=replace(base.optim, warmup_steps=min(base.optim.warmup_steps, num_steps // 10))
    )
    results: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            results.setdefault(arm, []).append(run_arm(arm_config(base, out_dir, arm, seed)))
    table = format_table(results, seeds, base)
    Path(out_dir, "table.md").write_text(table)
    Path(out_dir, "results.json").write_text(json.dumps(results, indent=2))
    return table


def format_table(results: dict[str, list[dict[str, Any]]], seeds: list[int], base: CocomixConfig) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    ntp = {r["seed"]: r for r in results.get("ntp", [])} if "ntp" in results else {}
    teacher: dict[str, Any] = next(
        (r["teacher"] for runs in results.values() for r in runs if r.get("teacher")), {}
    )
    tokens = base.corpus.batch_size * base.corpus.seq_len
    lines = [
        f"Students: {base.student.num_layers} layers, d = {base.student.hidden_size}, context {base.corpus.seq_len}; "
        f"{base.num_steps} steps x {tokens} tokens; seeds {seeds}; {base.corpus.val_sequences} held-out "
        f"sequences. Teacher (d = {base.teacher.shape.hidden_size}): val ppl {teacher.get('teacher_val_ppl', float('nan')):.2f}; "
        f"SAE C = {base.sae.num_latents}, k = {base.sae.k} on layer {base.teacher.layer}: normalised MSE "
        f"{teacher.get('sae_nmse', float('nan')):.3f}, dead latents {teacher.get('sae_dead_fraction', float('nan')):.1%}, "
        f"I(topic; top latent) = {teacher.get('sae_topic_mi_bits', float('nan')):.2f} bits "
        f"({teacher.get('sae_topic_mi_share', float('nan')):.0%} of the topic entropy).",
        "",
        "| arm | val ppl (mean +- se) | per seed | - NTP (paired) | ppl at first eval | active params | "
        "student train GFLOP/token | steps | wall s | concept top-1 / top-k acc |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, runs in results.items():
        ppl = [r["val_ppl"] for r in runs]
        mean, se = mean_and_stderr(ppl)
        diff = ""
        if ntp and arm != "ntp" and all(r["seed"] in ntp for r in runs):
            d_mean, d_se = mean_and_stderr([r["val_ppl"] - ntp[r["seed"]]["val_ppl"] for r in runs])
            diff = f"{d_mean:+.2f} +- {d_se:.2f}"
        early = [r["curve"][1][1] for r in runs if len(r["curve"]) > 2]
        early_text = f"{mean_and_stderr(early)[0]:.2f} (step {runs[0]['curve'][1][0]})" if early else ""
        acc = ""
        if "val_concept_top1_acc" in runs[0]:
            top_k = next(
                k for k in runs[0] if k.startswith("val_concept_top") and k != "val_concept_top1_acc"
            )
            acc = f"{sum(r['val_concept_top1_acc'] for r in runs) / len(runs):.3f} / {sum(r[top_k] for r in runs) / len(runs):.3f}"
        lines.append(
            f"| {arm} | {mean:.2f} +- {se:.2f} | {' '.join(f'{p:.2f}' for p in ppl)} | {diff} | {early_text} | "
            f"{runs[0]['active_params']:,} | {runs[0]['train_flops_per_token'] / 1e9:.4f} | {runs[0]['steps']} | "
            f"{sum(r['wall_seconds'] for r in runs) / len(runs):.0f} | {acc} |"
        )
    weak = next((r["teacher"] for r in results.get("w2s-cocomix", []) if r.get("teacher")), None)
    if weak:
        lines += [
            "",
            f"Weak-to-strong arms (`w2s-*`): teacher d = 32 ({weak['teacher_params']:,} params), val ppl "
            f"{weak['teacher_val_ppl']:.2f}; its SAE: normalised MSE {weak['sae_nmse']:.3f}, I(topic; top latent) "
            f"= {weak['sae_topic_mi_bits']:.2f} bits.",
        ]
    lines += steering_lines(results)
    return "\n".join(lines) + "\n"


def steering_lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Steering: the share of generated content bigrams on the steered concept's topic, per alpha."""
    runs = [r for r in results.get("cocomix", []) if "steering" in r]
    if not runs:
        return []
    alphas = [
        k.removeprefix("topic_bigram_share_a")
        for k in runs[0]["steering"]
        if k.startswith("topic_bigram_share_a")
    ]
    from selftaught.evals.accuracy import mean_and_stderr

    lines = [
        "",
        f"Steering (cocomix arm): concept {runs[0]['steering']['concept']} (topic {runs[0]['steering']['topic']}, "
        f"purity {runs[0]['teacher']['steer_concept_purity']:.2f}); share of generated content bigrams the "
        "topic can emit, prompts from other topics:",
        "",
        "| alpha | " + " | ".join(alphas) + " |",
        "|---" * (len(alphas) + 1) + "|",
    ]
    cells = []
    for a in alphas:
        mean, se = mean_and_stderr([r["steering"][f"topic_bigram_share_a{a}"] for r in runs])
        cells.append(f"{mean:.3f} +- {se:.3f}")
    return [*lines, "| topic bigram share | " + " | ".join(cells) + " |"]


def write_results(path: Path, table: str, command: str) -> None:
    """Put `table` between this study's markers in `path` (appending a section when they are absent)."""
    block = f"{BEGIN}\n_Regenerated by `{command}`._\n\n{table}{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + f"\n\n## CoCoMix in the tiny concept world (`selftaught repro cocomix`)\n\n{block}\n"
        )
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cocomix", help="CoCoMix vs NTP / KD / pause / add at equal tokens, over seeds"
    )
    parser.add_argument("--out", default="runs/repro-cocomix", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    choices = [*MAIN_ARMS, *EXTRA_ARMS]
    parser.add_argument("--arms", nargs="+", default=MAIN_ARMS, choices=choices)
    parser.add_argument("--weak-to-strong", action="store_true", help=f"add the arms {list(EXTRA_ARMS)}")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if len(args.seeds) < 1:
        raise ValueError("--seeds needs at least one seed")
    check_out_dir(args.out, "--out")
    arms = [*args.arms, *(a for a in EXTRA_ARMS if args.weak_to_strong and a not in args.arms)]
    table = cocomix_table(args.out, seeds=args.seeds, arms=arms, num_steps=args.steps)
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        flags = " --weak-to-strong" if args.weak_to_strong else ""
        write_results(Path(args.results), table, f"selftaught repro cocomix --steps {args.steps}{flags}")
        print(f"and to {args.results}")
