"""The sweep report: ``<sweep>/report/index.html`` plus every figure as PNG, SVG, PDF.

Self-contained like the run report (plotly.js inlined once; opens from disk offline). It shows
the sweep's definition, the tidy table with the outcome criteria beside it, and the figures of
`workbench.sweep_figures` that fit the sweep's axes: the phase diagram over its first two axes,
steps to generalise against each axis, key frequencies across members, test loss of every
member on one axis, and for a width axis (d_mlp or d_model) the double-descent curves.

Example:
    >>> from pathlib import Path
    >>> from workbench.sweeps import open_sweep, run_sweep
    >>> _ = Path("pair.toml").write_text('base = "smoke"\\n[set]\\nepochs = 50\\n[axes]\\nweight_decay = [0.5, 1.0]\\n')
    >>> sweep = run_sweep("pair.toml", progress=False)
    >>> build_sweep_report(open_sweep("pair"), formats=()).index.name   # <root>/pair/report/index.html
    'index.html'
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from probes.outcome import CRITERIA as OUTCOME_CRITERIA
from workbench import figures, store
from workbench.report.page import IMAGE_FORMATS, export_images, figure_sections, page_html
from workbench.store import TABLE
from workbench.sweeps import SEED_AXIS, Sweep, probe_sweep

WIDTH_AXES = ("d_mlp", "d_model")
OVERLAY_LIMIT = 24  # more lines than this on one axis are unreadable


@dataclass
class SweepReport:
    index: Path
    figures: list[str]
    images: list[Path] = field(default_factory=list)
    image_error: str | None = None


def fixed_epoch_losses(metrics: dict[str, object], epochs: list[int]) -> dict[int, dict[str, float]]:
    """metrics: member -> its metrics DataFrame -> {epoch: {member: test loss at the last
    evaluation at or before that epoch}}."""
    out: dict[int, dict[str, float]] = {e: {} for e in epochs}
    for name, m in metrics.items():
        for e in epochs:
            rows = m[m.step <= e]
            if len(rows):
                out[e][name] = float(rows.test_loss.iloc[-1])
    return out


def restricted_losses(sweep: Sweep, members: list[str]) -> dict[str, object]:
    """{member: DataFrame(step, restricted_loss)} for the members whose progress probe has it."""
    out = {}
    for name in members:
        table = store.Run(sweep.path / name).probe_table("progress")
        if table is None:
            continue
        rows = table[table.measure == "restricted_loss"].dropna(subset=["value"])
        if len(rows):
            out[name] = rows.rename(columns={"value": "restricted_loss"})[["step", "restricted_loss"]]
    return out


def sweep_figures(sweep: Sweep, table) -> dict[str, tuple[go.Figure, str]]:
    """name -> (figure, what to look for), for the figures that fit the sweep's axes."""
    axes = [a for a in sweep.definition.axis_names if a != SEED_AXIS and table[a].nunique() > 1]
    trained = table[table.status == "complete"]
    figs: dict[str, tuple[go.Figure, str]] = {}
    if len(axes) >= 2:
        figs["phase_diagram"] = (figures.phase_diagram(table, axes[0], axes[1]),
                                 "Each cell is a setting; its colour the most common outcome over seeds. Look for "
                                 "the grokking band between comprehension and memorisation (Liu et al. 2022, Fig. 6), "
                                 "and how the steps to generalise grow towards its edge.")
    for axis in axes:
        by = next((a for a in axes if a != axis), None)  # a line per value of the other axis: each cell's median
        figs[f"steps_to_grok_{axis}"] = (
            figures.steps_to_grok(trained, axis, by=by),
            f"Steps to 99% test accuracy against {axis}"
            + (f", a median line per {by} with the seeds' min–max" if by else "; the spread of dots at one value is "
               "the spread over seeds") + ". Power et al. 2022 (Fig. 1): the time to generalise rises steeply as the "
            "training fraction falls.")
    if "key_freqs" in trained and trained.key_freqs.notna().any():
        figs["key_frequencies"] = (figures.key_frequencies_across_seeds(trained),
                                   "Which frequencies members use, and how many: across seeds the set changes while "
                                   "its size stays small (Chughtai et al. 2023, universality).")
    metrics = {n: store.Run(sweep.path / n).metrics for n in trained.member}  # read once, for every figure
    names = list(trained.member)[:OVERLAY_LIMIT]
    overlaid = {n: metrics[n] for n in names}
    if names:
        figs["test_loss_overlaid"] = (figures.curves_overlaid(overlaid, "test_loss"),
                                      "Every member's test loss on one step axis: where the drops line up, and where "
                                      "they do not.")
        restricted = restricted_losses(sweep, names)
        if restricted:
            figs["restricted_loss_overlaid"] = (
                figures.curves_overlaid(restricted, "restricted_loss"),
                "Each member's restricted loss (the logits kept to its own key frequencies, Nanda et al. 2023): it "
                "falls before the test loss does in the members that grok, and stays high in those that memorise.")
    width = _width_axis(axes, table)
    noise = "label_noise" if "label_noise" in axes else None
    if "frac_train" in axes and len(trained) and not width:
        figs["double_descent_samples"] = (
            figures.test_loss_against(trained, "frac_train", by=noise),
            "Final train and test loss against the training fraction, one pair of lines per noise level. "
            "Sample-wise double descent (Nakkiran et al. 2019, Sec. 7) is a rise in test loss as data is added "
            "near the fraction the model can just fit, then a fall.")
    if width and len(trained):
        epochs = sorted({int(e) for e in (store.Run(sweep.path / names[0]).config.epochs * f for f in (0.1, 0.3))})
        at = fixed_epoch_losses(metrics, epochs) if not noise else None
        figs["double_descent_width"] = (
            figures.test_loss_against(trained, width, at, by=noise),
            f"Test loss against {width} at the end and at fixed epochs. Model-wise double descent (Nakkiran et al. "
            "2019) is a rise near the width where the model just fits the (noisy) training set, then a second fall.")
        labels = {n: (f"{width} {v:g}" if isinstance(v, float) else f"{width} {v}")
                  + (f", noise {trained.loc[trained.member == n, noise].iloc[0]:g}" if noise else "")
                  for n, v in zip(trained.member, trained[width], strict=True)}
        figs["double_descent_epochs"] = (
            figures.loss_over_epochs(overlaid, labels),
            "Test loss against epoch per width: epoch-wise double descent is a fall, a rise while the noisy labels "
            "are fitted, and a second fall.")
        figs["loss_size_norm"] = (figures.loss_against_size_and_norm(trained),
                                  "The same test losses against parameter count and against the weight norm: "
                                  "Davies et al. 2022 read grokking and double descent as one effect of the norm.")
        if "outcome" in trained:
            figs["outcomes_by_width"] = (
                figures.outcomes_by_width(trained, width, by=noise),
                f"Top: the model-wise curve over {width}. Bottom: at each width, when the member fits its training "
                "set (circle) and when it generalises (star), coloured by outcome class (open symbols: with label noise). The widths that never "
                "fit (confusion) lie left of the peak, those that fit and memorise sit at it, and past it the "
                "members grok: the model-wise peak and the epoch-wise grokking delay are one story (Davies et al. 2022).")
    if len(trained) >= 3 and "eff_params_test" in trained and trained.eff_params_test.notna().any():
        figs["complexity_axes"] = (
            figures.complexity_axes(trained),
            "Each member's final test loss against its parameter count, against the effective parameters of a "
            "least-squares readout on its final features on the test inputs (Curth et al. 2023; the readout given "
            "the features, not the whole network) and against λ̂ (the LLC, when the sweep probes it). A U-turn would "
            "show as one U on the effective axes where the raw count shows two descents.")
    return figs


