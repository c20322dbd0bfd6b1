"""Probing a sweep: every member probed (cached as for one run), one tidy table for the sweep.

``<sweep>/sweep.csv`` has one row per member: its name and status, its axis values and seeds,
its phase steps (`probes.phases`: memorization, circuit_formation, cleanup, grokked), the first
steps at which train and test accuracy pass 99% (``fit_step``, ``gen_step``) and test accuracy
passes 95% (``gen95_step``, Grokfast's measure), the final train and
test loss and accuracy, its key frequencies (space-separated) and how many, the final total sum of
squared weights (``weight_norm``), the trainable parameter count, and its outcome class (`probes.outcome`: comprehension, grokking, memorisation,
confusion). ``<sweep>/outcomes.json`` writes the criteria beside it, as ``phases.json`` does for
one run. Members are probed in ``workers`` processes, one member at a time per process: the
per-member cost is that of probing it alone and the peak memory does not grow with the sweep.

Example:
    >>> table = probe_sweep(open_sweep("frac-wd"))
    >>> table.pivot_table(index="frac_train", columns="weight_decay", values="outcome", aggfunc="first")
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from probes import outcome as outcome_rules
from probes.phases import CRITERIA as PHASE_CRITERIA
from workbench import files, store
from workbench.sweep import COMPLETE, CRITERIA_FILE, TABLE, Sweep

# enough for phases, key frequencies and the weight norm; a definition's `probes` adds more
DEFAULT_PROBES = ("fourier", "progress", "weights")
PHASES = tuple(PHASE_CRITERIA)


def member_row(path: str, probes: Sequence[str] | None, threads: int | None = None) -> dict[str, Any]:
    """One member's row: probe it (cached) and reduce the results to scalars."""
    import torch

    from workbench.model import initial_shapes, trainable_names
    from workbench.runner import probe

    if threads:
        torch.set_num_threads(threads)
    run = store.Run(Path(path))
    results = probe(run, probes=list(probes) if probes else None, progress=False, workers=1)
    metrics = run.metrics
    last = run.last_metrics or {}
    weights = results.tables.get("weights")
    norm = None
    if weights is not None and len(weights):
        total = weights[weights.param == "total"].sort_values("step")
        norm = float(total.value.iloc[-1]) if len(total) else None
    keys = list(results.key_frequencies.get("key_freqs", []))
    row: dict[str, Any] = {f"{p}_step": results.phases.steps.get(p) for p in PHASES}
    row.update(outcome_rules.outcome(metrics))
    reached = metrics[metrics.test_acc >= 0.95]  # Grokfast's measure: steps to 95% validation accuracy
    row["gen95_step"] = int(reached.step.iloc[0]) if len(reached) else None
    row.update({"final_train_loss": last.get("train_loss"), "final_test_loss": last.get("test_loss"),
                "final_train_acc": last.get("train_acc"), "final_test_acc": last.get("test_acc"),
                "key_freqs": " ".join(map(str, keys)), "n_key_freqs": len(keys), "weight_norm": norm,
                "n_params": sum(math.prod(s) for n, s in initial_shapes(run.config).items()
                                if n in trainable_names(run.config))})
    return row


def probe_sweep(sweep: Sweep, probes: Sequence[str] | None = None, workers: int = 1, progress: bool = True):
    """Probe every complete member and write the sweep's table (returned as a DataFrame) and
    criteria. Failed and unfinished members get a row with their status and no measures."""
    import pandas as pd

    probes = list(probes or sweep.definition.probes or DEFAULT_PROBES)
    definition = sweep.definition
    members = sweep.members
    todo = [m for m in members if m["status"] == COMPLETE]
    rows: dict[str, dict[str, Any]] = {}
    if workers > 1 and len(todo) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // workers)
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(member_row, str(sweep.path / m["name"]), probes, threads): m["name"] for m in todo}
            for fut in cf.as_completed(futures):
                rows[futures[fut]] = fut.result()
                if progress:
                    print(f"  probed {sweep.name}/{futures[fut]}: {rows[futures[fut]]['outcome']}", flush=True)
    else:
        for m in todo:
            rows[m["name"]] = member_row(str(sweep.path / m["name"]), probes)
            if progress:
                print(f"  probed {sweep.name}/{m['name']}: {rows[m['name']]['outcome']}", flush=True)
    table = []
    for m in members:
        cfg = store.Run(sweep.path / m["name"]).config
        base = {"member": m["name"], "status": m["status"].split(":")[0], **m["values"],
                "model_seed": cfg.model_seed, "split_seed": cfg.split_seed}
        table.append({**base, **rows.get(m["name"], {})})
    frame = pd.DataFrame(table)
    store.write_table(sweep.path / TABLE, frame)
    files.write_json(sweep.path / CRITERIA_FILE, {
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
