"""Plotly figures: pure functions of probe tables (or of one `probes.CheckpointOnGrid`) -> plotly Figure.

Nothing here reads or writes files; `workbench.report` writes them (circuitsvis views are in
`workbench.circuitsvis_html`). Every figure that has a step axis takes ``phases`` (a
`probes.phases.Phases` or the ``phases.json`` dict) and shades the detected phases. Figures that
draw the neuron clusters take the ``threshold`` the run was probed with.

    loss_curves(metrics, phases)                         train/test loss (log) and accuracy
    progress_measures(progress, weights, fourier, phases) excluded/restricted loss, ratio,
                                                         sum of squared weights, Gini
    embedding_norms_bar(fourier, step, key_freqs)        W_E Fourier norm per frequency
    embedding_norms_heatmap(fourier)                     step x frequency
    embedding_norms_animation(fourier)                   bar chart with a slider over steps
    key_frequency_emergence(fourier, key_freqs)          norm of each key frequency over training
    neuron_grids(inp, key_freqs, threshold)              representative neurons of each cluster over (a, b)
    neuron_fraction_histogram(fourier, step, threshold)  each neuron's best explained fraction
    cluster_sizes(fourier, step)                         neurons per frequency cluster
    wl_fourier(inp, threshold)                           W_L in the Fourier basis (neurons x basis)
    logit_spectrum(inp)                                  2-D Fourier spectrum of the logits over (a, b)
    attention_grids(inp)                                 attention from "=" to a, per head, over (a, b)
    attention_over_training(attention, phases)           attention to a / b / "=" per head

    llc_curve(llc, metrics, phases)                      λ̂ with its spread over chains, beside the
                                                         train/test loss; unhealthy estimates marked
    llc_trace(estimate)                                  SGLD loss trace per chain (burn-in shaded):
                                                         what to look at when choosing llc_* settings
    complexity_panel(weights, fourier, complexity, llc, phases)
                                                         parameter count, weight norm, Gini, active
                                                         neurons, weight entropy, λ̂ on one step axis
    clock_pizza_measures(clock_pizza, phases)            gradient symmetricity and distance
                                                         irrelevance against step, beside the values
                                                         Zhong et al. 2023 report for clock and pizza

The per-block figures (neuron grids, fraction histogram, cluster sizes, W_L, attention, the W_L
Gini) show every block of a deeper model: a panel row, a bar group or a line per layer.

Example:
    >>> fig = loss_curves(run.metrics, run.phases)
    >>> fig.show()
"""

from __future__ import annotations

import itertools

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from probes.clock_pizza import MEASURES as CLOCK_PIZZA_MEASURES
from probes.fourier import (
    NEURON_FRACTION_BINS,
    basis_names,
    fourier_2d,
    fourier_basis,
    neuron_clusters,
    neuron_frequency_fractions,
)
from probes.llc import by_step as llc_by_step
from probes.phases import Phases
from probes.settings import NEURON_THRESHOLD

PHASE_COLOURS = {
    "memorization": "rgba(99, 110, 250, 0.12)",
    "circuit_formation": "rgba(0, 204, 150, 0.14)",
    "cleanup": "rgba(255, 161, 90, 0.16)",
    "grokked": "rgba(171, 99, 250, 0.10)",
}
PHASE_LABELS = {"memorization": "memorisation", "circuit_formation": "circuit formation", "cleanup": "cleanup",
                "grokked": "grokked"}


def _measure(table, measure: str):
    """The run-level rows of one measure (those with no frequency), by step."""
    rows = table[table.measure == measure]
    if "frequency" in rows:
        rows = rows[rows.frequency.isna()]
    return rows.sort_values("step")


def _layers(table) -> list:
    """The blocks a per-layer table has rows for ([None] for a table without a layer column)."""
    if "layer" not in table:
        return [None]
    return sorted(int(v) for v in table["layer"].dropna().unique())


def _in_layer(table, layer):
    """The rows of one block (all rows when ``layer`` is None)."""
    return table if layer is None else table[table["layer"] == layer]


