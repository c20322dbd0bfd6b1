"""Fourier features (Nanda et al. 2023): embedding norms per frequency, key frequencies, neuron clusters, logits."""

from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from probes.fourier import (
    NEURON_FRACTION_BINS,
    basis_names,
    fourier_2d,
    fourier_basis,
    neuron_clusters,
    neuron_frequency_fractions,
)
from probes.settings import NEURON_THRESHOLD
from workbench.figures.style import _in_layer, _layers, _style, add_phase_bands


def _norm_matrix(fourier):
    rows = fourier[(fourier.measure == "embed_norm") & (fourier.frequency > 0)]
    return rows.pivot_table(index="step", columns="frequency", values="value")


def embedding_norms_bar(fourier, step: int, key_freqs=()) -> go.Figure:
    """Fourier norm of W_E per frequency at ``step``; key frequencies in a second colour."""
    rows = fourier[(fourier.measure == "embed_norm") & (fourier.step == step) & (fourier.frequency > 0)]
    colours = ["#ef553b" if f in set(key_freqs) else "#636efa" for f in rows.frequency]
    fig = go.Figure(go.Bar(x=rows.frequency, y=rows.value, marker_color=colours, name="norm"))
    fig.update_xaxes(title="frequency k")
    fig.update_yaxes(title="||W_E in cos k, sin k||")
    return _style(fig, f"Embedding Fourier norms at step {step} (red: key frequencies)")


