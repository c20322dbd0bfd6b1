"""The forecast made at each checkpoint against the step it came true (`workbench.forecasting`)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.style import _style


def forecast_timeline(history, grok_step: int | None = None) -> go.Figure:
    """``history``: rows ``at_step, grok_step, low, high, p_generalise`` (`workbench.forecasting.forecast_history`).
    Top: the forecast grok step with its 80% interval against the step it was made at, the measured
    grok step as a line (where the run grokked) and y = x (a forecast cannot lie in the past).
    Bottom: p_generalise."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=(0.7, 0.3),
                        subplot_titles=("forecast grok step (80% interval)", "p_generalise"))
    h = history.dropna(subset=["grok_step"])
    fig.add_trace(go.Scatter(x=list(h.at_step) + list(h.at_step[::-1]), y=list(h.high) + list(h.low[::-1]),
                             fill="toself", fillcolor="rgba(99,110,250,0.2)", line_width=0, name="80% interval",
                             hoverinfo="skip"), 1, 1)
    fig.add_trace(go.Scatter(x=h.at_step, y=h.grok_step, mode="lines+markers", name="forecast", line_color="#636efa"), 1, 1)
    if len(history):
        span = [float(history.at_step.min()), float(history.at_step.max())]
        fig.add_trace(go.Scatter(x=span, y=span, name="y = x (now)", line=dict(color="#999", dash="dot")), 1, 1)
    if grok_step is not None:
        fig.add_hline(y=grok_step, line_color="#ef553b", annotation_text=f"measured grok step {grok_step:,}", row=1, col=1)
    fig.add_trace(go.Scatter(x=history.at_step, y=history.p_generalise, name="p_generalise", line_color="#00cc96"), 2, 1)
    fig.update_yaxes(range=[0, 1.02], row=2, col=1)
    fig.update_xaxes(title="step the forecast was made at", row=2, col=1)
    return _style(fig, "Forecast from training alone")
