"""Training end to end: the run directory, resume after SIGKILL, refusals that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import workbench
from tests.conftest import snapshot
from workbench import store
from workbench.cli import main
from workbench.training import checkpoint_steps

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_directory_is_complete_and_self_describing(smoke_run):
    run = smoke_run
    files = {p.name for p in run.path.iterdir()}
    assert {store.CONFIG, store.PROVENANCE, store.SPLIT, store.METRICS, store.STATE, store.STEPS_DIR} <= files
    assert not list(run.path.rglob("*.pt")) and not list(run.path.rglob("*.pkl")), "no pickles in a run"
    assert run.steps == checkpoint_steps(run.config)
    assert workbench.load_config(json.loads((run.path / store.CONFIG).read_text())) == run.config
    prov = run.provenance
    assert prov["versions"]["transformer-lens"].startswith("4.") and prov["sessions"][0]["device"] == "cpu"
    split = run.split
    assert len(set(split.train.tolist()) & set(split.test.tolist())) == 0
    assert len(split.train) + len(split.test) == run.dataset.n_examples
    metrics = run.metrics
    assert list(metrics.step) == sorted(set(metrics.step)) and metrics.step.iloc[-1] == run.config.epochs
    assert metrics.train_acc.iloc[-1] == 1.0, "the smoke preset memorises its train set"
    assert metrics.test_acc.iloc[-1] < 0.5, "...without generalising"
    assert run.is_complete


def test_metrics_are_the_losses_of_the_saved_weights(smoke_run):
    """Row `step` of the log is evaluated at exactly the weights saved as checkpoint `step`."""
    run = smoke_run
    step = run.steps[len(run.steps) // 2]
    row = run.metrics.set_index("step").loc[step]
    model = workbench.load_bridge(run, step)
    ds, split = run.dataset, run.split
    with torch.no_grad():
        logits = model(ds.tokens[split.test])[:, -1].double()
    loss = torch.nn.functional.cross_entropy(logits, ds.labels[split.test]).item()
    assert loss == pytest.approx(row.test_loss, rel=1e-6)


def test_cli_smoke_end_to_end_and_idempotent_rerun(runs_root, capsys):
    assert main(["train", "cli-smoke", "--preset", "smoke", "--no-progress", "epochs=60", "ckpt_every=20"]) == 0
    out = capsys.readouterr().out
    assert "cli-smoke: step 60/60" in out
    run = workbench.open_run("cli-smoke", runs_root)
    assert run.steps == checkpoint_steps(run.config) == [0, 20, 40, 60], "every ckpt_every steps and the last"
    before = snapshot(runs_root)
    assert main(["train", "cli-smoke"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert snapshot(runs_root) == before, "re-running a finished run changes nothing"
    assert main(["info", "cli-smoke"]) == 0 and "complete" in capsys.readouterr().out
    assert main(["runs"]) == 0 and "cli-smoke" in capsys.readouterr().out


def test_different_config_for_existing_run_is_refused_and_changes_nothing(runs_root, capsys):
    workbench.train("r", "smoke", {"epochs": 10}, device="cpu", progress=False, root=runs_root)
    before = snapshot(runs_root)
    assert main(["train", "r", "--preset", "smoke", "epochs=20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epochs=20 (run has 10)" in err and "Traceback" not in err
    assert main(["train", "r", "lr=0.5"]) == 2  # overrides alone apply to the run's own config
    assert snapshot(runs_root) == before


def _state_step(run_dir: Path) -> int:
    try:
        with safe_open(run_dir / store.STATE, "pt") as f:
            return int(f.metadata()["step"])
    except Exception:
        return -1


def _all_visible_files_are_complete(run_dir: Path) -> None:
    for path in run_dir.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".safetensors":
            load_file(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)




def test_stop_after_then_resume_matches_in_process(runs_root):
    full = workbench.train("full", "smoke", {"epochs": 120}, device="cpu", progress=False, root=runs_root)
    part = workbench.train("part", "smoke", {"epochs": 120}, device="cpu", progress=False, stop_after=50, root=runs_root)
    assert part.state_step == 50 and not part.is_complete
    part = workbench.train("part", device="cpu", progress=False, root=runs_root)
    a, b = load_file(full.step_path(120)), load_file(part.step_path(120))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_biases_stay_zero(runs_root):
    run = workbench.train("frozen", "smoke", {"epochs": 30, "freeze_biases": True}, device="cpu", progress=False, root=runs_root)
    weights = run.weights(30)
    assert all((v == 0).all() for k, v in weights.items() if k.endswith("bias"))
    assert not torch.equal(weights["embed.weight"], run.weights(0)["embed.weight"])
