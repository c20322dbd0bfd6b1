"""Attention patterns over the grid and over training."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.figures.fourier import _grid_axes
from workbench.figures.style import _in_layer, _layers, _style, add_phase_bands


def attention_grids(inp) -> go.Figure:
    """Attention from "=" to a for each head over the (a, b) grid: one row per block."""
    layers = inp.layers
    H = inp.attention.shape[2]
    many = len(layers) > 1
    fig = make_subplots(rows=len(layers), cols=H, subplot_titles=[
        (f"layer {layer} " if many else "") + f"head {h}" for layer in range(len(layers)) for h in range(H)])
    for layer, block in enumerate(layers):
        for h in range(H):
            fig.add_trace(go.Heatmap(z=block.attention[:, :, h, 0].numpy(), coloraxis="coloraxis"), layer + 1, h + 1)
    fig.update_layout(coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar_title": "attn"})
    a, b = _grid_axes(inp)
    fig.update_xaxes(title=b)
    fig.update_yaxes(title=a, autorange="reversed")
    return _style(fig, f'Attention from "=" to a over ({a}, {b}) (step {inp.step})', height=300 * len(layers) + 40)


def attention_over_training(attention, phases: dict | None = None) -> go.Figure:
    """Mean attention from "=" to a, b and "=" per head against step: one row per block."""
    heads = sorted(attention["head"].unique())
    layers = _layers(attention)
    fig = make_subplots(rows=len(layers), cols=len(heads), shared_yaxes=True, subplot_titles=[
        (f"layer {layer} " if len(layers) > 1 else "") + f"head {h}" for layer in layers for h in heads])
    colours = {"to_a": "#636efa", "to_b": "#ef553b", "to_eq": "#00cc96"}
    for r, layer in enumerate(layers):
        block = _in_layer(attention, layer)
        for i, h in enumerate(heads):
            for measure, colour in colours.items():
                rows = block[(block["head"] == h) & (block.measure == measure)].sort_values("step")
                fig.add_trace(go.Scatter(x=rows.step, y=rows.value, name=measure.replace("to_eq", "to =").replace("_", " "),
                                         line_color=colour, showlegend=i == 0 and r == 0), r + 1, i + 1)
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(title="step")
    _style(fig, 'Attention from "=" over training', height=300 * len(layers) + 60)
    return add_phase_bands(fig, phases, int(attention.step.max()) if len(attention) else 0, rows=len(layers),
                           cols=len(heads))
