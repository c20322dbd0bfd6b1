"""Probing a sweep: every member probed (cached as for one run), one tidy table for the sweep.

``<sweep>/sweep.csv`` has one row per member: its name and status, its axis values and seeds,
its phase steps (`probes.phases`: memorization, circuit_formation, cleanup, grokked), the first
steps at which train and test accuracy pass 99% (``fit_step``, ``gen_step``) and test accuracy
passes 95% (``gen95_step``, Grokfast's measure), the final train and
test loss and accuracy, its key frequencies (space-separated) and how many, the final total sum of
squared weights (``weight_norm``), the trainable parameter count, its outcome class (`probes.outcome`: comprehension, grokking, memorisation,
confusion), and the forecast made at its fit step from training alone (`workbench.forecasting`:
``forecast_grok_step``, ``forecast_p``), to read beside the measured ``gen_step``; the widths
``d_model`` and ``d_mlp`` of every member (also where a named case sets them); and at its last
checkpoint the effective parameters of a least-squares readout on its final features
(``eff_params_train``, ``eff_params_test``, `probes.effective`) and λ̂ (``llc``, when the sweep's
probes include ``llc``, which a sweep measures at each member's last checkpoint only; empty otherwise). ``<sweep>/outcomes.json`` writes the criteria beside it, as ``phases.json`` does for
one run. Members are probed in ``workers`` processes, one member at a time per process: the
per-member cost is that of probing it alone and the peak memory does not grow with the sweep.

Example:
    >>> from pathlib import Path
    >>> from workbench.sweeps import open_sweep, run_sweep
    >>> _ = Path("wd.toml").write_text('base = "smoke"\\n[set]\\nepochs = 50\\n[axes]\\nweight_decay = [0.5, 1.0]\\n')
    >>> sweep = run_sweep("wd.toml", probe=False, progress=False)
    >>> table = probe_sweep(open_sweep("wd"), progress=False)
    >>> table.pivot_table(index="status", columns="weight_decay", values="outcome", aggfunc="first").shape
    (1, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from probes import outcome as outcome_rules
from probes.phases import CRITERIA as PHASE_CRITERIA
from workbench import store
from workbench.forecasting import forecast
from workbench.model import initial_shapes, trainable_names
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.pool import run_jobs
from workbench.probing import probe
from workbench.store import CRITERIA_FILE, TABLE
from workbench.sweeps.manifest import Sweep
from workbench.training import COMPLETE, STOPPED, status_kind

# enough for phases, key frequencies and the weight norm; a definition's `probes` adds more
DEFAULT_PROBES = ("fourier", "progress", "weights", "effective")
PHASE_NAMES = tuple(PHASE_CRITERIA)
WIDTH_FIELDS = ("d_model", "d_mlp")


def member_row(path: str, probes: Sequence[str] | None) -> dict[str, Any]:
    """One member's row: probe it (cached) and reduce the results to scalars (a `workbench.pool`
    job: the pool sets the worker's threads)."""
    run = store.Run(Path(path))
    probes = list(probes) if probes else None
    # the LLC (seconds per checkpoint) is measured at the member's last checkpoint only: the
    # sweep's figures read one lambda-hat per member
    llc_last = probes is not None and LAST_ONLY in probes
    results = probe(run, probes=[p for p in probes if p != LAST_ONLY] if llc_last else probes, progress=False, workers=1)
    if llc_last:
        results.tables[LAST_ONLY] = probe(run, probes=[LAST_ONLY], steps="last", progress=False, workers=1).tables[LAST_ONLY]
    metrics = run.metrics
    last = run.last_metrics or {}
    weights = results.tables.get("weights")
    norm = None
    if weights is not None and len(weights):
        total = weights[weights.param == "total"].sort_values("step")
        norm = float(total.value.iloc[-1]) if len(total) else None
    keys = list(results.key_frequencies.get("key_freqs", []))
    row: dict[str, Any] = {f"{p}_step": results.phases.steps.get(p) for p in PHASE_NAMES}
    row.update(outcome_rules.outcome(metrics))
    reached = metrics[metrics.test_acc >= 0.95]  # Grokfast's measure: steps to 95% validation accuracy
    row["gen95_step"] = int(reached.step.iloc[0]) if len(reached) else None
    row.update({"final_train_loss": last.get("train_loss"), "final_test_loss": last.get("test_loss"),
                "final_train_acc": last.get("train_acc"), "final_test_acc": last.get("test_acc"),
                "key_freqs": " ".join(map(str, keys)), "key_rule": results.key_frequencies.get("rule"),
                "n_key_freqs": len(keys), "weight_norm": norm,
                "n_params": sum(math.prod(s) for n, s in initial_shapes(run.config).items()
                                if n in trainable_names(run.config))})
    row.update(_forecast_at_fit(run, row.get("fit_step")))
    row.update(_final_measures(results.tables))
    return row


