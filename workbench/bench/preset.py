"""The preset section: the `fast` preset end to end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import workbench
from workbench.bench.measure import table


def bench_preset() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = workbench.train("bench-fast", "fast", device="cpu", progress=False, root=Path(tmp))
        total = time.perf_counter() - t0
        metrics = run.metrics
        startup = run.provenance["sessions"][0]
        memorised = metrics[metrics.train_acc >= 0.99].step.min()
        grokked_rows = metrics[metrics.test_acc >= 0.99]
        grokked = grokked_rows.step.min() if len(grokked_rows) else None
        wall_to_grok = grokked_rows.wall_s.min() if len(grokked_rows) else None
        cfg = run.config
    rows = [
        ("configuration", f"fast: {cfg.operation} mod {cfg.p}, d_model {cfg.d_model}, lr {cfg.lr:g}, {cfg.epochs} epochs"),
        ("epochs to memorisation (train acc >= 99%)", str(memorised)),
        ("epochs to grokking (test acc >= 99%)", str(grokked)),
        ("grokking / memorisation (target >= 5)", f"{grokked / memorised:.1f}" if grokked and memorised else "n/a"),
        ("wall s to test acc >= 99%, training loop", f"{wall_to_grok:.1f}" if wall_to_grok is not None else "never"),
        ("wall s for the whole run incl. start-up", f"{total:.1f}"),
        ("training-loop wall s, all epochs", f"{startup.get('wall_s', float('nan')):.1f}"),
    ]
    return table("The `fast` preset", rows)
