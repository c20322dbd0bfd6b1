"""The llc section: the local learning coefficient's cost per checkpoint, in one and two processes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

import workbench
from probes import ProbeSettings, llc
from probes.llc import by_step
from workbench import store
from workbench.bench.measure import table
from workbench.config import load_config
from workbench.model import initial_weights
from workbench.probing import GridEvaluator, llc_line
from workbench.training import start_run


def _llc_seconds(preset: str, rounds: int = 3) -> tuple[float, int]:
    """Median seconds of one default λ̂ estimate at ``preset``'s sizes, one thread (at the initial
    weights: the cost does not depend on training); and the training-set size."""

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(preset, {"ckpt_every": 1, "epochs": 1})
        run = start_run(Path(tmp) / preset, cfg)
        store.write_checkpoint(run, 0, initial_weights(cfg))
        inp = GridEvaluator(run, with_model=True)(0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            llc.probe(inp, (), ProbeSettings(llc_draws=5, llc_burnin=0))  # imports devinterp
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                llc.probe(inp, (), ProbeSettings())
                times.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        return statistics.median(times), int(inp.train_mask.sum())


def bench_llc() -> str:
    rows = [("settings", "defaults: 3 chains x (50 burn-in + 100 draws), batch 64, nβ = n / log n")]
    for preset in ("fast", "nanda2023"):
        seconds, n = _llc_seconds(preset)
        target = " (target <= 3)" if preset == "fast" else ""
        rows.append((f"{preset} sizes ({n} training pairs): s per checkpoint, one process{target}", f"{seconds:.2f}"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = workbench.train("bench-llc", "fast", device="cpu", progress=False, root=root)
        subset = ",".join(map(str, run.steps[-8:]))
        t0 = time.perf_counter()
        workbench.probe(run, probes=["llc"], steps=subset, progress=False, workers=1)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        workbench.probe(run, probes=["llc"], steps=subset, overrides={"llc_seed": "1"}, progress=False, workers=2)
        two = time.perf_counter() - t0
        rows.append(("8 checkpoints: 1 process s / 2 worker processes s (ratio)", f"{one:.1f} / {two:.1f} ({one / two:.2f}x)"))
        t0 = time.perf_counter()
        result = workbench.probe(run, probes=["llc"], overrides={"llc_seed": "0"}, progress=False, workers=2)
        whole = time.perf_counter() - t0
        rows.append((f"whole fast run, {len(run.steps)} checkpoints, 2 workers: minutes (target <= 5)", f"{whole / 60:.2f}"))

        rows.append(("the curve", llc_line(result.tables["llc"])))
        phases = workbench.probe(run, progress=False).phases.steps
        wide = by_step(result.tables["llc"])
        marks = {"init": 0, **{k: v for k, v in phases.items() if v is not None}, "final": run.steps[-1]}
        for name, step in marks.items():
            near = min(run.steps, key=lambda s, t=step: (abs(s - t), s))
            rows.append((f"λ̂ at {name} (step {near}) ± spread over chains",
                         f"{wide.llc[near]:.3g} ± {wide.llc_std[near]:.2g}" + ("" if wide.healthy[near] == 1 else " (flagged)")))
    return table("Local learning coefficient (llc probe)", rows)