def _layer_name(layer, layers: list) -> str:
    """" (layer l)" when the model has more than one block, else nothing."""
    return f" (layer {layer})" if len(layers) > 1 else ""


NOT_APPLICABLE = "not applicable: this task has no a ± b direction"


def _not_applicable(rows) -> bool:
    """Whether a measure's rows say "not applicable" (`probes.not_applicable`: every value NaN)."""
    return len(rows) > 0 and bool(rows.value.isna().all())


def _applies(rows, applies: bool | None) -> bool:
    """Whether a sum-direction measure applies: the caller's word (``tasks.has_sum_direction``)
    when given, else read from its rows. All-NaN rows alone are ambiguous (a measure can also be
    undefined at a step, e.g. distance irrelevance of constant logits), so callers that know the
    task should say."""
    return applies if applies is not None else not _not_applicable(rows)


def _say_not_applicable(fig: go.Figure, row: int, col: int = 1, what: str = "") -> None:
    """Write `NOT_APPLICABLE` (after ``what``, the measures it concerns) in the middle of one
    panel, where their curves would be."""
    fig.add_annotation(text=what + NOT_APPLICABLE, xref="x domain", yref="y domain", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=12, color="#7f7f7f"), row=row, col=col)


def _phase_steps(phases: Phases | dict | None) -> dict[str, int | None] | None:
    if phases is None:
        return None
    return phases.steps if isinstance(phases, Phases) else phases["steps"]


def add_phase_bands(fig: go.Figure, phases: Phases | dict | None, last_step: int, rows: int = 1, cols: int = 1) -> go.Figure:
    """Shade [start of phase, start of next phase) for every phase that happened.

    The memorisation band starts at step 0 (the phase that ends at the memorisation step); the
    grokked band runs to the last step."""
    s = _phase_steps(phases)
    if not s:
        return fig
    edges = [("memorization", 0, s.get("memorization"))]
    order = ["circuit_formation", "cleanup", "grokked"]
    starts = [(name, s.get(name)) for name in order if s.get(name) is not None]
    for i, (name, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else last_step
        edges.append((name, start, end))
    for name, start, end in edges:
        if start is None or end is None or end <= start:
            continue
        grid = rows > 1 or cols > 1
        for r in range(1, rows + 1):
            for c in range(1, cols + 1):
                label = {"annotation_text": PHASE_LABELS[name], "annotation_position": "top left",
                         "annotation_font_size": 10} if r == 1 and c == 1 else {}
                fig.add_vrect(x0=start, x1=end, fillcolor=PHASE_COLOURS[name], line_width=0, layer="below",
                              row=r if grid else None, col=c if grid else None, **label)
    return fig


def _style(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=height, width=900,
                      legend=dict(orientation="h", y=-0.15), margin=dict(l=60, r=20, t=60, b=60))
    return fig


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


OFFLINE_RENDERER = "workbench_offline"


def offline_notebook() -> None:
    """Make plotly figures shown in this notebook draw with no network, now and once saved.

    Plotly's own notebook renderer embeds plotly.js but adds a MathJax ``<script src>`` from a
    CDN to every figure. This sets the default renderer to ``plotly_mimetype`` (what JupyterLab
    draws) plus an HTML form, for saved notebooks and their HTML exports, that loads nothing (no
    MathJax: no figure here uses LaTeX). plotly.js itself is embedded once, in the output of the
    cell that calls this, so figures shown by any means afterwards (``display``, the explorer's
    widget state) find it already loaded."""
    import plotly.io as pio
    from IPython import get_ipython
    from plotly.io.base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict):
            html = pio.to_html(fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                               full_html=False, default_width="100%", default_height=525, validate=False)
            return {"text/html": html}

        def activate(self):  # plotly.js was embedded when offline_notebook() ran: never again
            pass

    renderer = OfflineNotebookRenderer(connected=False)
    pio.renderers[OFFLINE_RENDERER] = renderer
    if get_ipython() is not None:
        NotebookRenderer.activate(renderer)  # embeds plotly.js in this cell's output
    pio.renderers.default = f"plotly_mimetype+{OFFLINE_RENDERER}"
