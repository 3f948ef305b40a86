"""`selftaught report`: panels chosen from the logged names, valid PNGs, pages that show every plot
(plots before the tables), summary values equal to the logged ones, unknown metrics under "other",
overlays where identical runs stay visible, legends clear of the data, the page in a real browser,
and the errors."""

import argparse
import base64
import contextlib
import io
import math
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from selftaught.report import add_report_parser, run_report
from selftaught.report.metrics import OTHER, PANEL_BY_NAME, assign_panel, assign_panels, load_run
from selftaught.report.render import PlotOptions, plot_panel, render_report
from selftaught.runlog import RunLog

NUM_STEPS = 6
NAN_STEP = 2
"""The step whose loss is NaN (RunLog writes it as the string "nan")."""


@dataclass
class TinyConfig:
    sync_every: int = 1
    lr: float = 1e-4


def write_run(run_dir: Path, seed: int, sync_every: int) -> dict[str, list]:
    """An online-RL-like run: rollout and train metrics every step (a NaN loss at `NAN_STEP`, a
    metric no panel knows, a text metric) and validation at steps 0, 3, 6. Returns metric -> the
    values logged, in order."""
    rng = random.Random(seed)
    logged: dict[str, list] = defaultdict(list)
    with RunLog(run_dir, TinyConfig(sync_every=sync_every), quiet=True) as run_log:
        for step in range(NUM_STEPS + 1):
            metrics: dict = {}
            if step:
                metrics = {
                    "reward": rng.random(),
                    "rollout_length": rng.uniform(10, 20),
                    "staleness": float(step % sync_every),
                    "loss": math.nan if step == NAN_STEP else rng.uniform(0.5, 0.7),
                    "grad_norm": rng.uniform(1, 3),
                    "mystery_metric": rng.random(),
                    "note": f"window {step // 2}",
                }
                run_log.log(step, **metrics)
            if step % 3 == 0:
                validation = {"val_accuracy": rng.random(), "val_stderr": rng.uniform(0.01, 0.05)}
                run_log.log(step, **validation)
                metrics |= validation
            for key, value in metrics.items():
                logged[key].append(value)
    return logged


def cli(argv: list[str]) -> str:
    """Run `selftaught report ARGV` through the argparse hook; its stdout."""
    parser = argparse.ArgumentParser(prog="selftaught")
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    stdout = io.StringIO()
    assert args.func is run_report
    with contextlib.redirect_stdout(stdout):
        assert run_report(args) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One run rendered by `selftaught report RUN_DIR`: (run dir, logged values, page path)."""
    pytest.importorskip("matplotlib")
    run_dir = tmp_path_factory.mktemp("runs") / "online"
    logged = write_run(run_dir, seed=0, sync_every=1)
    page = Path(cli([str(run_dir)]).strip())
    return run_dir, logged, page


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two runs overlaid by `selftaught report A B --out DIR`: (out dir, page path)."""
    pytest.importorskip("matplotlib")
    root = tmp_path_factory.mktemp("compare")
    for name, sync_every in (("offline", 3), ("online", 1)):
        write_run(root / name, seed=sync_every, sync_every=sync_every)
    page = Path(cli([str(root / "offline"), str(root / "online"), "--out", str(root / "out")]).strip())
    return root / "out", page


