"""Plotly figures of a sweep: pure functions of its tidy table (`workbench.sweeps.probing`) and
of its members' metrics -> plotly Figure. `workbench.sweep_report` writes them.

    phase_diagram(table, x, y)               outcome class per cell of two axes (colour), the
                                             grok step as text; seeds pooled with their spread
    steps_to_grok(table, axis)               steps to 99% test accuracy against one axis, every
                                             seed a dot, the median a line (Power et al. 2022, Fig. 1)
    key_frequencies_across_seeds(table)      how many members use each key frequency, and how
                                             many key frequencies each member has (universality)
    curves_overlaid(metrics, column)         one metrics column (test loss) of several members
                                             on one step axis
    test_loss_against(table, axis)           final test loss against one axis (model-wise double
                                             descent against width)
    loss_over_epochs(metrics, widths)        test loss against epoch, a line per width
                                             (epoch-wise double descent)
    loss_against_size_and_norm(table)        final test loss against parameter count beside
                                             test loss against the final weight norm
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes.outcome import CLASSES

CLASS_COLOURS = {"comprehension": "#2ca02c", "grokking": "#1f77b4", "memorisation": "#ff7f0e",
                 "confusion": "#d62728", "not trained": "#bbbbbb"}


def _style(fig: go.Figure, title: str, height: int = 450) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", height=height, margin=dict(l=60, r=30, t=60, b=50))
    return fig


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def phase_diagram(table, x: str, y: str) -> go.Figure:
    """One cell per (x, y): coloured by the members' most common outcome class; the text gives
    that class's count over the cell's members (seeds, and the values of any other axis, pooled)
    and the median grok step (gen_step) with its min–max."""
    xs = sorted(table[x].unique())
    ys = sorted(table[y].unique())
    index = {c: i for i, c in enumerate((*CLASSES, "not trained"))}
    z, text = [], []
    for yv in ys:
        zr, tr = [], []
        for xv in xs:
            cell = table[(table[x] == xv) & (table[y] == yv)]
            classes = (cell.outcome if "outcome" in cell else cell.status.map(lambda _: None)).fillna("not trained")
            counts = classes.where(classes.isin(list(index)), "not trained").value_counts()
            top = counts.index[0] if len(counts) else "not trained"
            zr.append(index[top])
            grok = cell.gen_step.dropna() if "gen_step" in cell else []
            line = top if len(cell) == 1 else f"{top} {counts.iloc[0]}/{len(cell)}"
            if len(grok):
                spread = "" if len(grok) == 1 else f" ({int(grok.min())}–{int(grok.max())})"
                line += f"<br>t={int(grok.median())}{spread}"
            tr.append(line)
        z.append(zr)
        text.append(tr)
    n = len(index)
    scale = []
    for name, i in index.items():  # a discrete colour scale: one band per class
        scale += [(i / n, CLASS_COLOURS[name]), ((i + 1) / n, CLASS_COLOURS[name])]
    fig = go.Figure(go.Heatmap(z=z, x=[_label(v) for v in xs], y=[_label(v) for v in ys], text=text,
                               texttemplate="%{text}", colorscale=scale, zmin=0, zmax=n, showscale=False,
                               hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>%{{text}}<extra></extra>"))
    for name in (*CLASSES, "not trained"):  # a legend for the classes
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(color=CLASS_COLOURS[name], size=12),
                                 name=name, showlegend=True))
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(title=y, type="category")
    return _style(fig, f"Phase diagram over {x} × {y} (t: steps to 99% test accuracy)")


def steps_to_grok(table, axis: str, by: str | None = None) -> go.Figure:
    """Steps to 99% test accuracy (gen_step) against ``axis``: a dot per member, the median over
    seeds as a line with the seeds' min–max as error bars; members that never generalise are marked
    at the top as 'never'. ``by``: one median line per value of that axis (Power et al.'s trend at
    each weight decay), instead of one over every member. An axis spanning a decade or more (weight
    decay 0.1-3) is drawn on a log scale."""
    fig = go.Figure()
    if "gen_step" not in table:  # no member finished: nothing to draw yet
        table = table.assign(gen_step=float("nan"))
    done = table.dropna(subset=["gen_step"])
    fig.add_trace(go.Scatter(x=done[axis], y=done.gen_step, mode="markers", name="a member (seed)",
                             marker=dict(color="#1f77b4", size=8, opacity=0.35)))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    lines = [(None, done)] if by is None else [(value, done[done[by] == value]) for value in sorted(done[by].unique())]
    for i, (value, part) in enumerate(lines):
        stats = part.groupby(axis).gen_step.agg(["median", "min", "max"]).reset_index()
        name = "median over seeds" if value is None else f"{by} {_label(value)}: median over seeds"
        fig.add_trace(go.Scatter(
            x=stats[axis], y=stats["median"], mode="lines+markers", name=name, line=dict(color=palette[i % len(palette)]),
            error_y=dict(type="data", symmetric=False, array=stats["max"] - stats["median"],
                         arrayminus=stats["median"] - stats["min"], thickness=1)))
    never = table[table.gen_step.isna()]
    if len(never):
        top = float(done.gen_step.max()) * 1.15 if len(done) else 1.0
        fig.add_trace(go.Scatter(x=never[axis], y=[top] * len(never), mode="markers", name="never reaches 99%",
                                 marker=dict(symbol="x", color="#d62728", size=9)))
    values = pd.to_numeric(table[axis], errors="coerce")  # a named case's axis holds strings: no log scale
    wide = bool(len(values) and values.notna().all() and (values > 0).all()
                and values.max() >= 10 * values.min())  # e.g. weight decay 0.1-3
    fig.update_xaxes(title=axis + (" (log scale)" if wide else ""), type="log" if wide else None)
    fig.update_yaxes(title="steps to 99% test accuracy", rangemode="tozero")
    return _style(fig, f"Steps to generalise against {axis}")


def key_frequencies_across_seeds(table) -> go.Figure:
    """Left: how many members have each key frequency. Right: how many key frequencies each
    member has. Chughtai et al. 2023: the set differs from seed to seed, the count does not much."""
    counts: dict[int, int] = {}
    sizes = []
    for keys in table.get("key_freqs", []):
        freqs = [int(k) for k in str(keys).split()] if isinstance(keys, str) else []
        sizes.append(len(freqs))
        for k in freqs:
            counts[k] = counts.get(k, 0) + 1
    fig = make_subplots(rows=1, cols=2, subplot_titles=("members using each key frequency",
                                                        "key frequencies per member"))
    ks = sorted(counts)
    fig.add_trace(go.Bar(x=ks, y=[counts[k] for k in ks], marker_color="#ef553b", name="members"), 1, 1)
    fig.add_trace(go.Histogram(x=sizes, marker_color="#636efa", name="members", xbins=dict(size=1)), 1, 2)
    fig.update_xaxes(title="frequency k", row=1, col=1)
    fig.update_xaxes(title="number of key frequencies", row=1, col=2)
    fig.update_layout(showlegend=False)
    rules = sorted({str(r) for r in table.get("key_rule", []) if isinstance(r, str)})
    by = f" (by the {' / '.join(rules)} rule)" if rules else ""
    return _style(fig, f"Key frequencies across {len(sizes)} members{by}")


def curves_overlaid(metrics: dict[str, object], column: str = "test_loss", log: bool = True) -> go.Figure:
    """``metrics``: member name -> its metrics DataFrame; one line per member."""
    fig = go.Figure()
    for name, m in metrics.items():
        rows = m[["step", column]].dropna()
        fig.add_trace(go.Scatter(x=rows.step, y=rows[column], name=name, mode="lines"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title=column.replace("_", " "), type="log" if log else "linear")
    return _style(fig, f"{column.replace('_', ' ')} of {len(metrics)} members on one axis")


def test_loss_against(table, axis: str, at: dict[int, dict[str, float]] | None = None, by: str | None = None
                      ) -> go.Figure:
    """Final test loss (and train loss) against ``axis``, the median over seeds; ``at``: optional
    {epoch: {member: test loss}} drawn as extra lines (test loss at fixed epochs); ``by``: another
    axis (e.g. label_noise) drawn as one pair of lines per value, dashed from the second on."""
    fig = go.Figure()
    for i, (value, rows) in enumerate(list(table.groupby(by)) if by else [(None, table)]):
        final_loss_lines(fig, rows, axis, f" ({by} {_label(value)})" if by else "", dashed=i > 0)
    for epoch, losses in (at or {}).items():
        rows = table.assign(loss=table.member.map(losses)).dropna(subset=["loss"])
        med = rows.groupby(axis).loss.median().reset_index()
        fig.add_trace(go.Scatter(x=med[axis], y=med.loss, mode="lines+markers", name=f"test loss at epoch {epoch}",
                                 line=dict(dash="dot")))
    fig.update_xaxes(title=axis, type="log")
    fig.update_yaxes(title="loss", type="log")
    return _style(fig, f"Test loss against {axis} (model-wise double descent)")


def final_loss_lines(fig: go.Figure, rows, axis: str, suffix: str = "", dashed: bool = False, **where) -> None:
    """Add the median final test and train loss of ``rows`` against ``axis`` to ``fig`` (``where``:
    the subplot's row and col), named with ``suffix``."""
    for column, colour in (("final_test_loss", "#ef553b"), ("final_train_loss", "#636efa")):
        med = rows.groupby(axis)[column].median().reset_index()
        fig.add_trace(go.Scatter(x=med[axis], y=med[column], mode="lines+markers", name=column.replace("_", " ") + suffix,
                                 line=dict(color=colour, dash="dash" if dashed else "solid")), **where)


def loss_over_epochs(metrics: dict[str, object], labels: dict[str, str], column: str = "test_loss") -> go.Figure:
    """Test loss against epoch, one line per member, labelled by ``labels`` (e.g. its width)."""
    fig = go.Figure()
    for name, m in metrics.items():
        rows = m[["step", column]].dropna()
        fig.add_trace(go.Scatter(x=rows.step, y=rows[column], name=labels.get(name, name), mode="lines"))
    fig.update_xaxes(title="epoch", type="log")
    fig.update_yaxes(title=column.replace("_", " "), type="log")
    return _style(fig, "Test loss against epoch (epoch-wise double descent)")


def loss_against_size_and_norm(table) -> go.Figure:
    """Final test loss against the parameter count (left) and against the final total sum of
    squared weights (right): the two candidate 'complexity' axes of double descent."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("against parameter count", "against weight norm"),
                        shared_yaxes=True)
    fig.add_trace(go.Scatter(x=table.n_params, y=table.final_test_loss, mode="markers", name="members",
                             marker=dict(color="#ef553b")), 1, 1)
    fig.add_trace(go.Scatter(x=table.weight_norm, y=table.final_test_loss, mode="markers", name="members",
                             marker=dict(color="#00cc96"), showlegend=False), 1, 2)
    fig.update_xaxes(title="parameters", type="log", row=1, col=1)
    fig.update_xaxes(title="sum of squared weights", type="log", row=1, col=2)
    fig.update_yaxes(title="final test loss", type="log", row=1, col=1)
    return _style(fig, "Test loss against model size and against weight norm")
