"""Double descent and its complexity axes: pure functions of tidy tables -> plotly Figure.

    rff_curves(table)                     random-feature least squares (`workbench.random_features`):
                                          train and test loss and error against N, the
                                          interpolation threshold N = n marked (Belkin et al. 2019, Fig. 2)
    rff_effective_parameters(table)       the same test losses against N and against Curth et
                                          al. 2023's p_hat on the test inputs, N < n and N >= n
                                          in two colours: two descents on one axis, one U on the other?
    complexity_axes(table)                a sweep's final test loss against the parameter count,
                                          the readout's p_hat on test inputs (`probes.effective`)
                                          and the LLC (`probes.llc`), where measured
    outcomes_by_width(table, width)       the model-wise curve (final test loss against width)
                                          over each width's outcome class and phase steps: the
                                          model-wise peak and the epoch-wise grokking delay in one picture
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.sweep import CLASS_COLOURS, _style, final_loss_lines

REGIME_COLOURS = {"under": "#636efa", "over": "#ef553b"}  # N < n, N >= n


def _threshold(fig: go.Figure, n: int, cols: int = 1) -> None:
    for col in range(1, cols + 1):
        fig.add_vline(x=n, line=dict(color="#888", dash="dash"), row=1, col=col)


def rff_curves(table) -> go.Figure:
    """Losses (left) and classification errors (right) against n_features, log axes; the dashed
    line is N = n."""
    n = int(table.n_train.iloc[0])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("squared loss", "classification error"))
    for column, colour, col in (("test_loss", "#ef553b", 1), ("train_loss", "#636efa", 1),
                                ("test_error", "#ef553b", 2), ("train_error", "#636efa", 2)):
        fig.add_trace(go.Scatter(x=table.n_features, y=table[column], mode="lines+markers",
                                 name=column.replace("_", " "), line=dict(color=colour, dash="solid" if "test" in column else "dot")),
                      1, col)
    _threshold(fig, n, 2)
    fig.update_xaxes(title="random features N", type="log")
    # past N = n the train loss is zero to rounding (1e-28): the axis stops two decades below the
    # lowest test loss so that the test curve keeps its shape; the interpolating points sit on the floor
    low = float(table.test_loss.min())
    fig.update_yaxes(type="log", range=[math.log10(low) - 2, math.log10(float(table.test_loss.max())) + 0.2],
                     row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    return _style(fig, f"Random-feature least squares: double descent at N = n = {n} ({table.dataset.iloc[0]})")


def rff_effective_parameters(table) -> go.Figure:
    """Test loss against N (left) and against p_hat on the test inputs (right); under- (N < n)
    and over-parameterised (N >= n) points coloured apart."""
    n = int(table.n_train.iloc[0])
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                        subplot_titles=("against the number of features N", "against effective parameters p̂(test)"))
    for regime, rows in (("under", table[table.n_features < n]), ("over", table[table.n_features >= n])):
        label = "N < n" if regime == "under" else "N ≥ n"
        for col, x in ((1, "n_features"), (2, "eff_params_test")):
            fig.add_trace(go.Scatter(x=rows[x], y=rows.test_loss, mode="lines+markers", name=label,
                                     line=dict(color=REGIME_COLOURS[regime]), showlegend=col == 1), 1, col)
    fig.add_vline(x=n, line=dict(color="#888", dash="dash"), row=1, col=1)
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title="test loss", row=1, col=1)
    fig.update_yaxes(showticklabels=True, row=1, col=2)
    return _style(fig, "The U-turn (Curth et al. 2023): test loss against raw and effective parameters")


COMPLEXITY_AXES = (("n_params", "parameters"), ("eff_params_test", "readout p̂(test)"), ("llc", "LLC λ̂"))


def complexity_axes(table) -> go.Figure:
    """Final test loss of each member against each complexity axis its table has (`COMPLEXITY_AXES`;
    an axis with no values, e.g. the LLC when it was not measured, is left out)."""
    axes = [(c, label) for c, label in COMPLEXITY_AXES if c in table and table[c].notna().any()]
    fig = make_subplots(rows=1, cols=max(1, len(axes)), shared_yaxes=True,
                        subplot_titles=[f"against {label}" for _, label in axes] or None)
    colours = [CLASS_COLOURS.get(o, "#888") for o in table.get("outcome", ["not trained"] * len(table))]
    for col, (column, label) in enumerate(axes, start=1):
        fig.add_trace(go.Scatter(x=table[column], y=table.final_test_loss, mode="markers", text=table.member,
                                 marker=dict(color=colours, size=9), showlegend=False), 1, col)
        fig.update_xaxes(title=label, type="log" if column != "llc" else "linear", row=1, col=col)
    fig.update_yaxes(type="log")  # every panel: shared axes share the range, not the type
    fig.update_yaxes(title="final test loss", row=1, col=1)
    return _style(fig, "Final test loss against three measures of complexity (colour: outcome class)")


def outcomes_by_width(table, width: str, by: str | None = None) -> go.Figure:
    """Top: final train and test loss against ``width`` (median over seeds; one pair of lines
    per value of ``by``, e.g. label_noise, dashed from the second on). Bottom: each member's fit
    and generalisation steps (first 99% train and test accuracy) at its width, coloured by
    outcome class (open symbols for the second value of ``by`` on); a member that never
    generalises shows only its fit step, one that never fits nothing."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.55, 0.45], vertical_spacing=0.06)
    parts = list(table.groupby(by)) if by else [(None, table)]
    for i, (value, rows) in enumerate(parts):
        suffix = f" ({by} {value:g})" if by else ""
        final_loss_lines(fig, rows, width, suffix, dashed=i > 0, row=1, col=1)
        for outcome, members in rows.groupby("outcome") if "outcome" in rows else ():
            colour = CLASS_COLOURS.get(outcome, "#888")
            fit = members.dropna(subset=["fit_step"])
            if len(fit):
                fig.add_trace(go.Scatter(x=fit[width], y=fit.fit_step, mode="markers", name=f"{outcome}: fit step{suffix}",
                                         marker=dict(color=colour, symbol="circle" if i == 0 else "circle-open", size=9)),
                              2, 1)
            gen = members.dropna(subset=["gen_step"])
            if len(gen):
                fig.add_trace(go.Scatter(x=gen[width], y=gen.gen_step, mode="markers",
                                         name=f"{outcome}: generalisation step{suffix}",
                                         marker=dict(color=colour, symbol="star" if i == 0 else "star-open", size=12)), 2, 1)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title=width, row=2, col=1)
    fig.update_yaxes(title="final loss", type="log", row=1, col=1)
    steps = table[["fit_step", "gen_step"]].stack() if {"fit_step", "gen_step"} <= set(table) else []
    fig.update_yaxes(title="step (99% accuracy)", type="log" if len(steps) and min(steps) > 0 else "linear", row=2, col=1)
    return _style(fig, f"Model-wise double descent and grokking over {width}", height=620)

