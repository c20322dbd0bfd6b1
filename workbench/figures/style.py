"""What every figure shares: phase bands and colours, layer selection, the house style."""

from __future__ import annotations

import plotly.graph_objects as go

from probes.phases import Phases

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