def table_rows(markdown: str, heading: str) -> list[dict[str, str]]:
    """The rows of the markdown table under `## heading`, as header -> cell."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]
    ]


@pytest.mark.parametrize(
    "name, panel",
    [
        ("reward", "reward"),
        ("reward_arith", "reward"),
        ("reward_num_none", "counts"),
        ("reward_chosen", "preference"),
        ("reward_margin", "preference"),
        ("reward_accuracy", "preference_accuracy"),
        ("val_accuracy", "accuracy"),
        ("val_level2", "accuracy"),
        ("val_pairwise_accuracy_swap", "accuracy"),
        ("val_stderr", "stderr"),
        ("val_mean_tokens", "length"),
        ("length_rejected", "length"),
        ("rollout_entropy", "entropy"),
        ("staleness_max", "staleness"),
        ("skipped_all_correct", "counts"),
        ("val_loss", "loss"),
        ("generation_tokens_per_s", "throughput"),
        ("pairs_per_s", "throughput"),
        ("train_seconds", "seconds"),
        ("time", "elapsed"),
        ("mystery_metric", None),
    ],
)
def test_metric_names_map_to_panels(name, panel):
    assert assign_panel(name) == panel


def test_stderr_is_error_bars_only_next_to_its_accuracy(tmp_path):
    with RunLog(tmp_path / "a", quiet=True) as run_log:
        run_log.log(0, val_accuracy=0.5, val_stderr=0.1, test_stderr=0.2, flag=True)
    panels = assign_panels([load_run(tmp_path / "a")])
    assert panels["val_stderr"] == "accuracy"
    assert panels["test_stderr"] == OTHER  # no test_accuracy to hang it on
    assert panels["flag"] == OTHER  # not a number


def test_resumed_run_keeps_the_later_value_of_a_step(tmp_path):
    with RunLog(tmp_path / "run", quiet=True) as run_log:
        for step, loss in [(1, 0.9), (2, 0.8), (3, float("nan")), (2, 0.7), (3, 0.6)]:
            run_log.log(step, loss=loss)
    series = load_run(tmp_path / "run").series["loss"]
    assert series.steps == [1, 2, 3]
    assert series.values == [0.9, 0.7, 0.6]


def test_one_png_per_panel_with_data_and_each_a_valid_image(single):
    Image = pytest.importorskip("PIL.Image")
    _, _, page = single
    expected = {"reward", "accuracy", "length", "staleness", "loss", "grad_norm", "elapsed"}
    assert {p.stem for p in page.parent.glob("*.png")} == expected
    for path in page.parent.glob("*.png"):
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100


def test_pages_show_every_image(single):
    _, _, page = single
    markdown = (page.parent / "report.md").read_text()
    html = page.read_text()
    for path in page.parent.glob("*.png"):
        assert f"]({path.name})" in markdown
        assert f'href="{path.name}"' in html
        assert f"base64,{base64.b64encode(path.read_bytes()).decode()}" in html  # self-contained


def test_summary_holds_the_logged_first_last_and_best_values(single):
    _, logged, page = single
    rows = {row["metric"]: row for row in table_rows((page.parent / "report.md").read_text(), "Summary")}
    assert set(rows) == {*logged, "time"}
    for metric in ("reward", "loss", "val_accuracy", "rollout_length", "staleness"):
        values = logged[metric]
        assert int(rows[metric]["points"]) == len(values)
        assert float(rows[metric]["first"]) == pytest.approx(values[0], rel=1e-3)
        assert float(rows[metric]["last"]) == pytest.approx(values[-1], rel=1e-3)
    assert rows["loss"]["best"] != "nan"  # the NaN step is skipped, not the best
    assert float(rows["loss"]["best"]) == pytest.approx(min(v for v in logged["loss"] if v == v), rel=1e-3)
    assert float(rows["reward"]["best"]) == pytest.approx(max(logged["reward"]), rel=1e-3)
    assert rows["rollout_length"]["best"] == ""  # no better direction for a length


def test_unknown_and_text_metrics_are_listed_under_other(single):
    _, logged, page = single
    other = {
        row["metric"]: row for row in table_rows((page.parent / "report.md").read_text(), "Other metrics")
    }
    assert set(other) == {"mystery_metric", "note"}
    assert other["note"]["first"] == logged["note"][0] and other["note"]["last"] == logged["note"][-1]
    assert float(other["mystery_metric"]["last"]) == pytest.approx(logged["mystery_metric"][-1], rel=1e-3)


def test_config_is_a_collapsed_block(single):
    _, _, page = single
    assert (
        "<details><summary>config.yaml of online</summary><pre>sync_every: 1\nlr: 0.0001" in page.read_text()
    )


def test_compare_overlays_runs_with_one_legend_entry_per_run(compared):
    out_dir, page = compared
    assert page == out_dir / "report.html"
    runs = [load_run(out_dir.parent / name) for name in ("offline", "online")]
    figure = plot_panel(runs, PANEL_BY_NAME["reward"], ["reward"])
    [axes] = figure.axes
    assert axes.get_legend_handles_labels()[1] == ["offline", "online"]
    rows = table_rows((out_dir / "report.md").read_text(), "Summary")
    assert {(row["run"], row["metric"]) for row in rows} >= {("offline", "reward"), ("online", "reward")}
    differences = table_rows((out_dir / "report.md").read_text(), "Config differences")
    assert [(d["key"], d["offline"], d["online"]) for d in differences if d["key"] == "sync_every"] == [
        ("sync_every", "3", "1")
    ]


def test_missing_or_empty_metrics_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"nothing-here/metrics.jsonl does not exist"):
        render_report(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty/metrics.jsonl is empty"):
        render_report(tmp_path / "empty")


def test_several_runs_need_an_out_dir(tmp_path):
    with pytest.raises(ValueError, match="--out"):
        cli([str(tmp_path / "a"), str(tmp_path / "b")])


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    with RunLog(tmp_path / "run", quiet=True) as run_log:
        run_log.log(1, loss=1.0)
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ValueError, match=r"pip install 'selftaught\[report\]'"):
        render_report(tmp_path / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plots_come_before_the_tables(single):
    _, _, page = single
    html = page.read_text()
    assert html.index("<img") < html.index("<table")
    markdown = (page.parent / "report.md").read_text()
    assert markdown.index("](reward.png)") < markdown.index("## Summary")


def write_identical_runs(root: Path) -> list:
    for name in ("first", "second"):
        write_run(root / name, seed=0, sync_every=1)
    return [load_run(root / name) for name in ("first", "second")]


def test_identical_runs_are_two_visible_lines_and_two_legend_entries(tmp_path):
    pytest.importorskip("matplotlib")
    runs = write_identical_runs(tmp_path)
    figure = plot_panel(runs, PANEL_BY_NAME["reward"], ["reward"], PlotOptions(smoothing=0.6))
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["first", "second"]
    [axes] = figure.axes
    first, second = (
        next(ln for ln in axes.get_lines() if ln.get_label() == name) for name in ("first", "second")
    )
    assert list(first.get_ydata()) == list(second.get_ydata())  # same values, no offset...
    assert first.get_linestyle() != second.get_linestyle()  # ...told apart by dash, marker and width,
    assert first.get_marker() != second.get_marker()
    assert first.get_linewidth() > second.get_linewidth()  # the second drawn inside the first
    assert second.get_zorder() > first.get_zorder()
    raw = [ln for ln in axes.get_lines() if ln.get_label().startswith("_")]
    assert len(raw) == 2 and all(ln.get_alpha() < 0.5 for ln in raw)  # the raw values, faint


def test_smoothing_zero_draws_the_logged_values_only(tmp_path):
    pytest.importorskip("matplotlib")
    [run] = write_identical_runs(tmp_path)[:1]
    figure = plot_panel([run], PANEL_BY_NAME["reward"], ["reward"], PlotOptions(smoothing=0.0))
    [line] = figure.axes[0].get_lines()
    assert list(line.get_ydata()) == run.series["reward"].values


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("num_runs", [1, 2])
def test_legends_lie_outside_the_axes_and_titles(tmp_path, num_runs):
    pytest.importorskip("matplotlib")
    runs = write_identical_runs(tmp_path)[:num_runs]
    many = ["reward", "rollout_length", "staleness", "loss", "grad_norm", "mystery_metric", "val_accuracy"]
    for metrics in (["reward"], many):
        figure = plot_panel(runs, PANEL_BY_NAME["reward"], metrics)
        renderer = figure.canvas.get_renderer()
        figure.draw(renderer)  # constrained layout places the legend
        [legend] = figure.legends
        box = legend.get_window_extent(renderer)
        titles = [a.title for a in figure.axes] + ([figure._suptitle] if figure._suptitle else [])
        for axes in figure.axes:
            assert not overlaps(box, axes.get_window_extent(renderer)), (metrics, num_runs)
        for title in titles:
            assert not overlaps(box, title.get_window_extent(renderer)), title.get_text()
        figure_box = figure.bbox
        assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 + 1  # not cut off
        assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1 + 1


def test_cli_options_reach_the_plots(tmp_path):
    pytest.importorskip("matplotlib")
    write_run(tmp_path / "run", seed=0, sync_every=1)
    page = Path(cli([str(tmp_path / "run"), "--x", "time", "--smoothing", "0"]).strip())
    assert "against wall time (s) (smoothing off)" in page.read_text()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        cli([str(tmp_path / "run"), "--smoothing", "1"])


CHROMIUM = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome", "chrome")


def chromium_binary() -> str | None:
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


@pytest.mark.skipif(
    chromium_binary() is None,
    reason=f"no chromium binary on PATH (looked for {', '.join(CHROMIUM)}); on Debian: "
    "apt-get install chromium-headless-shell",
)
def test_the_page_renders_in_headless_chromium(single, tmp_path):
    """The documented check (`selftaught.report` docstring): a screenshot of report.html."""
    Image = pytest.importorskip("PIL.Image")
    _, _, page = single
    shot = tmp_path / "report.png"
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",  # root in containers
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1400,2000",
        page.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1400, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # plots drawn, not a blank or error page
