"""`render_report` (one run) and `compare_runs` (several): a PNG per panel and a page (layer L7).

    <run_dir>/report/
      reward.png accuracy.png ...   one plot per panel the run has data for (`metrics.PANELS`)
      report.md                     title, config, the plots (linked), summary table, other metrics
      report.html                   the same page, self-contained: the plots are embedded

Plots are explicit matplotlib `Figure`s on the Agg canvas (no pyplot global state), so rendering
works headless and never touches a caller's figures. matplotlib is the optional `report` extra,
imported only when plotting.

Each line is the EMA of its values (`curves.ema`, `smoothing` 0 = off) with the raw values faint
behind it, against the x axis `x` (`curves.X_AXES`). Lines of one axes differ in colour, dash,
marker and width, so identical series (two runs with the same values) stay visible one inside the
other; the legend sits outside the axes, right of them, one entry per line.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.report.curves import DEFAULT_SMOOTHING, X_AXES, X_LABELS, ema, x_values
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


@dataclass(frozen=True)
class PlotOptions:
    """How lines are drawn: EMA weight (0 = raw values only) and x axis (one of `curves.X_AXES`)."""

    smoothing: float = DEFAULT_SMOOTHING
    x: str = "step"

    def __post_init__(self) -> None:
        ema([], self.smoothing)  # validates the weight
        if self.x not in X_AXES:
            raise ValueError(f"unknown x axis {self.x!r}: choose one of {', '.join(X_AXES)}")


def render_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    x: str = "step",
) -> Path:
    """Plots and a markdown + HTML page for one run; returns the HTML page's path.

    `out_dir` defaults to `<run_dir>/report`. Each panel is one axes with a line per metric.
    """
    options = PlotOptions(smoothing, x)
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    return _render([run], out, f"selftaught run {run.name}", options)


def compare_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    x: str = "step",
) -> Path:
    """One page overlaying several runs (e.g. offline, semi-online and online RL); the HTML page's path.

    Each panel has one axes per metric with one line per run, the legend naming the runs (their
    directory names, or their paths when two names are equal).
    """
    options = PlotOptions(smoothing, x)
    if not run_dirs:
        raise ValueError("compare_runs needs at least one run directory")
    names = [Path(d).resolve().name for d in run_dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in run_dirs]
    runs = [load_run(d, name) for d, name in zip(run_dirs, names, strict=True)]
    return _render(runs, Path(out_dir), "selftaught runs " + ", ".join(names), options)


def _render(runs: list[RunMetrics], out_dir: Path, title: str, options: PlotOptions) -> Path:
    _matplotlib()  # a missing extra fails before anything is written
    panels = assign_panels(runs)
    figures = [(panel, plot_panel(runs, panel, metrics, options)) for panel, metrics in panel_lines(panels)]
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for panel, figure in figures:
        figure.savefig(out_dir / f"{panel.name}.png", dpi=100)
        images.append(Image(panel.title, f"{panel.name}.png"))
    blocks = build_page(title, runs, summarize(runs, panels), images, options)
    (out_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(blocks, title, out_dir), encoding="utf-8")
    return page


# --- plots -----------------------------------------------------------------------------------------


def _matplotlib() -> tuple[Any, Any, Any]:
    """(Figure, FigureCanvasAgg, matplotlib.ticker), or a ValueError that names the extra to install."""
    try:
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ValueError("the report needs matplotlib: pip install 'selftaught[report]'") from err
    return Figure, FigureCanvasAgg, ticker


LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MAX_MARKERS = 8
"""Markers per line at most: enough to tell lines apart, few enough not to hide the curve."""


@dataclass(frozen=True)
class LineStyle:
    """The look of line `index` of `count` in one axes: each differs from the others in colour,
    dash, marker and width, the first widest, so equal lines show one inside the other."""

    index: int
    count: int

    def kwargs(self, num_points: int) -> dict[str, Any]:
        every = max(1, math.ceil(num_points / MAX_MARKERS))
        return {
            "color": f"C{self.index % 10}",
            "linestyle": LINE_STYLES[self.index % len(LINE_STYLES)],
            "linewidth": max(1.0, 2.6 - 0.6 * self.index),
            "marker": MARKERS[self.index % len(MARKERS)],
            "markersize": max(3.0, 7.0 - 1.5 * self.index),
            "markevery": ((self.index * every) // self.count % every, every),  # markers interleave
            "zorder": 2.0 + 0.01 * self.index,  # later (thinner) lines on top, error bars too
        }


def plot_panel(
    runs: list[RunMetrics], panel: Panel, metrics: list[str], options: PlotOptions | None = None
) -> Any:
    """The `Figure` of one panel. One run: one axes, a line per metric. Several runs: one axes per
    metric, a line per run (one style per run across all axes). The legend is the figure's, outside
    the axes: right of the one axes, below the several."""
    Figure, FigureCanvasAgg, _ = _matplotlib()
    options = options or PlotOptions()
    if len(runs) == 1:
        figure = Figure(figsize=(6.8, 3.4), layout="constrained")
        axes = figure.add_subplot()
        for index, metric in enumerate(metrics):
            style = LineStyle(index, len(metrics))
            _draw(axes, runs[0], metric, metric, style, panel.smooth, options)
        _style(axes, panel.ylabel, options.x)
        axes.set_title(panel.title, loc="left")  # a long title stays clear of the legend
        _legend(figure, metrics, loc="outside right upper")
    else:
        num_cols = min(3, len(metrics))
        num_rows = math.ceil(len(metrics) / num_cols)
        width = max(5.5, 4.2 * num_cols)  # room for the panel title above a single axes
        figure = Figure(figsize=(width, 3.0 * num_rows + 0.8), layout="constrained")
        for index, metric in enumerate(metrics):
            axes = figure.add_subplot(num_rows, num_cols, index + 1)
            for number, run in enumerate(runs):
                if metric in run.series:
                    style = LineStyle(number, len(runs))
                    _draw(axes, run, metric, run.name, style, panel.smooth, options)
            axes.set_title(metric, fontsize=9)
            _style(axes, panel.ylabel, options.x)
        figure.suptitle(panel.title)
        _legend(figure, [run.name for run in runs], loc="outside lower center", ncols=min(4, len(runs)))
    FigureCanvasAgg(figure)
    return figure


def _draw(
    axes: Any, run: RunMetrics, metric: str, label: str, style: LineStyle, smooth: bool, options: PlotOptions
) -> None:
    """One metric of one run: its EMA over the raw values drawn faint, or with error bars when its
    standard error is logged (not smoothed). Non-finite values are gaps (the summary shows them)."""
    series = run.series[metric]
    xs = x_values(run, series, options.x)
    values = [v if math.isfinite(v) else math.nan for v in series.values]
    line = style.kwargs(len(values))
    errors = run.series.get(stderr_name(metric) or "")
    if errors is not None and errors.is_numeric:
        by_step = dict(zip(errors.steps, errors.values, strict=True))
        yerr = [by_step.get(step, math.nan) for step in series.steps]
        line["zorder"] -= 0.1  # errorbar draws its line 0.1 above the zorder it is given
        axes.errorbar(xs, values, yerr=yerr, capsize=3, label=label, **line)
    elif smooth and options.smoothing > 0 and len(values) > 1:
        axes.plot(xs, values, color=line["color"], linewidth=1.0, alpha=0.25, label=f"_{label} (raw)")
        axes.plot(xs, ema(values, options.smoothing), label=label, **line)
    else:
        axes.plot(xs, values, label=label, **line)


def _style(axes: Any, ylabel: str, x: str) -> None:
    _, _, ticker = _matplotlib()
    axes.set_xlabel(X_LABELS[x])
    axes.set_ylabel(ylabel)
    if x in ("step", "samples"):
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    if x in ("samples", "tokens"):
        axes.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    axes.grid(alpha=0.3)


def _legend(figure: Any, labels: list[str], loc: str, ncols: int = 1) -> None:
    """One figure legend outside the axes (`loc`): an entry per label (a metric or a run) in `labels` order."""
    handles: dict[str, Any] = {}
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    shown = [label for label in labels if label in handles]
    if shown:
        figure.legend([handles[label] for label in shown], shown, loc=loc, ncols=ncols, fontsize=8)


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


@dataclass
class Gallery:
    """The plots: side by side where the page is wide enough (`wide`: one per row)."""

    images: list[Image]
    wide: bool = False


Block = Heading | Text | Details | Table | Image | Gallery


def build_page(
    title: str,
    runs: list[RunMetrics],
    rows: list[SummaryRow],
    images: list[Image],
    options: PlotOptions | None = None,
) -> list[Block]:
    """The page as blocks, rendered by `to_markdown` and `to_html`: title, configs (collapsed), the
    plots, (for several runs) their config differences, the summary table, and the metrics no panel
    plots."""
    options = options or PlotOptions()
    blocks: list[Block] = [
        Heading(title, 1),
        Text("Run directories: " + ", ".join(str(r.run_dir) for r in runs)),
    ]
    for run in runs:
        if run.config_text is None:
            blocks.append(Text(f"{run.run_dir} has no config.yaml."))
        else:
            blocks.append(Details(f"config.yaml of {run.name}", run.config_text))
    blocks += [Heading("Plots"), Text(_plots_caption(options)), Gallery(images, wide=len(runs) > 1)]
    if len(runs) > 1:
        differences = config_differences(runs)
        header = ["key", *(run.name for run in runs)]
        blocks += [
            Heading("Config differences"),
            Table(header, [[key, *values] for key, values in differences]),
        ]
    with_run = len(runs) > 1
    blocks += [Heading("Summary"), _row_table(rows, with_run, ["panel", "points", "first", "last", "best"])]
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


def _plots_caption(options: PlotOptions) -> str:
    x = X_LABELS[options.x]
    if options.smoothing == 0:
        return f"Logged values against {x} (smoothing off)."
    return (
        f"Lines: exponential moving average (weight {options.smoothing:g}, debiased as TensorBoard's) "
        f"against {x}, the logged values faint behind; evaluations, learning rate and clock unsmoothed."
    )


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
            return f"![{title}]({file})"  # the plot carries its title
        case Gallery(images):
            return "\n\n".join(_markdown_block(image) for image in images)
    raise AssertionError(f"unhandled block {block!r}")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


STYLE = """body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 0.5em 1em; }
.plots.wide { grid-template-columns: 1fr; }
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
                f'<a href="{escape(file)}" title="{escape(title)}">'
                f'<img src="data:image/png;base64,{data}" alt="{escape(title)}"></a>'
            )
        case Gallery(images, wide):
            plots = "\n".join(_html_block(image, image_dir) for image in images)
            return f'<div class="plots{" wide" if wide else ""}">\n{plots}\n</div>'
    raise AssertionError(f"unhandled block {block!r}")
