"""The random-feature experiment's output: ``DIR/rff.csv``, ``DIR/index.html`` and its figures.

`workbench.random_features.double_descent` measures; this writes what it measured beside the
figures of `workbench.figures.double_descent` (``rff_curves``: losses and errors against N;
``rff_effective_parameters``: test loss against N and against p_hat(test)), each as PNG, SVG and
PDF too, and a self-contained page like the run report's.

Example:
    >>> from pathlib import Path
    >>> from workbench.random_features import double_descent, modular_task
    >>> table = double_descent(modular_task(p=11, frac_train=0.5), counts=[20, 60, 200])
    >>> build_rff_report(table, Path("rff-out"), "add mod 11", formats=()).table.name
    'rff.csv'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from workbench import figures, store
from workbench.report.page import IMAGE_FORMATS, export_images, figure_sections, page_html
from workbench.store import RFF_TABLE


@dataclass
class RffReport:
    table: Path
    index: Path
    images: list[Path] = field(default_factory=list)
    image_error: str | None = None


def rff_figures(table) -> dict:
    """name -> (figure, what to look for)."""
    return {
        "rff_double_descent": (
            figures.rff_curves(table),
            "Train and test loss and error of least squares on N random Fourier features. Below N = n (dashed) the "
            "fit is classical; at N = n the design matrix is square and nearly singular and the test loss peaks; past "
            "it the minimum-norm interpolant's test loss falls again (Belkin et al. 2019, Fig. 2)."),
        "rff_effective_parameters": (
            figures.rff_effective_parameters(table),
            "The same test losses against N and against the effective parameters on the test inputs (Curth et al. "
            "2023). If their U-turn holds, the two branches (N < n, N >= n) line up on one U against p̂(test)."),
    }


def build_rff_report(table, out: Path, description: str, formats=IMAGE_FORMATS) -> RffReport:
    """Write ``out/rff.csv``, its figures and ``out/index.html``; creates ``out`` if needed."""
    out = Path(out)
    store.ensure_output_dir(out)
    csv = out / RFF_TABLE
    store.write_table(csv, table)
    figs = rff_figures(table)
    images, error = export_images(figs, out, formats) if formats else ([], None)
    peak = table.loc[table.test_loss.idxmax()]
    body = [f"<h1>Random-feature double descent: {html.escape(description)}</h1>",
            f"<p>n = {int(table.n_train.iloc[0])} training points; N from {int(table.n_features.min())} to "
            f"{int(table.n_features.max())} features; the test loss peaks at N = {int(peak.n_features)} "
            f"({peak.test_loss:.4g}). Table: {RFF_TABLE}.</p>"]
    if error:
        body.append(f"<p class='muted'>{html.escape(error)}</p>")
    body += figure_sections(figs, error)
    body.append(table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    index = out / store.REPORT_PAGE
    store.write_text(index, page_html(f"random features — {description}", body))
    return RffReport(table=csv, index=index, images=images, image_error=error)
