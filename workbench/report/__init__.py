"""Reports and every text the CLI and the reports show: the offline HTML report of a run and of a
sweep, the circuitsvis view, the notebook explorer.

Modules: ``page`` (the HTML page, image export), ``run_report`` (`build_report`),
``sweep_report`` (`build_sweep_report`), ``rff_report`` (`build_rff_report`: the random-feature experiment), ``double_descent`` (the
double-descent results page), ``circuitsvis`` (offline attention views), ``explorer``
(`explore`, `step_view`, `attention_view`), ``text`` (one-line summaries).
"""

from __future__ import annotations

from workbench.report.double_descent import double_descent_page, results_header
from workbench.report.explorer import attention_view, explore, step_view
from workbench.report.page import IMAGE_FORMATS
from workbench.report.rff_report import build_rff_report, rff_figures
from workbench.report.run_report import build_report, overview_html, run_figures
from workbench.report.sweep_report import build_sweep_report, sweep_figures
from workbench.report.text import metrics_line

__all__ = ["double_descent_page", "results_header", "build_rff_report", "rff_figures", "overview_html", "run_figures", "sweep_figures", "IMAGE_FORMATS", "attention_view", "build_report", "build_sweep_report", "explore", "metrics_line", "step_view"]