LAST_ONLY = "llc"  # a probe a sweep measures at each member's last checkpoint only
FINAL_MEASURES = {"effective": ("eff_params_train", "eff_params_test"), "llc": ("llc",)}


def _final_measures(tables) -> dict[str, float | None]:
    """The complexity measures at the member's last probed checkpoint: the readout's effective
    parameters (`probes.effective`) and λ̂ (`probes.llc`, when the sweep probes it), None where
    the probe did not run."""
    out: dict[str, float | None] = {}
    for probe_name, measures in FINAL_MEASURES.items():
        table = tables.get(probe_name)
        for measure in measures:
            rows = table[table.measure == measure].dropna(subset=["value"]) if table is not None else None
            out[measure] = float(rows.sort_values("step").value.iloc[-1]) if rows is not None and len(rows) else None
    return out


def _forecast_at_fit(run: store.Run, fit_step: int | None) -> dict[str, Any]:
    """The forecast made at the end of memorisation (`workbench.forecasting`), beside the measured gen_step."""
    steps = run.steps
    if fit_step is None or len(steps) < 2 or not steps[0] <= fit_step <= steps[-1]:
        return {"forecast_grok_step": None, "forecast_p": None}
    made = forecast(run, fit_step)
    return {"forecast_grok_step": made.grok_step, "forecast_p": made.p_generalise}


def probe_sweep(sweep: Sweep, probes: Sequence[str] | None = None, workers: int = 1,
                progress: bool | Monitor = True):
    """Probe every complete member and write the sweep's table (returned as a DataFrame) and
    criteria. Failed and unfinished members get a row with their status and no measures; a
    member whose probing fails gets its reason in a ``probe_error`` column, and the other rows
    are kept. ``workers``: processes (`workbench.pool`); ``progress``: a bar and a note per member."""
    import pandas as pd

    probes = list(probes or sweep.definition.probes or DEFAULT_PROBES)
    definition = sweep.definition
    members = sweep.members
    todo = [m for m in members if m["status"] == COMPLETE]
    rows: dict[str, dict[str, Any]] = {}
    monitor = resolve_monitor(progress)
    jobs = [(str(sweep.path / m["name"]), probes) for m in todo]
    with monitor.bar(len(jobs), f"probe {sweep.name}", unit="member") as bar, \
            run_jobs(member_row, jobs, workers) as results:
        for done in results:
            name = todo[done.index]["name"]
            # a member that cannot be probed keeps its row, with the reason: the others' rows are kept
            rows[name] = done.value if done.ok else {"probe_error": done.error}
            monitor.note(f"  probed {sweep.name}/{name}: {done.value['outcome'] if done.ok else done.error}")
            bar.advance(1)
    table = []
    for m in members:
        cfg = store.Run(sweep.path / m["name"]).config
        # a member the forecast stopped says so ("stopped: forecast"); the others by their status's first word
        status = m["status"].split(" (")[0] if status_kind(m["status"]) == STOPPED else status_kind(m["status"])
        base = {"member": m["name"], "status": status, **m["values"],
                "model_seed": cfg.model_seed, "split_seed": cfg.split_seed}
        # the widths, also where a named case sets them: the model-wise figures read them
        base.update({w: getattr(cfg, w) for w in WIDTH_FIELDS if w not in base})
        table.append({**base, **rows.get(m["name"], {})})
    frame = pd.DataFrame(table)
    store.write_table(sweep.path / TABLE, frame)
    store.write_json(sweep.path / CRITERIA_FILE, {
        "outcome": outcome_rules.CRITERIA, "phases": dict(PHASE_CRITERIA), "probes": probes,
        "axes": definition.axis_names})
    return frame


def phase_table(frame, rows: str, cols: str):
    """The phase diagram as text: the most common outcome class per (rows, cols) cell, with how
    many seeds agree when there are several (e.g. ``grokking 3/3``)."""
    def cell(series) -> str:
        counts = series.value_counts()
        top = counts.index[0]
        return top if len(series) == 1 else f"{top} {counts.iloc[0]}/{len(series)}"

    # a member that did not finish (failed, pending) shows its status in brackets
    outcome = frame["outcome"] if "outcome" in frame else frame["status"].map(lambda _: None)
    labelled = frame.assign(cell=outcome.where(outcome.notna(), frame["status"].map(lambda s: f"({s})")))
    return labelled.pivot_table(index=rows, columns=cols, values="cell", aggfunc=cell)
