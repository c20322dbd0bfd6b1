"""The double-descent results page: the random-feature curves and the width sweeps, as measured.

``python -m workbench double-descent --out docs/results/double-descent.md`` (``make
double-descent``) runs the random-feature experiment on the modular task and on digits, reads the
width sweeps' tables (trained and probed: ``make sweep SWEEP=model-wise``), and writes one page: the
curves in numbers, wall times, and for each curve what it shows, read by `shape`:

    double descent   the loss has an interior maximum that both ends of the curve (the smallest
                     and the largest x) lie below by at least a factor `FALL` and `MIN_CHANGE` nats
    U                the loss has an interior minimum that both ends lie above by as much
    monotone         neither (it only falls, or only rises)

Read against the raw parameter count and against each complexity measure the sweep has (the
readout's effective parameters on the test inputs; λ̂ when the LLC was probed), so that Curth et
al. 2023's claim (two descents against the count, one U against the effective parameters) is
checked on every sweep rather than asserted.

Example:
    >>> shape([1.0, 3.0, 0.5]), shape([3.0, 1.0, 4.0]), shape([3.0, 2.0, 1.0])
    ('double descent', 'U', 'monotone')
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from workbench import store
from workbench.config import RunConfig
from workbench.sweeps import Sweep

FALL = 2.0  # a peak (or a trough) counts when the loss changes by this factor on its sides...
MIN_CHANGE = 0.5  # ...and by at least this much (nats): 0.0002 -> 0.4 is no rise worth the name


def shape(losses: Sequence[float]) -> str:
    """The shape of a curve of positive losses in the order of its x (module docstring)."""
    values = [float(v) for v in losses if v == v]
    if len(values) < 3:
        return "monotone"
    top = max(range(len(values)), key=values.__getitem__)
    def rises(a: float, b: float) -> bool:  # from a up to b, by the factor and the amount
        return b >= FALL * a and b - a >= MIN_CHANGE

    if 0 < top < len(values) - 1 and rises(values[0], values[top]) and rises(values[-1], values[top]):
        return "double descent"
    low = min(range(len(values)), key=values.__getitem__)
    if 0 < low < len(values) - 1 and rises(values[low], values[0]) and rises(values[low], values[-1]):
        return "U"
    return "monotone"


def results_header(target: str, command: str) -> list[str]:
    """The provenance lines that head a results page written by ``target`` (``command``)."""
    prov = store.new_provenance(RunConfig())
    commit = (prov.get("git_commit") or "unknown")[:10] + (" (with uncommitted changes)" if prov.get("git_dirty") else "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [f"Written by `{target}` (`{command}`); do not edit by hand.", "",
            f"- measured: {prov['created']}", f"- commit: {commit}", f"- machine: {prov['platform']}, {cores} cores"]


def _markdown(frame, floats: str = "{:.4g}") -> str:
    cols = list(frame.columns)
    def cell(v):
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        return floats.format(v) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


RFF_SHOWN = ["n_features", "train_loss", "test_loss", "test_error", "eff_params_train", "eff_params_test"]
SWEEP_SHOWN = ["member", "d_model", "n_params", "final_train_acc", "final_test_acc", "final_test_loss", "outcome",
               "fit_step", "gen_step", "eff_params_test", "llc"]
AXES = (("n_params", "parameter count"), ("eff_params_test", "readout p̂(test)"), ("llc", "λ̂ (LLC)"))


def rff_section(title: str, table, wall_s: float) -> list[str]:
    n = int(table.n_train.iloc[0])
    peak = table.loc[table.test_loss.idxmax()]
    best = table.loc[table.test_error.idxmin()]
    under, over = table[table.n_features < n], table[table.n_features >= n]
    return [f"### {title}", "",
            f"n = {n}; {len(table)} values of N in {wall_s:.1f} s. Test loss peaks at N = {int(peak.n_features)} "
            f"({peak.test_loss:.4g}; test error {peak.test_error:.3f}); the lowest test error is "
            f"{best.test_error:.3f} at N = {int(best.n_features)}. Against N the test loss is a "
            f"**{shape(table.sort_values('n_features').test_loss)}**; against p̂(test) it is a "
            f"**{shape(table.sort_values('eff_params_test').test_loss)}**, with the under- (N < n, p̂ up to "
            f"{under.eff_params_test.max():.4g}) and over-parameterised branches (N ≥ n, p̂ from "
            f"{over.eff_params_test.min():.4g}) {'overlapping' if len(under) and len(over) and over.eff_params_test.min() < under.eff_params_test.max() else 'side by side'} on that axis.",
            "", _markdown(table[RFF_SHOWN]), ""]


def sweep_section(sweep: Sweep, table, group: str | None, x: str = "d_model") -> list[str]:
    runs = [store.Run(sweep.path / m) for m in table.member]
    wall = sum(r.training_wall_s for r in runs)
    out = [f"### `{sweep.name}`", "", f"{sweep.definition.description}. {len(table)} members trained in "
           f"{wall / 60:.1f} min of training time (their sessions' wall time, a group's shared among its members).", ""]
    parts = table.groupby(group) if group else [(None, table)]
    for value, rows in parts:
        rows = rows.sort_values([x, "d_mlp"])
        label = f"{group} = {value}" if group else "all members"
        verdicts = [f"against {x}: **{shape(rows.final_test_loss)}**"]
        for column, name in AXES:  # an axis that does not vary (the parameter count of a data sweep) says nothing
            if column != x and column in rows and rows[column].notna().sum() >= 3 and rows[column].nunique() > 1:
                verdicts.append(f"against {name}: **{shape(rows.sort_values(column).final_test_loss)}**")
        peak = rows.loc[rows.final_test_loss.idxmax()]
        groks = rows[rows.outcome.isin(["grokking", "comprehension"])]
        out += [f"#### {label}", "",
                f"Final test loss peaks at {x} {peak[x]:g} ({peak.final_test_loss:.4g}, train accuracy "
                f"{peak.final_train_acc:.3f}); the smallest {x} that generalises (grokking or comprehension): "
                + (f"{groks[x].min():g}" if len(groks) else "none") + ". Final test loss "
                + "; ".join(verdicts) + ".", "", _markdown(rows[[c for c in dict.fromkeys([SWEEP_SHOWN[0], x, *SWEEP_SHOWN[1:]]) if c in rows]]),
                ""]
    return out


def double_descent_page(header: list[str], rff: Sequence[tuple[str, object, float]],
                        sweeps: Sequence[tuple[Sweep, object, str | None, str]]) -> str:
    """The page: ``header`` lines (provenance), then each random-feature table (title, table,
    seconds) and each sweep (sweep, its table, the column to split it by or None, the x column)."""
    body = ["# Double descent and effective complexity", "", *header, "",
            "What the shapes mean and how they are read: `workbench.report.double_descent`; the experiment: "
            "[Double descent](../double-descent.md).", "", "## Random-feature least squares (Belkin et al. 2019)", ""]
    for title, table, wall in rff:
        body += rff_section(title, table, wall)
    body += ["## Width sweeps of the transformer", ""]
    for sweep, table, group, x in sweeps:
        body += sweep_section(sweep, table, group, x)
    return "\n".join(body) + "\n"
