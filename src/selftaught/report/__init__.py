"""Reports of run directories: PNG plots of `metrics.jsonl` and a markdown + HTML page (layer L7).

    render_report(run_dir)             one run -> <run_dir>/report/report.html
    compare_runs(run_dirs, out_dir)    several runs overlaid, legend by run name

matplotlib (the `report` extra) is imported only when plotting.
"""

from selftaught.report.cli import add_report_parser, run_report
from selftaught.report.render import compare_runs, render_report

__all__ = ["add_report_parser", "compare_runs", "render_report", "run_report"]