def embedding_norms_heatmap(fourier) -> go.Figure:
    """Step x frequency heatmap of the embedding's Fourier norms."""
    mat = _norm_matrix(fourier)
    fig = go.Figure(go.Heatmap(z=mat.values.T, x=mat.index, y=mat.columns, colorscale="Viridis",
                               colorbar_title="norm"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="frequency k")
    return _style(fig, "Embedding Fourier norms over training", height=500)


def embedding_norms_animation(fourier, max_frames: int = 60) -> go.Figure:
    """Bar chart of the embedding's Fourier norms with a slider (and play button) over steps."""
    mat = _norm_matrix(fourier)
    steps = list(mat.index)
    if len(steps) > max_frames:
        idx = torch.linspace(0, len(steps) - 1, max_frames).round().long().unique().tolist()
        steps = [steps[i] for i in idx]
    frames = [go.Frame(data=[go.Bar(x=list(mat.columns), y=mat.loc[s].values)], name=str(s)) for s in steps]
    fig = go.Figure(data=[go.Bar(x=list(mat.columns), y=mat.loc[steps[0]].values, marker_color="#636efa")], frames=frames)
    fig.update_layout(
        sliders=[{"steps": [{"args": [[str(s)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
                             "label": str(s), "method": "animate"} for s in steps],
                  "currentvalue": {"prefix": "step "}}],
        updatemenus=[{"type": "buttons", "buttons": [{"label": "play", "method": "animate",
                                                      "args": [None, {"frame": {"duration": 120}}]}],
                      "x": 0, "y": 1.15}],
    )
    fig.update_yaxes(range=[0, float(mat.values.max()) * 1.05], title="norm")
    fig.update_xaxes(title="frequency k")
    return _style(fig, "Embedding Fourier norms (slider: step)", height=480)


def key_frequency_emergence(fourier, key_freqs, phases: dict | None = None) -> go.Figure:
    """Embedding norm of each key frequency over training, with the mean of the others."""
    mat = _norm_matrix(fourier)
    fig = go.Figure()
    for k in key_freqs:
        if k in mat.columns:
            fig.add_trace(go.Scatter(x=mat.index, y=mat[k], name=f"k = {k}"))
    others = [c for c in mat.columns if c not in set(key_freqs)]
    if others:
        fig.add_trace(go.Scatter(x=mat.index, y=mat[others].mean(axis=1), name="mean of the others",
                                 line=dict(color="grey", dash="dash")))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="embedding Fourier norm")
    _style(fig, "Key-frequency emergence")
    return add_phase_bands(fig, phases, int(mat.index.max()) if len(mat) else 0)


def _grid_axes(inp) -> tuple[str, str]:
    """The names of a grid's axes: the tokens, or their discrete logs (× and ÷, `probes.coordinates`)."""
    if getattr(inp, "coordinates", "token") == "log":
        return f"log_{inp.generator} a", f"log_{inp.generator} b"
    return "a", "b"


def neuron_grids(inp, key_freqs, threshold: float = NEURON_THRESHOLD, per_cluster: int = 2) -> go.Figure:
    """MLP activations at "=" over the (a, b) grid for the most-explained neurons of each cluster,
    in every block (a deeper model: each block's clusters, titled by layer)."""
    layers = list(range(len(inp.layers)))
    chosen = []  # (layer, k, neuron)
    for layer, block in enumerate(inp.layers):
        fractions = neuron_frequency_fractions(block.neuron_acts)
        clusters = neuron_clusters(fractions, threshold)
        for k in list(key_freqs) or sorted(set(clusters.tolist()) - {0}):
            members = torch.nonzero(clusters == k).flatten()
            if len(members):
                best = fractions[k - 1, members].argsort(descending=True)[:per_cluster]
                chosen += [(layer, k, int(members[i])) for i in best]
    if not chosen:  # no clusters: show the highest-variance neurons of the last block
        acts = inp.neuron_acts
        top = acts.reshape(-1, acts.shape[-1]).var(0).argsort(descending=True)[:4]
        chosen = [(layers[-1], 0, int(n)) for n in top]
    cols = min(4, len(chosen))
    nrows = (len(chosen) + cols - 1) // cols
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[
        (f"L{layer} " if len(layers) > 1 else "") + f"neuron {n}" + (f" (k = {k})" if k else "")
        for layer, k, n in chosen])
    for i, (layer, _, n) in enumerate(chosen):
        fig.add_trace(go.Heatmap(z=inp.layers[layer].neuron_acts[..., n].numpy(), coloraxis="coloraxis"),
                      i // cols + 1, i % cols + 1)
    fig.update_layout(coloraxis={"colorscale": "RdBu", "colorbar_title": "act"})
    a, b = _grid_axes(inp)
    fig.update_xaxes(title=b)
    fig.update_yaxes(title=a, autorange="reversed")
    return _style(fig, f"MLP neurons over ({a}, {b}) at step {inp.step}", height=260 * nrows + 80)


def neuron_fraction_histogram(fourier, step: int, threshold: float = NEURON_THRESHOLD) -> go.Figure:
    """Histogram of each neuron's largest single-frequency fraction of variance, with the cut-off
    (one set of bars per block in a deeper model)."""
    at = fourier[(fourier.measure == "neuron_fraction_hist") & (fourier.step == step)]
    layers = _layers(at)
    width = 1.0 / NEURON_FRACTION_BINS
    fig = go.Figure()
    for layer in layers:
        rows = _in_layer(at, layer).sort_values("bin")
        fig.add_trace(go.Bar(x=(rows["bin"].astype(float) + 0.5) * width, y=rows.value, name=f"layer {layer}",
                             showlegend=len(layers) > 1))
    fig.update_layout(barmode="group")
    fig.add_vline(x=threshold, line_dash="dash", annotation_text=f"{threshold:g}")
    fig.update_xaxes(title="fraction of variance explained by the best frequency", range=[0, 1])
    fig.update_yaxes(title="neurons")
    return _style(fig, f"How Fourier-pure are the neurons? (step {step})")


def cluster_sizes(fourier, step: int) -> go.Figure:
    """Neurons per frequency cluster, per block; the row with no frequency is the unexplained neurons."""
    import pandas as pd

    at = fourier[(fourier.measure == "cluster_size") & (fourier.step == step)]
    layers = _layers(at)
    fig = go.Figure()
    for layer in layers:
        rows = _in_layer(at, layer)
        rows = rows[rows.value > 0]
        labels = ["unexplained" if pd.isna(k) else f"k = {int(k)}" for k in rows.frequency]
        fig.add_trace(go.Bar(x=labels, y=rows.value, name=f"layer {layer}", showlegend=len(layers) > 1))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="neurons")
    return _style(fig, f"Neuron clusters at step {step}")


def wl_fourier(inp, threshold: float = NEURON_THRESHOLD) -> go.Figure:
    """|W_L F^T|: each neuron's direct logit effect in the Fourier basis; neurons sorted by cluster
    (one panel per block)."""
    layers = inp.layers
    fig = make_subplots(rows=1, cols=len(layers), shared_yaxes=True,
                        subplot_titles=[f"layer {i}" for i in range(len(layers))] if len(layers) > 1 else None)
    for i, block in enumerate(layers):
        wl = block.W_out.double() @ inp.W_U.double()  # [d_mlp, p]
        coeff = wl @ fourier_basis(inp.p).T
        order = neuron_clusters(neuron_frequency_fractions(block.neuron_acts), threshold).argsort(stable=True)
        fig.add_trace(go.Heatmap(z=coeff[order].abs().numpy(), x=basis_names(inp.p), coloraxis="coloraxis"), 1, i + 1)
    fig.update_layout(coloraxis={"colorscale": "Blues", "colorbar_title": "|coef|"})
    fig.update_xaxes(title="Fourier component of the logit axis")
    fig.update_yaxes(title="neuron (sorted by cluster)", col=1)
    return _style(fig, f"W_L = W_out W_U in the Fourier basis (step {inp.step})", height=520)


def logit_spectrum(inp) -> go.Figure:
    """Norm over c of the 2-D Fourier transform of the logits over (a, b)."""
    spec = fourier_2d(inp.logits.double()).pow(2).sum(-1).sqrt()
    names = basis_names(inp.p)
    fig = go.Figure(go.Heatmap(z=spec.numpy(), x=names, y=names, colorscale="Blues", colorbar_title="norm"))
    a, b = _grid_axes(inp)
    fig.update_xaxes(title=f"Fourier component over {b}")
    fig.update_yaxes(title=f"Fourier component over {a}", autorange="reversed")
    return _style(fig, f"2-D Fourier spectrum of the logits (step {inp.step})", height=620)
