"""The measuring helpers every section shares: the results pages' header, a table, timing variants
alternated in one process, the machine's matrix-product peak.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parents[2]


RESULTS = SOURCE / "docs" / "results"


def provenance_header(section: str, device: torch.device | None = None) -> str:
    """The lines that head a results page: the command, the date, the commit and the machine."""
    import platform
    import subprocess
    from datetime import UTC, datetime

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"# Benchmark: {section}\n\n"
            f"Written by `make bench` (`python -m workbench.bench --only {section}"
            f"{' --device cuda' if device is not None and device.type == 'cuda' else ''}`); do not edit by hand.\n\n"
            f"- measured: {datetime.now(UTC).isoformat(timespec='seconds')}\n- commit: {commit}\n"
            f"- machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}"
            + (f"; GPU {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else "")
            + "\n\n")


def table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"### {title}", "", f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(variants: dict, device: torch.device, rounds: int, reps: int) -> dict[str, float]:
    """Median ms per call of each variant, the variants alternated round by round after one
    warm-up round (so that a slow spell of the machine hits them alike)."""
    for fn in variants.values():
        for _ in range(2):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t0) / reps * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_peak(device: torch.device, rounds: int = 7) -> float:
    """GFLOP/s of a large single-precision matrix product (2n^3 FLOPs; n = 2048 on a CPU, 8192 on
    a GPU): the median of ``rounds``, what the machine's BLAS reaches (the reference for a step's
    FLOP rate)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    ms = alternate({"mm": lambda: a @ b}, device, rounds, 3)["mm"]
    return 2 * n**3 / (ms / 1000) / 1e9


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return "cpu"
