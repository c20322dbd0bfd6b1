"""Effective complexity: weight norms, Fourier sparsity and the local learning coefficient (devinterp)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes.llc import by_step as llc_by_step
from probes.phases import Phases
from workbench.figures.style import _measure, _style, add_phase_bands


def _llc_by_step(llc):
    """One row per checkpoint: step and every llc measure."""
    return llc_by_step(llc).reset_index()


def llc_curve(llc, metrics=None, phases: Phases | dict | None = None) -> go.Figure:
    """The local learning coefficient over training (spread over chains as error bars) on the
    step axis of the loss curves, with phase bands. Estimates whose chains were unhealthy
    (`probes.llc.check_health`) are drawn as red crosses and left out of the line."""
    wide = _llc_by_step(llc)
    rows = 2 if metrics is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("local learning coefficient λ̂ (train set only)", "loss (log)")[:rows])
    good, bad = wide[wide.healthy == 1], wide[wide.healthy != 1]
    fig.add_trace(go.Scatter(x=good.step, y=good.llc, name="λ̂ (mean over chains)", mode="lines+markers",
                             line_color="#636efa", marker_size=4,
                             error_y=dict(type="data", array=good.llc_std, thickness=1, width=0)), 1, 1)
    if len(bad):
        fig.add_trace(go.Scatter(x=bad.step, y=bad.llc, name="unhealthy chains (not trusted)", mode="markers",
                                 marker=dict(symbol="x", color="#ef553b", size=8)), 1, 1)
    if metrics is not None:
        for split, colour in (("train", "#ab63fa"), ("test", "#00cc96")):
            fig.add_trace(go.Scatter(x=metrics.step, y=metrics[f"{split}_loss"], name=f"{split} loss",
                                     line_color=colour), 2, 1)
        fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(title="λ̂", row=1, col=1)
    fig.update_xaxes(title="step", row=rows, col=1)
    _style(fig, "Effective complexity: the local learning coefficient", height=420 + 240 * (rows - 1))
    last = int(metrics.step.max()) if metrics is not None else int(wide.step.max())
    return add_phase_bands(fig, phases, last, rows=rows)


def complexity_panel(weights, fourier, complexity, llc=None, phases: Phases | dict | None = None) -> go.Figure:
    """Complexity measures side by side on one step axis: the parameter count (flat), the sum of
    squared weights, the Gini of the W_E Fourier norms, the fraction of active MLP neurons, the
    normalised entropy of the absolute weights, and λ̂ when the run has it."""
    panels = [("parameter count", _measure(complexity, "param_count")),
              ("sum of squared weights", weights[weights.param == "total"].sort_values("step")),
              ("Gini of W_E Fourier norms", _measure(fourier, "embed_gini")),
              ("active MLP neurons per input", _measure(complexity, "active_fraction")),
              ("weight entropy / log N", _measure(complexity, "weight_entropy_norm"))]
    if llc is not None and len(llc):
        wide = _llc_by_step(llc)
        panels.append(("λ̂ (healthy estimates)", wide[wide.healthy == 1].rename(columns={"llc": "value"})))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=[title for title, _ in panels])
    colours = ("#7f7f7f", "#19d3f3", "#ff6692", "#00cc96", "#ffa15a", "#636efa")
    for i, ((title, rows), colour) in enumerate(zip(panels, colours, strict=False), start=1):
        fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name=title, line_color=colour, showlegend=False), i, 1)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)  # flat, and seen to be flat against zero
    fig.update_xaxes(title="step", row=len(panels), col=1)
    _style(fig, "Complexity measures: the parameter count stays flat while the others move", height=170 * len(panels) + 80)
    last = int(complexity.step.max()) if len(complexity) else 0
    return add_phase_bands(fig, phases, last, rows=len(panels))


def llc_trace(estimate) -> go.Figure:
    """The mean minibatch loss of every SGLD step, one line per chain, for one
    `probes.llc.LLCEstimate`; the burn-in (left out of λ̂) is shaded and the checkpoint's own
    loss is the dashed line. A healthy trace rises from it and then stays flat."""
    trace = estimate.trace
    fig = go.Figure()
    for chain in range(trace.shape[0]):
        fig.add_trace(go.Scatter(y=trace[chain].tolist(), name=f"chain {chain}: λ̂ {estimate.per_chain[chain]:.3g}",
                                 mode="lines", line_width=1))
    fig.add_hline(y=estimate.init_loss, line_dash="dash", annotation_text="L_n(w*)")
    if estimate.burnin:
        fig.add_vrect(x0=0, x1=estimate.burnin, fillcolor="rgba(127, 127, 127, 0.15)", line_width=0, layer="below",
                      annotation_text="burn-in", annotation_position="top left")
    fig.update_xaxes(title="SGLD step")
    fig.update_yaxes(title="minibatch loss")
    verdict = "healthy" if estimate.healthy else "NOT healthy: " + "; ".join(estimate.problems)
    return _style(fig, f"SGLD loss trace (λ̂ = {estimate.mean:.3g} ± {estimate.std:.2g}; {verdict})")
