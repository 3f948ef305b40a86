"""Reports of run directories: PNG plots of `metrics.jsonl` and a markdown + HTML page (layer L7).

    render_report(run_dir)             one run -> <run_dir>/report/report.html
    compare_runs(run_dirs, out_dir)    several runs overlaid, legend by run name

    selftaught report RUN_DIR [RUN_DIR ...] [--out DIR] [--smoothing 0.6] [--x step|samples|tokens|time]

Per-step curves are smoothed (TensorBoard's debiased EMA, `--smoothing 0` = off) over the raw values
drawn faint; `--x` picks the x axis from what `metrics.jsonl` records (`curves`: which recipe logs
which). The page shows the plots first, then the config differences and the summary table.

Look at a page in a real browser, headless (Debian: `apt-get install chromium-headless-shell`, or
`chromium`; `--no-sandbox` only when running as root, as in containers):

    chromium-headless-shell --no-sandbox --hide-scrollbars --window-size=1400,2000 \\
        --screenshot=report.png file://$PWD/runs/r/report/report.html

(`tests/report/test_report.py::test_the_page_renders_in_headless_chromium` runs this when a chromium
binary is on PATH, and is skipped saying so otherwise). `docs/img/report-screenshot.png` is such a
screenshot of `selftaught online-rl --preset tiny-smoke num_steps=20`'s report.

matplotlib (the `report` extra) is imported only when plotting.
"""

from selftaught.report.cli import add_report_parser, run_report
from selftaught.report.render import compare_runs, render_report

__all__ = ["add_report_parser", "compare_runs", "render_report", "run_report"]
