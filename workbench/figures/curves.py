"""Training curves: losses and accuracies, and the progress measures (Nanda et al. 2023)."""

from __future__ import annotations

import itertools

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.style import (
    _applies,
    _in_layer,
    _layer_name,
    _layers,
    _measure,
    _say_not_applicable,
    _style,
    add_phase_bands,
)


def loss_curves(metrics, phases: dict | None = None) -> go.Figure:
    """Train and test loss (log y) and accuracy against step, with phase bands. Each series is
    drawn through the steps where it was measured (an imported run logs accuracy only at its
    checkpoints, and some sources log test loss less often than train loss)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("cross-entropy loss", "accuracy"))
    m = metrics
    for split, colour in (("train", "#636efa"), ("test", "#ef553b")):
        loss, acc = m[["step", f"{split}_loss"]].dropna(), m[["step", f"{split}_acc"]].dropna()
        fig.add_trace(go.Scatter(x=loss.step, y=loss[f"{split}_loss"], name=f"{split} loss", line_color=colour), 1, 1)
        fig.add_trace(go.Scatter(x=acc.step, y=acc[f"{split}_acc"], name=f"{split} accuracy", line_color=colour,
                                 line_dash="dot"), 1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title="step")
    _style(fig, "Training curves")
    return add_phase_bands(fig, phases, int(metrics.step.max()), rows=1, cols=2)


def progress_measures(progress, weights, fourier, phases: dict | None = None, applies: bool | None = None) -> go.Figure:
    """Excluded and restricted loss with the test loss, test/restricted ratio, total sum of squared
    weights, and the Gini coefficients of the W_E and W_L Fourier norms, on one step axis. For a
    task whose restricted and excluded losses do not apply (NaN rows) the first two panels say so."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("losses (log)", "test loss / restricted loss (log)",
                                        "total sum of squared weights", "Gini of Fourier norms"))
    for measure, name, colour in (("excluded_loss", "excluded loss", "#ef553b"),
                                  ("restricted_loss", "restricted loss", "#00cc96"),
                                  ("test_loss", "test loss", "#636efa"), ("train_loss", "train loss", "#ab63fa")):
        rows = _measure(progress, measure)
        fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name=name, line_color=colour), 1, 1)
    ratio = _measure(progress, "test_restricted_ratio")
    fig.add_trace(go.Scatter(x=ratio.step, y=ratio.value, name="test / restricted", line_color="#ffa15a"), 2, 1)
    if not _applies(_measure(progress, "restricted_loss"), applies):  # a task with no a ± b direction
        _say_not_applicable(fig, 1, what="excluded and restricted loss ")  # train and test loss still drawn
        _say_not_applicable(fig, 2)
    total = weights[weights.param == "total"].sort_values("step")
    fig.add_trace(go.Scatter(x=total.step, y=total.value, name="sum of squared weights", line_color="#19d3f3"), 3, 1)
    rows = _measure(fourier, "embed_gini")
    fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name="Gini W_E", line_color="#ff6692"), 4, 1)
    layers = _layers(fourier[fourier.measure == "wl_gini"])
    for layer, colour in zip(layers, itertools.cycle(("#b6e880", "#2ca02c", "#17becf", "#bcbd22"))):
        rows = _measure(_in_layer(fourier, layer), "wl_gini")
        fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name="Gini W_L" + _layer_name(layer, layers),
                                 line_color=colour), 4, 1)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title="step", row=4, col=1)
    _style(fig, "Progress measures", height=900)
    last = int(progress.step.max()) if len(progress) else 0
    return add_phase_bands(fig, phases, last, rows=4)
