"""The probe section: the grid activations by each engine, and the probe suite at p = 113.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from workbench import store
from workbench.bench.measure import table
from workbench.config import load_config
from workbench.model import (
    FastTransformer,
    bridge_activations,
    build_bridge,
    factored_grid_activations,
    initial_weights,
)
from workbench.tasks import grid_tokens
from workbench.training import start_run

_PROBE_CHILD = """
import json, sys, time
from pathlib import Path
import workbench
run = workbench.open_run(sys.argv[1], root=Path(sys.argv[2]))
t0 = time.perf_counter(); first = workbench.probe(run, progress=False); t1 = time.perf_counter()
again = workbench.probe(run, progress=False); t2 = time.perf_counter()
changed = workbench.probe(run, overrides={"norm_min_share": "2"}, progress=False); t3 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "rerun": t2 - t1, "n": len(run.steps), "computed": first.computed["fourier"],
                  "recomputed": again.computed["fourier"], "changed": t3 - t2, "changed_computed": changed.computed}))
"""


def _synthetic_run(root: Path, name: str, n_checkpoints: int) -> None:
    """A nanda2023-sized run whose checkpoints are the initial weights plus noise (timing needs no training)."""

    cfg = load_config("nanda2023", {"epochs": n_checkpoints - 1, "ckpt_every": 1})
    run = start_run(root / name, cfg)
    base = initial_weights(cfg)
    gen = torch.Generator().manual_seed(0)
    for step in range(n_checkpoints):
        noisy = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        store.write_checkpoint(run, step, noisy)


def _grid_forward_rows(rounds: int = 9) -> list[tuple[str, str]]:
    """ms for the activations over all p^2 inputs by each engine, alternated in one process."""

    cfg = load_config("nanda2023", {})
    weights = initial_weights(cfg)
    tokens = grid_tokens(cfg.p)
    bridge, fast, workspace = build_bridge(cfg, weights), FastTransformer(cfg, weights), {}
    variants = {
        "factored (default engine)": lambda: factored_grid_activations(cfg, weights, workspace),
        "FastTransformer.activations": lambda: fast.activations(tokens),
        "TransformerBridge run_with_cache": lambda: bridge_activations(bridge, cfg, tokens),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ms = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ref = ms["TransformerBridge run_with_cache"]
    return [(f"grid activations, {k}, ms (ratio to bridge)", f"{v:.1f} ({v / ref:.2f})") for k, v in ms.items()]


def bench_probe() -> str:
    import json
    import subprocess

    rows = [("configuration", "nanda2023 sizes: p=113, d_model 128, d_mlp 512; all four probes; 2 threads")]
    rows += _grid_forward_rows()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (50, 200):
            _synthetic_run(root, f"synthetic-{n}", n)
            proc = subprocess.Popen([sys.executable, "-c", _PROBE_CHILD, f"synthetic-{n}", str(root)],
                                    stdout=subprocess.PIPE, text=True)
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"probe child failed with status {proc.returncode}")
            result = json.loads(out.strip().splitlines()[-1])
            rows += [
                (f"{n} checkpoints: s per checkpoint (target <= 0.25)", f"{result['first'] / n:.3f}"),
                (f"{n} checkpoints: peak RSS, MiB", f"{usage.ru_maxrss / 1024:.0f}"),
                (f"{n} checkpoints: re-run on unchanged run, s (measured again: {result['recomputed']})",
                 f"{result['rerun']:.2f}"),
                (f"{n} checkpoints: re-run after a setting only `fourier` reads changed, s (measured again: "
                 + ", ".join(f"{k} {v}" for k, v in result["changed_computed"].items()) + ")", f"{result['changed']:.2f}"),
            ]
    return table("Probe suite", rows)
