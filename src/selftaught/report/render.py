"""`render_report` (one run) and `compare_runs` (several): a PNG per panel and a page (layer L7).

    <run_dir>/report/
      reward.png accuracy.png ...   one plot per panel the run has data for (`metrics.PANELS`)
      report.md                     title, config, summary table, the plots (linked), other metrics
      report.html                   the same page, self-contained: the plots are embedded

Plots are explicit matplotlib `Figure`s on the Agg canvas (no pyplot global state), so rendering
works headless and never touches a caller's figures. matplotlib is the optional `report` extra,
imported only when plotting.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.report.metrics import (
    OTHER,
    Panel,
    RunMetrics,
    SummaryRow,
    assign_panels,
    config_differences,
    load_run,
    panel_lines,
    stderr_name,
    summarize,
)


def render_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Plots and a markdown + HTML page for one run; returns the HTML page's path.

    `out_dir` defaults to `<run_dir>/report`. Each panel is one axes with a line per metric.
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    return _render([run], out, title=f"selftaught run {run.name}")


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """One page overlaying several runs (e.g. offline, semi-online and online RL); the HTML page's path.

    Each panel has one axes per metric with one line per run, the legend naming the runs (their
    directory names, or their paths when two names are equal).
    """
    if not run_dirs:
        raise ValueError("compare_runs needs at least one run directory")
    names = [Path(d).resolve().name for d in run_dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in run_dirs]
    runs = [load_run(d, name) for d, name in zip(run_dirs, names, strict=True)]
    return _render(runs, Path(out_dir), title="selftaught runs " + ", ".join(names))


def _render(runs: list[RunMetrics], out_dir: Path, title: str) -> Path:
    _matplotlib()  # a missing extra fails before anything is written
    panels = assign_panels(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for panel, metrics in panel_lines(panels):
        figure = plot_panel(runs, panel, metrics)
        figure.savefig(out_dir / f"{panel.name}.png", dpi=100)
        images.append(Image(panel.title, f"{panel.name}.png"))
    blocks = build_page(title, runs, summarize(runs, panels), images)
    (out_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(blocks, title, out_dir), encoding="utf-8")
    return page


# --- plots -----------------------------------------------------------------------------------------


def _matplotlib() -> tuple[Any, Any, Any]:
    """(Figure, FigureCanvasAgg, MaxNLocator), or a ValueError that names the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as err:
        raise ValueError("the report needs matplotlib: pip install 'selftaught[report]'") from err
    return Figure, FigureCanvasAgg, MaxNLocator


def plot_panel(runs: list[RunMetrics], panel: Panel, metrics: list[str]) -> Any:
    """The `Figure` of one panel. One run: one axes, a line per metric. Several runs: one axes per
    metric, a line per run (one colour per run across all axes)."""
    Figure, FigureCanvasAgg, _ = _matplotlib()
    if len(runs) == 1:
        figure = Figure(figsize=(7.0, 3.6), layout="constrained")
        axes = figure.add_subplot()
        for metric in metrics:
            _draw(axes, runs[0], metric, label=metric)
        _style(axes, panel.ylabel)
    else:
        num_cols = min(3, len(metrics))
        num_rows = math.ceil(len(metrics) / num_cols)
        width = max(5.5, 4.2 * num_cols)  # room for the panel title above a single axes
        figure = Figure(figsize=(width, 3.0 * num_rows + 0.4), layout="constrained")
        for index, metric in enumerate(metrics):
            axes = figure.add_subplot(num_rows, num_cols, index + 1)
            for color, run in enumerate(runs):
                if metric in run.series:
                    _draw(axes, run, metric, label=run.name, color=f"C{color}")
            axes.set_title(metric, fontsize=9)
            _style(axes, panel.ylabel)
    figure.suptitle(panel.title)
    FigureCanvasAgg(figure)
    return figure


def _draw(axes: Any, run: RunMetrics, metric: str, *, label: str, color: str | None = None) -> None:
    """One metric of one run against the step; error bars when its standard error is logged.
    Non-finite values are gaps in the line (the summary table shows them)."""
    series = run.series[metric]
    values = [v if math.isfinite(v) else math.nan for v in series.values]
    style = {"label": label, "color": color, "marker": "o" if len(values) <= 30 else None, "markersize": 3}
    errors = run.series.get(stderr_name(metric) or "")
    if errors is not None and errors.is_numeric:
        by_step = dict(zip(errors.steps, errors.values, strict=True))
        yerr = [by_step.get(step, math.nan) for step in series.steps]
        axes.errorbar(series.steps, values, yerr=yerr, capsize=3, **style)
    else:
        axes.plot(series.steps, values, **style)


