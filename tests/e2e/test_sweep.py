"""End-to-end tests of sweeps (trained runs, subprocesses, minutes): marked slow, skipped by `make test-fast`. Moved from tests/sweeps/test_sweep.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import workbench
from tests.sweeps.test_sweep import ROOT, _definition, _same_run_files
from workbench import store
from workbench.cli import main
from workbench.sweeps import chunks, run_sweep


@pytest.mark.slow
def test_sweep_killed_with_sigkill_completes_bit_identically_when_run_again(runs_root, tmp_path):
    text = 'base = "smoke"\n[set]\nepochs = 400\nckpt_every = 20\n[axes]\nmodel_seed = [0, 1, 2]\n'
    path = _definition(tmp_path, "killme", text)
    reference = run_sweep(path, root=runs_root / "ref", probe=False, progress=False)
    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(runs_root)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(path), "--no-probe"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    member = runs_root / "killme" / "model_seed0"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (member / store.STATE).exists() and (store.Run(member).state_step or 0) >= 100:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 100 <= store.Run(member).state_step < 400, "the kill should land mid-run"
    assert main(["sweep", str(path), "--no-probe", "--no-progress"]) == 0
    for m in reference.members:
        _same_run_files(reference.path / m["name"], runs_root / "killme" / m["name"])


@pytest.mark.slow
def test_ray_executor_and_worker_processes_write_the_same_run_directories_as_local(runs_root, tmp_path):
    pytest.importorskip("ray")
    import ray

    text = 'base = "smoke"\n[set]\nepochs = 60\n[axes]\nlr = [1e-2, 3e-3]\nd_mlp = [32, 64]\n'
    path = _definition(tmp_path, "exec", text)
    local = run_sweep(path, root=runs_root / "local", probe=False, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep(path, root=runs_root / "ray", executor="ray", probe=False, progress=False)
        shipped = run_sweep(path, root=runs_root / "shipped", executor="ray", probe=False, progress=False, shared_disk=False)
    finally:
        ray.shutdown()
    processes = run_sweep(path, root=runs_root / "processes", workers=2, probe=False, progress=False)
    assert len(chunks(local, 8)) == 2 and [m["status"] for m in on_ray.members] == ["complete"] * 4
    assert [m["status"] for m in shipped.members] == ["complete"] * 4
    for m in local.members:  # two groups (two widths), each trained by its own Ray task / worker process
        _same_run_files(local.path / m["name"], on_ray.path / m["name"])
        _same_run_files(local.path / m["name"], processes.path / m["name"])
        _same_run_files(local.path / m["name"], shipped.path / m["name"])  # trained elsewhere, written back here
        sessions = store.Run(shipped.path / m["name"]).provenance["sessions"]
        assert len(sessions) == 1 and sessions[0]["ray_node"] and sessions[0]["end_step"] == 60


@pytest.mark.slow
def test_sweep_table_classes_runs_that_grok_memorise_and_cannot_fit(runs_root, tmp_path):
    """Real runs whose class is known: addition at frac 0.9 groks (fits by ~70, generalises ~860);
    the random table memorises; lr 1e-5 cannot fit in 1,000 steps."""
    text = ('base = "smoke"\nmember_name = "{operation}-lr{lr}"\n'
            "[set]\nepochs = 1000\nckpt_every = 100\nd_mlp = 128\nfrac_train = 0.9\nweight_decay = 0.3\n"
            '[axes]\noperation = ["add", "random"]\nlr = [1e-2, 1e-5]\n')
    sweep = run_sweep(_definition(tmp_path, "classes", text), root=runs_root, progress=False)
    table = sweep.table.set_index("member")
    assert table.outcome.to_dict() == {"add-lr0.01": "grokking", "add-lr1e-05": "confusion",
                                       "random-lr0.01": "memorisation", "random-lr1e-05": "confusion"}
    grok = table.loc["add-lr0.01"]
    assert grok.fit_step < 200 < 600 < grok.gen_step and grok.grokked_step == grok.gen_step
    assert grok.n_key_freqs > 0 and grok.weight_norm > 0 and grok.n_params > 0
    assert table.loc["random-lr0.01"].n_key_freqs == 0
    criteria = json.loads((sweep.path / "outcomes.json").read_text())
    assert "grokking" in criteria["outcome"] and "memorization" in criteria["phases"]
    # the same table through the notebook API, and the report with its phase diagram
    assert workbench.open_sweep("classes", root=runs_root).table.equals(sweep.table)
    from workbench.report import build_sweep_report

    report = build_sweep_report(sweep, formats=())
    assert "phase_diagram" in report.figures and report.index.is_file()
    page = report.index.read_text()
    assert "Phase diagram" in page and "random-lr0.01" in page and "http" not in page.split("<script>")[0]
