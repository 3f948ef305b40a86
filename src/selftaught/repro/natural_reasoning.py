"""`selftaught repro natural-reasoning`: NaturalReasoning's two claims in the tiny world (papers_A.md
§1.6), over seeds, mean +- standard error.

1. Distillation at equal example counts. The flow's `tiny` preset (documents -> annotation ->
   backtranslated questions -> dedup -> decontamination -> oracle teacher) with documents of the six
   training families (`diverse`, NaturalReasoning-style) or of arithmetic only (`arith`,
   OpenMathInstruct-style), the first N clean questions for N in `--sizes`, the same student
   (`--student`, default `tiny-world`, the xs student pretrained on arithmetic) trained `--epochs` passes over its N
   examples (the same number of steps for both arms at one size). Reported: greedy accuracy on 100
   test questions of arithmetic (in-family for `arith`), the mean over the six training families,
   and the OOD family `unitsum` (unit conversion composed with addition).
2. Self-training from a weak SFT model (the `tiny-self-train` preset): the student distilled on 600
   diverse examples + 400 yes/no verification conversations samples 8 answers to 256 unlabelled
   questions; majority vote, self-score (log p(yes) - log p(no)) and self-score filtered at r >= 0
   pick the best (RFT) or best vs worst (DPO); every arm starts from the weak model.

Runs go to `<out>/distill/<arm>-<N>/seed-<k>/` and `<out>/self-train/seed-<k>/`; every stage of a
finished run is reused, so an interrupted reproduction resumes. `<out>/table.md` holds the tables
and, with `--results FILE`, they go between this study's markers in FILE (docs/results.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.presets import RECIPES

FLOW = RECIPES["natural-reasoning"]
ARMS = {"diverse": None, "arith": ["arith"]}
"""Arm -> the document families (None: the preset's six)."""
BEGIN, END = "<!-- repro natural-reasoning: begin -->", "<!-- repro natural-reasoning: end -->"
COLUMNS = ("arith", "average", "ood")
SELF_TRAIN_ROWS = (
    "baseline",
    *(f"{m} {s}" for m in ("rft", "dpo") for s in ("majority", "self-score", "self-score-filtered")),
)


def distill_config(out_dir: str, arm: str, size: int, seed: int, epochs: int, student: str) -> Any:
    """The `tiny` preset for `arm` at `size` examples, `epochs` passes of batch 32, no self-training."""
    cfg = FLOW.preset("tiny")
    families = ARMS[arm] or cfg.families
    steps = math.ceil(epochs * size / cfg.sft.batch_size)
    return replace(
        cfg,
        out_dir=f"{out_dir}/distill/{arm}-{size}/seed-{seed}",
        seed=seed,
        families=families,
        num_documents=max(cfg.num_documents, 4 * size),
        num_examples=size,
        student=student,
        sft=replace(cfg.sft, num_steps=steps, checkpoint_every=max(50, steps // 4)),
    )


def summary(cfg: Any) -> dict[str, Any]:
    FLOW.run(cfg)
    return json.loads(Path(cfg.out_dir, "summary.json").read_text())


def nr_tables(
    out_dir: str, *, seeds: list[int], sizes: list[int], epochs: int, student: str, self_train: bool
) -> str:
    """Run both studies over the seeds; write `<out_dir>/table.md`; the tables."""
    distill: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for size in sizes:
        for arm in ARMS:
            for seed in seeds:
                print(f"== distill {arm}, {size} examples, seed {seed}", flush=True)
                distill.setdefault((arm, size), []).append(
                    summary(distill_config(out_dir, arm, size, seed, epochs, student))
                )
    tables = [format_distill(distill, seeds, epochs, student)]
    if self_train:
        runs = []
        for seed in seeds:
            print(f"== self-train, seed {seed}", flush=True)
            cfg = replace(
                FLOW.preset("tiny-self-train"), out_dir=f"{out_dir}/self-train/seed-{seed}", seed=seed
            )
            runs.append(summary(cfg)["self_train"])
        tables.append(format_self_train(runs, seeds))
    table = "\n".join(tables)
    Path(out_dir, "table.md").write_text(table)
    return table


def _cell(values: list[float]) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    mean, se = mean_and_stderr([100 * v for v in values])
    return f"{mean:.1f} +- {se:.1f}"


def format_distill(
    runs: dict[tuple[str, int], list[dict[str, Any]]], seeds: list[int], epochs: int, student: str
) -> str:
    """Rows: arm and size; columns: arithmetic, the six-family mean, OOD (mean +- se, %)."""
    lines = [
        f"**Distillation at equal example counts** (student `{student}`, {epochs} epochs of batch 32, seeds "
        f"{seeds}; greedy accuracy %, mean +- se; arithmetic is `arith`'s own family, average = the six "
        "training families, OOD = `unitsum`)",
        "",
        "| documents | examples | clean questions | arithmetic | average (6 families) | OOD (unitsum) |",
        "|---|---|---|---|---|---|",
    ]
    for (arm, size), summaries in runs.items():
        clean = sum(s["decontam"]["num_clean"] for s in summaries) / len(summaries)
        cells = [_cell([s["distill"]["accuracy"][c] for s in summaries]) for c in COLUMNS]
        lines.append(f"| {arm} | {size} | {clean:.0f} | " + " | ".join(cells) + " |")
    first = next(iter(runs.values()))[0]
    lines += ["", "Per family at the largest size (mean over seeds, %): " + per_family(runs)]
    lines += [f"Pipeline counts (`diverse`, seed {seeds[0]}, smallest size): " + pipeline_counts(first)]
    return "\n".join(lines) + "\n"


def per_family(runs: dict[tuple[str, int], list[dict[str, Any]]]) -> str:
    largest = max(size for _, size in runs)
    parts = []
    for (arm, size), summaries in runs.items():
        if size != largest:
            continue
        accuracy = [s["distill"]["accuracy"] for s in summaries]
        families = [f for f in accuracy[0] if f not in ("average", "ood")]
        parts.append(
            f"{arm}: "
            + ", ".join(f"{f} {100 * sum(a[f] for a in accuracy) / len(accuracy):.0f}" for f in families)
        )
    return "; ".join(parts) + "."


def pipeline_counts(s: dict[str, Any]) -> str:
    a, b, d, c = (s[k] for k in ("annotate", "backtranslate", "dedup", "decontam"))
    return (
        f"{a['num_documents']} documents, {a['num_unparsed']} ratings unparsed, {a['num_kept']} kept; "
        f"{b['num_questions']} questions (answer buckets {b['answer_buckets']}); dedup removed {d['removed']}; "
        f"decontamination removed {c['removed']}."
    )


def format_self_train(runs: list[dict[str, Any]], seeds: list[int]) -> str:
    """Rows: baseline and every (mode, scorer); columns: average, OOD, training examples."""
    lines = [
        f"**Self-training from a weak SFT model** (`tiny-self-train`, seeds {seeds}; greedy accuracy %, "
        "mean +- se; examples = RFT conversations or DPO pairs the scorer left, mean over seeds)",
        "",
        "| arm | average (6 families) | OOD (unitsum) | arithmetic | examples |",
        "|---|---|---|---|---|",
    ]
    for row in SELF_TRAIN_ROWS:
        if any(r.get(row) is None for r in runs):
            lines.append(f"| {row} | (no training data in some seed) | | | |")
            continue
        cells = [_cell([r[row][c] for r in runs]) for c in ("average", "ood", "arith")]
        if row == "baseline":
            examples = "-"
        else:
            mode, scorer = row.split(" ", 1)
            examples = f"{sum(r[f'{scorer} counts'][f'num_{mode}'] for r in runs) / len(runs):.0f}"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {examples} |")
    if all("selection" in r for r in runs):
        lines += ["", selection_line([r["selection"] for r in runs])]
    return "\n".join(lines) + "\n"


def selection_line(selections: list[dict[str, Any]]) -> str:
    """How well each scorer picks, against the known answers (mean over seeds)."""

    def mean(values: list[Any]) -> str:
        values = [v for v in values if v is not None]
        return f"{100 * sum(values) / len(values):.0f}%" if values else "n/a"

    parts = [f"sample accuracy {mean([s['sample_accuracy'] for s in selections])}"]
    for scorer in (k for k in selections[0] if k != "sample_accuracy"):
        part = f"{scorer}: best correct {mean([s[scorer]['best_correct'] for s in selections])}, worst correct {mean([s[scorer]['worst_correct'] for s in selections])}"
        if "auc" in selections[0][scorer]:
            part += f", AUC {mean([s[scorer]['auc'] for s in selections])}"
        parts.append(part)
    return "Selection against the known answers (a diagnostic, mean over seeds): " + "; ".join(parts) + "."


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
            + f"\n\n## NaturalReasoning in the tiny world (`selftaught repro natural-reasoning`)\n\n{block}\n"
        )
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "natural-reasoning",
        help="distillation (diverse vs arithmetic-only) and self-training (majority / self-score, RFT / DPO)",
    )
    parser.add_argument("--out", default="runs/repro-natural-reasoning", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[400, 1200, 3600], help="distillation example counts"
    )
    parser.add_argument("--epochs", type=int, default=4, help="passes over the distillation examples")
    parser.add_argument(
        "--student", default="tiny-world", help="the distilled student (scratch:<size> or a model)"
    )
    parser.add_argument("--no-self-train", dest="self_train", action="store_false")
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    check_out_dir(args.out, "--out")
    table = nr_tables(
        args.out,
        seeds=args.seeds,
        sizes=args.sizes,
        epochs=args.epochs,
        student=args.student,
        self_train=args.self_train,
    )
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        flags = f"--seeds {' '.join(map(str, args.seeds))} --sizes {' '.join(map(str, args.sizes))} --epochs {args.epochs}"
        flags += f" --student {args.student}" + ("" if args.self_train else " --no-self-train")
        write_results(Path(args.results), table, f"selftaught repro natural-reasoning {flags}")
        print(f"and to {args.results}")
