"""End-to-end tests of training (trained runs, subprocesses, minutes): marked slow, skipped by `make test-fast`. Moved from tests/training/test_train.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import workbench
from tests.training.test_train import ROOT, _all_visible_files_are_complete, _state_step


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical_to_an_uninterrupted_run(runs_root):
    # the fast preset's sizes: big enough that torch runs ops multi-threaded, where a
    # non-deterministic kernel (e.g. W[tokens] backward) would show
    overrides = {"epochs": 600, "ckpt_every": 50}
    reference = workbench.train("straight", "fast", overrides, device="cpu", progress=False, root=runs_root)

    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(runs_root)}
    cmd = [sys.executable, "-m", "workbench", "train", "killed", "--preset", "fast", "--device", "cpu",
           "--no-progress", "epochs=600", "ckpt_every=50"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = runs_root / "killed"
    deadline = time.time() + 120
    while _state_step(run_dir) < 200 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _state_step(run_dir)
    assert 200 <= killed_at < 600, f"the kill should land mid-run (state at {killed_at})"
    _all_visible_files_are_complete(run_dir)

    resumed = workbench.train("killed", device="cpu", progress=False, root=runs_root)
    assert resumed.steps == reference.steps
    for step in reference.steps:
        a, b = load_file(reference.step_path(step)), load_file(resumed.step_path(step))
        assert all(torch.equal(a[k], b[k]) for k in a), f"step {step} differs after resume"
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(resumed.metrics_rows) == strip(reference.metrics_rows)
    sessions = resumed.provenance["sessions"]
    assert [s["start_step"] for s in sessions] == [0, killed_at]
    assert "end_step" not in sessions[0] and sessions[1]["end_step"] == 600, "the killed session never ended"
    assert not list(run_dir.rglob(".*.tmp")), "stale temporaries are cleaned when training resumes"
