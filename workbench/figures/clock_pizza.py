"""Clock or pizza (Zhong et al. 2023): gradient symmetricity and distance irrelevance over training."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes.clock_pizza import MEASURES as CLOCK_PIZZA_MEASURES
from probes.phases import Phases
from workbench.figures.style import _applies, _measure, _say_not_applicable, _style, add_phase_bands

# Zhong et al. 2023 (Sec. 4): the measures of their pizza (Model A, constant attention) and clock
# (Model B, trained attention), and the distance irrelevance that separates the two
PAPER_CLOCK_PIZZA = {"gradient_symmetricity": {"pizza": 0.9937, "clock": 0.3336},
                     "distance_irrelevance": {"pizza": 0.17, "clock": 0.85}}

DISTANCE_IRRELEVANCE_SPLIT = 0.4  # their bands: [0, 0.4] pizza-like, [0.4, 1] clock-like


def clock_pizza_measures(clock_pizza, phases: Phases | dict | None = None, attn_rate: float | None = None,
                         applies: bool | None = None) -> go.Figure:
    """Gradient symmetricity and distance irrelevance (`probes.clock_pizza`) against step, with the
    values Zhong et al. 2023 report for their pizza and clock as dotted lines (a panel whose measure
    does not apply to the task says so: ``applies``, `tasks.has_sum_direction`, decides; None reads
    it from all-NaN rows). Gradient symmetricity applies to every task."""
    names = [m for m in CLOCK_PIZZA_MEASURES if m in set(clock_pizza.measure)]
    fig = make_subplots(rows=len(names) or 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[m.replace("_", " ") for m in names])
    for i, name in enumerate(names, start=1):
        rows = _measure(clock_pizza, name)
        fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name=name.replace("_", " "), line_color="#636efa",
                                 showlegend=False), i, 1)
        if name != "gradient_symmetricity" and not _applies(rows, applies):
            _say_not_applicable(fig, i)
        for algorithm, value in PAPER_CLOCK_PIZZA[name].items():
            fig.add_hline(y=value, line_dash="dot", line_color="#ef553b" if algorithm == "pizza" else "#00cc96",
                          annotation_text=f"paper's {algorithm} {value:g}", annotation_position="top left", layer="below",
                          row=i, col=1)
        fig.update_yaxes(range=[-0.05 if name == "distance_irrelevance" else -1.05, 1.05], row=i, col=1)
    fig.update_xaxes(title="step", row=len(names) or 1, col=1)
    rate = "" if attn_rate is None else f" (attention rate {attn_rate:g})"
    _style(fig, f"Clock or pizza{rate}: gradient symmetricity and distance irrelevance", height=300 * max(len(names), 1) + 80)
    last = int(clock_pizza.step.max()) if len(clock_pizza) else 0
    return add_phase_bands(fig, phases, last, rows=len(names) or 1)
