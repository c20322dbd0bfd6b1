"""The prepared GPU script (scripts/gpu-check) is sound: run as it runs on a GPU machine, but on the
CPU at toy sizes, it writes the three benchmark pages with every row; without its packages it says
so in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_every_device_section_and_writes_its_pages(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "SMALL": "1", "OUT": str(tmp_path), "PY": sys.executable}
    proc = subprocess.run([str(ROOT / "scripts" / "gpu-check")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    assert sorted(pages) == ["bench-science.md", "bench-sweep.md", "bench-train.md"]
    assert "--device" not in pages["bench-train.md"].split("\n")[2]  # a CPU run names no --device cuda
    assert re.search(r"smoke: ratio \(b\)/\(a\)\s*\| \d\.\d\d", pages["bench-train.md"])
    assert re.search(r"group of 2: member-epochs/s.*\| \d+ / \d+", pages["bench-sweep.md"])
    gaps = re.search(r"first and last checkpoint \(bound 1e-5\)\s*\| ([\d.e+-]+), ([\d.e+-]+)", pages["bench-science.md"])
    assert gaps and max(float(gaps.group(1)), float(gaps.group(2))) <= 1e-5
    assert "relative weight difference at step 10, 200 | identical, identical" in re.sub(r" +", " ", pages["bench-science.md"])


def test_gpu_check_without_its_packages_or_a_gpu_says_so_in_one_line(tmp_path):
    copy = tmp_path / "tree"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "gpu-check", copy / "scripts")
    bare = shutil.which("python3") or "/usr/bin/python3"
    env = {**os.environ, "PY": bare, "DEVICE": "cpu", "SMALL": "1", "OUT": str(tmp_path)}
    proc = subprocess.run([str(copy / "scripts" / "gpu-check")], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 2:
        pytest.skip(f"{bare} has the workbench's packages")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "gpu-wheels" in proc.stderr
    if not shutil.which("nvidia-smi"):
        proc = subprocess.run([sys.executable, "-m", "workbench.bench", "--device", "cuda", "--out", str(tmp_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.strip().startswith("error: device 'cuda' requested but no CUDA")
