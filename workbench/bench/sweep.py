"""The sweep section: batched training throughput and sweep probing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

import workbench
from probes.outcome import outcome
from workbench import store
from workbench.bench.measure import alternate, device_name, table
from workbench.bench.train import LookupStep, PlainStep
from workbench.config import load_config
from workbench.training import start_run, train_group


def _sweep_members(root: Path, name: str, count: int, overrides: dict, preset: str = "fast") -> list:
    return [start_run(root / f"{name}-{i}", load_config(preset, {**overrides, "model_seed": i, "split_seed": i}))
            for i in range(count)]


def _probe_rss(definition: Path, root: Path, name: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one fresh process that runs a sweep and probes it."""
    import resource
    import subprocess

    code = ("import sys; from pathlib import Path; from workbench.sweeps import run_sweep; "
            f"run_sweep({str(definition)!r}, root=Path({str(root)!r}), progress=False, sweep_name={name!r})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    seconds = time.perf_counter() - t0
    return seconds, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def bench_sweep(device: torch.device, small: bool = False) -> str:
    """Batched training throughput of the fast preset (member-epochs per second): the plain stacked
    step against the table-lookup step in groups of 1, 4, 16, 64 (and 256 on a GPU), side by side;
    then whole groups through `train_group` (checkpoints and metrics written) against the same 16
    configs trained one after another; the fast preset's memorisation and grok steps alone and in
    a group; and sweep probing: seconds per member and peak memory for sweeps of 2 and 6 members."""

    preset, epochs, n_solo = ("smoke", 20, 2) if small else ("fast", 200, 16)
    cfg = load_config(preset)
    sizes = (1, 2) if small else (1, 4, 16, 64, 256) if device.type == "cuda" else (1, 4, 16, 64)
    rows = [("device", device_name(device))]
    for size in sizes:
        reps = max(1, 16 // size)
        ms = alternate({"plain": PlainStep(cfg, size, device), "lookup": LookupStep(cfg, size, device)}, device,
                        2 if small else 5, reps)
        old, new = size * 1000 / ms["plain"], size * 1000 / ms["lookup"]
        rows.append((f"group of {size}: member-epochs/s, plain step / lookup step (ratio, target >= 2x)",
                     f"{old:.0f} / {new:.0f} ({new / old:.2f}x)"))
    common = {"epochs": epochs, "ckpt_every": 100, "ckpt_log": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = _sweep_members(root, "solo", n_solo, common, preset)
        t0 = time.perf_counter()
        for run in solo:
            workbench.train(run.name, device=str(device), progress=False, root=root)
        solo_rate = n_solo * epochs / (time.perf_counter() - t0)
        rows.append((f"train_group, checkpoints and metrics written: {n_solo} members one after another, member-epochs/s",
                     f"{solo_rate:.1f}"))
        for size in sizes:
            group = _sweep_members(root, f"g{size}", size, common, preset)
            t0 = time.perf_counter()
            train_group(group, device=device)
            rate = size * epochs / (time.perf_counter() - t0)
            rows.append((f"train_group, group of {size}: member-epochs/s (ratio to one after another)",
                         f"{rate:.1f} ({rate / solo_rate:.2f}x)"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = workbench.train("alone", preset, device=str(device), progress=False, root=root)
        group = _sweep_members(root, "grouped", 4, {}, preset)
        train_group(group, device=device)
        a, g = outcome(alone.metrics), outcome(store_run(group[0].path).metrics)
        rows.append((f"{preset} preset alone: memorisation / grok step (train, test acc >= 99%)", f"{a['fit_step']} / {a['gen_step']}"))
        rows.append((f"{preset} preset as member 0 of a group of 4: memorisation / grok step", f"{g['fit_step']} / {g['gen_step']}"))
    if device.type == "cpu" and not small:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for count in (2, 6):
                definition = root / f"m{count}.toml"
                definition.write_text('base = "smoke"\n[set]\nepochs = 300\n'
                                      f"[axes]\nmodel_seed = {{ range = [0, {count}] }}\n")
                seconds, rss = _probe_rss(definition, root, f"m{count}")
                rows.append((f"sweep of {count} smoke members, train + probe in one process: s / peak RSS MiB",
                             f"{seconds:.1f} / {rss:.0f}"))
    return table("Sweeps: batched training and sweep probing", rows)


def store_run(path: Path):
    return store.Run(path)