def _style(axes: Any, ylabel: str) -> None:
    _, _, MaxNLocator = _matplotlib()
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)


# --- page ------------------------------------------------------------------------------------------


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Details:
    """A collapsed block of preformatted text."""

    summary: str
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    title: str
    file: str
    """Path relative to the page."""


Block = Heading | Text | Details | Table | Image


def build_page(
    title: str, runs: list[RunMetrics], rows: list[SummaryRow], images: list[Image]
) -> list[Block]:
    """The page as blocks, rendered by `to_markdown` and `to_html`: title, configs, (for several runs)
    their config differences, the summary table, the plots, and the metrics no panel plots."""
    blocks: list[Block] = [
        Heading(title, 1),
        Text("Run directories: " + ", ".join(str(r.run_dir) for r in runs)),
    ]
    for run in runs:
        if run.config_text is None:
            blocks.append(Text(f"{run.run_dir} has no config.yaml."))
        else:
            blocks.append(Details(f"config.yaml of {run.name}", run.config_text))
    if len(runs) > 1:
        differences = config_differences(runs)
        header = ["key", *(run.name for run in runs)]
        blocks += [
            Heading("Config differences"),
            Table(header, [[key, *values] for key, values in differences]),
        ]
    with_run = len(runs) > 1
    blocks += [Heading("Summary"), _row_table(rows, with_run, ["panel", "points", "first", "last", "best"])]
    blocks += [Heading("Plots"), *images]
    other = [row for row in rows if row.panel == OTHER]
    if other:
        blocks += [
            Heading("Other metrics"),
            Text(
                "No panel plots these: no rule in `selftaught.report.metrics.PANEL_RULES` names them, or "
                "a value is not a number."
            ),
            _row_table(other, with_run, ["points", "first", "last"]),
        ]
    return blocks


def _row_table(rows: list[SummaryRow], with_run: bool, columns: list[str]) -> Table:
    header = (["run"] if with_run else []) + ["metric", *columns]
    cells = []
    for row in rows:
        by_column = {
            "panel": row.panel,
            "points": str(row.num_points),
            "first": format_value(row.first),
            "last": format_value(row.last),
            "best": format_value(row.best),
        }
        cells.append(([row.run] if with_run else []) + [row.metric, *(by_column[c] for c in columns)])
    return Table(header, cells)


def format_value(value: Any) -> str:
    """Four significant digits for floats; "" for None; other values as text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def to_markdown(blocks: list[Block]) -> str:
    """The page as GitHub-flavoured markdown; images are links to the PNGs beside it."""
    return "\n\n".join(_markdown_block(block) for block in blocks) + "\n"


def _markdown_block(block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"{'#' * level} {text}"
        case Text(text):
            return text
        case Details(summary, text):
            return f"<details><summary>{html.escape(summary)}</summary>\n\n```yaml\n{text.rstrip()}\n```\n\n</details>"
        case Table(header, rows):
            return "\n".join(
                [_md_row(header), _md_row(["---"] * len(header)), *(_md_row(row) for row in rows)]
            )
        case Image(title, file):
            return f"### {title}\n\n![{title}]({file})"
    raise AssertionError(f"unhandled block {block!r}")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


STYLE = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }"""


def to_html(blocks: list[Block], title: str, image_dir: Path) -> str:
    """The page as one HTML file: the PNGs in `image_dir` are embedded (and linked), no external files."""
    body = "\n".join(_html_block(block, image_dir) for block in blocks)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>\n{STYLE}\n</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _html_block(block: Block, image_dir: Path) -> str:
    escape = html.escape
    match block:
        case Heading(text, level):
            return f"<h{level}>{escape(text)}</h{level}>"
        case Text(text):
            return f"<p>{escape(text)}</p>"
        case Details(summary, text):
            return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"
        case Table(header, rows):
            head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
            body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        case Image(title, file):
            data = base64.b64encode((image_dir / file).read_bytes()).decode("ascii")
            return (
                f'<h3>{escape(title)}</h3><a href="{escape(file)}">'
                f'<img src="data:image/png;base64,{data}" alt="{escape(title)}"></a>'
            )
    raise AssertionError(f"unhandled block {block!r}")
