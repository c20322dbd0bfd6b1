"""The command: which sections run, on which device, and where their pages go.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from workbench.bench.llc import bench_llc
from workbench.bench.measure import RESULTS, provenance_header
from workbench.bench.preset import bench_preset
from workbench.bench.probe import bench_probe
from workbench.bench.science import bench_science
from workbench.bench.sweep import bench_sweep
from workbench.bench.train import bench_train
from workbench.errors import UsageError
from workbench.training import pick_device

SECTIONS = {"train": bench_train, "probe": bench_probe, "preset": bench_preset, "llc": bench_llc, "sweep": bench_sweep,
            "science": bench_science}


ON_DEVICE = ("train", "sweep", "science")  # the sections that take --device and --small (the others measure the CPU path)


ALIASES = {"fast": "preset"}  # the section's name before it was renamed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.bench", description="Benchmarks: ratios measured side by side in one process, printed as a table.")
    parser.add_argument("--only", default=None, help=f"comma-separated sections: {', '.join(SECTIONS)} "
                        f"(default: all; on a GPU: {', '.join(ON_DEVICE)})")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the train and sweep sections run")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the bench-<section>.md pages (default: docs/results)")
    parser.add_argument("--small", action="store_true", help="the device sections at toy sizes, in seconds (a check of the "
                        "benchmark itself, as the test suite runs it; its numbers mean nothing)")
    args = parser.parse_args(argv)
    try:
        device = torch.device(str(pick_device(args.device)))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # on the CPU, science (nanda2023's 40,000 epochs end to end, ~25 min on 2 cores) runs only when named
    default = ON_DEVICE if device.type == "cuda" or args.small else tuple(n for n in SECTIONS if n != "science")
    names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()] if args.only else list(default)
    unknown = [n for n in names if n not in SECTIONS]
    off_device = [n for n in names if (device.type == "cuda" or args.small) and n not in ON_DEVICE]
    if unknown or off_device:
        valid = ", ".join(ON_DEVICE if off_device else SECTIONS)
        print(f"error: unknown bench section(s) {', '.join(unknown or off_device)} for {device.type}; valid: {valid}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-cuda" if device.type == "cuda" else ""
    for name in names:
        text = SECTIONS[name](device, args.small) if name in ON_DEVICE else SECTIONS[name]()
        print(text, flush=True)
        (out / f"bench-{name}{suffix}.md").write_text(provenance_header(name, device) + text)
    return 0