def _width_axis(axes: list[str], table) -> str | None:
    """The sweep's width: a swept d_mlp or d_model, or one that named cases vary (the ``model-wise`` sweep
    sets d_model, d_head and d_mlp together per case)."""
    swept = next((a for a in axes if a in WIDTH_AXES), None)
    if swept or "case" not in axes:
        return swept
    return next((w for w in ("d_model", "d_mlp") if w in table and table[w].nunique() > 1), None)


def _table_html(table) -> str:
    return table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0)


def build_sweep_report(sweep: Sweep, formats=IMAGE_FORMATS) -> SweepReport:
    """Write the sweep's report (probing the sweep first if it has no table)."""
    if not (sweep.path / TABLE).is_file():
        probe_sweep(sweep, progress=False)
    table = sweep.table
    figs = sweep_figures(sweep, table)
    out = sweep.path / store.REPORT_DIR
    out.mkdir(exist_ok=True)
    images, error = export_images(figs, out, formats) if formats else ([], None)
    definition = json.dumps(sweep.definition.to_dict(), indent=1)
    criteria = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in OUTCOME_CRITERIA.items())
    counts = table.outcome.value_counts().to_dict() if "outcome" in table else {}
    body = [f"<h1>Sweep report: {html.escape(sweep.name)}</h1>",
            f"<p>{len(table)} members; outcomes: "
            + (", ".join(f"{html.escape(str(k))} {v}" for k, v in counts.items()) or "none yet") + ".</p>",
            f"<p>{html.escape(sweep.definition.description)}</p>",
            f"<details><summary>definition</summary><pre>{html.escape(definition)}</pre></details>"]
    if error:
        body.append(f"<p class='muted'>{html.escape(error)}</p>")
    body += figure_sections(figs, error)
    body.append("<h2>Members</h2><p class='caption'>The sweep's tidy table (sweep.csv); the outcome class follows "
                "these criteria (outcomes.json):</p>")
    body.append(f"<table>{criteria}</table>")
    body.append(_table_html(table))
    index = out / store.REPORT_PAGE
    store.write_text(index, page_html(f"{sweep.name} — sweep report", body))
    return SweepReport(index=index, figures=list(figs), images=images, image_error=error)
