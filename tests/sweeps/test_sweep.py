"""Sweeps: batched training against solo training, kill and resume, executors, outcome classes,
the sweep table and report, the new config fields, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import workbench
from probes.outcome import outcome
from tests.conftest import snapshot
from workbench import store
from workbench.cli import main
from workbench.config import load_config
from workbench.errors import UsageError
from workbench.model import initial_weights, trainable_module
from workbench.store import MANIFEST
from workbench.sweeps import open_sweep, prepare, read_definition, run_sweep
from workbench.training import padding, stacked_forward, start_run, train_group

ROOT = Path(__file__).resolve().parents[2]


def _definition(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _weights_vector(run: store.Run, step: int) -> torch.Tensor:
    w = run.weights(step)
    return torch.cat([w[k].flatten() for k in sorted(w)])


def _same_run_files(a: Path, b: Path) -> None:
    """Every checkpoint and the resume state bit-identical; metrics equal but for wall time."""
    ra, rb = store.Run(a), store.Run(b)
    assert ra.steps == rb.steps and ra.is_complete and rb.is_complete
    for step in ra.steps:
        assert (ra.step_path(step)).read_bytes() == (rb.step_path(step)).read_bytes(), f"{a.name} step {step}"
    sa, sb = load_file(a / store.STATE), load_file(b / store.STATE)
    # weights, AdamW moments (the RNG state is whatever the creating process had; training draws nothing)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if k != "rng/torch")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(ra.metrics_rows) == strip(rb.metrics_rows)


# ------------------------------------------------------------------ batched training
def test_stacked_forward_equals_each_members_solo_forward():
    cfgs = [load_config("smoke", {"model_seed": s, "init_scale": 1.0 + s, "attn_rate": 1.0}) for s in range(3)]
    weights = [initial_weights(c) for c in cfgs]
    stacked = {k: torch.stack([w[k] for w in weights]) for k in weights[0]}
    tokens = torch.randint(0, 23, (3, 40, 3))
    tokens[..., 2] = 23  # the "=" token
    out = stacked_forward(cfgs[0], stacked, tokens)
    for i, (cfg, w) in enumerate(zip(cfgs, weights, strict=True)):
        solo = trainable_module(cfg, w)(tokens[i])
        torch.testing.assert_close(out[i], solo, rtol=1e-5, atol=1e-5)


def test_member_trained_in_a_group_matches_the_same_config_trained_alone(runs_root):
    """At the preset's own lr (1e-2), for members that differ in every scalar a group allows: the
    member whose training set is the group's largest (no padding) is bit-identical to its solo run
    at every checkpoint; a padded member (its reductions over inputs run over the padded length, in
    another order) is bit-identical after the first update and within 1e-6 relative for its first
    10 steps, then Adam amplifies the rounding as it amplifies any 1e-7 difference at this lr
    (to 1e-2 within tens of steps: docs/results/sweeps.md). A solo run is a group of one: the
    step is the same code per member."""
    varied = [{}, {"lr": 3e-3, "model_seed": 1, "split_seed": 3, "frac_train": 0.5, "weight_decay": 0.3},
              {"init_scale": 0.5, "beta2": 0.99, "warmup_steps": 3, "label_noise": 0.1}]
    common = {"epochs": 200, "ckpt_every": 50, "ckpt_log": 8}
    group = [start_run(runs_root / f"g{i}", load_config("smoke", {**common, **v}))
             for i, v in enumerate(varied)]
    largest = max(len(r.split.train) for r in group)
    assert [len(r.split.train) == largest for r in group] == [False, True, False], "members 0 and 2 are padded"
    assert train_group(group) == {f"g{i}": "complete" for i in range(3)}
    for i, v in enumerate(varied):
        solo = workbench.train(f"s{i}", "smoke", {**common, **v}, device="cpu", progress=False, root=runs_root)
        g = store.open_run(runs_root / f"g{i}")
        assert g.steps == solo.steps and g.metrics.columns.tolist() == solo.metrics.columns.tolist()
        assert sorted(p.name for p in g.path.iterdir()) == sorted(p.name for p in solo.path.iterdir())
        for step in solo.steps:
            a, b = _weights_vector(g, step), _weights_vector(solo, step)
            if i == 1 or step <= 1:
                assert torch.equal(a, b), (i, step)
            elif step <= 10:
                assert ((a - b).norm() / b.norm()).item() <= 1e-6, (i, step)
        if i == 1:
            torch.testing.assert_close(torch.tensor(g.metrics.train_loss.values),
                                       torch.tensor(solo.metrics.train_loss.values), rtol=1e-12, atol=0)
    # the group's resume state is a solo run's: the solo trainer reads it and sees a finished run
    assert workbench.train("g1", device="cpu", progress=False, root=runs_root).is_complete


def test_a_group_resumes_bit_identically_whatever_steps_its_members_stopped_at(runs_root):
    configs = [load_config("smoke", {"epochs": 150, "model_seed": s, "frac_train": f})
               for s, f in ((0, 0.3), (1, 0.5), (2, 0.4))]
    ref = [start_run(runs_root / f"ref{i}", c) for i, c in enumerate(configs)]
    train_group(ref)
    cut = [start_run(runs_root / f"cut{i}", c) for i, c in enumerate(configs)]
    assert set(train_group(cut, stop_after=50).values()) == {"stopped"}
    # as if killed between two members' writes: one member ahead (trained with its group's padding)
    train_group(cut[1:2], stop_after=100, pad=padding(cut))
    assert [r.state_step for r in cut] == [50, 100, 50]
    assert train_group(cut) == {f"cut{i}": "complete" for i in range(3)}
    for i in range(3):
        _same_run_files(runs_root / f"ref{i}", runs_root / f"cut{i}")


def test_a_diverging_member_fails_alone_and_is_not_retrained(runs_root, tmp_path):
    path = _definition(tmp_path, "diverge", 'base = "smoke"\n[set]\nepochs = 40\nwarmup_steps = 0\n'
                                            "[axes]\nlr = [1e-2, 1e30]\n")
    sweep = run_sweep(path, root=runs_root, probe=False, progress=False)
    status = {m["name"]: m["status"] for m in sweep.members}
    assert status["lr0.01"] == "complete"
    assert status["lr1e30"].startswith("failed: training loss became") and "at step" in status["lr1e30"]
    before = snapshot(sweep.path / "lr1e30")
    run_sweep(path, root=runs_root, probe=False, progress=False)  # a rerun leaves the failed member alone
    assert snapshot(sweep.path / "lr1e30") == before


def test_a_group_whose_every_member_diverges_fails_them_all_and_the_table_says_so(runs_root, tmp_path):
    from workbench.report import build_sweep_report
    from workbench.sweeps import phase_table

    path = _definition(tmp_path, "alldiverge", 'base = "smoke"\n[set]\nepochs = 30\nwarmup_steps = 0\n'
                                               "[axes]\nlr = [1e30, 1e31]\nweight_decay = [0.5, 1.0]\n")
    sweep = run_sweep(path, root=runs_root, progress=False)
    assert all(m["status"].startswith("failed: training loss became") for m in sweep.members)
    cells = phase_table(sweep.table, "lr", "weight_decay").to_numpy().ravel().tolist()
    assert cells == ["(failed)"] * 4
    assert "phase_diagram" in build_sweep_report(sweep, formats=()).figures


def test_a_member_folder_moved_away_is_trained_again(runs_root, tmp_path):
    import shutil

    path = _definition(tmp_path, "moved", 'base = "smoke"\n[set]\nepochs = 10\n[axes]\nlr = [1e-2, 3e-3]\n')
    sweep = run_sweep(path, root=runs_root, probe=False, progress=False)
    shutil.rmtree(sweep.path / "lr0.01")
    sweep = run_sweep(path, root=runs_root, probe=False, progress=False)
    assert [m["status"] for m in sweep.members] == ["complete", "complete"]
    assert store.Run(sweep.path / "lr0.01").is_complete


def test_bad_executor_options_are_refused_before_the_sweep_is_written(runs_root, tmp_path, capsys):
    path = _definition(tmp_path, "opts", 'base = "smoke"\n[set]\nepochs = 5\n[axes]\nlr = [1e-3]\n')
    for extra, message in ((["--workers", "0"], "--workers must be 1 to 256"),
                           (["--group-size", "0"], "--group-size must be 1 to 10,000"),
                           (["--executor", "slurm"], "unknown executor 'slurm'"),
                           (["--device", "tpu"], "unknown device 'tpu'"),
                           (["--no-shared-disk"], "--no-shared-disk is for the ray executor")):
        assert main(["sweep", str(path), "--no-progress", *extra]) == 2
        assert message in capsys.readouterr().err
        assert not runs_root.exists() or not any(runs_root.iterdir())






# ------------------------------------------------------------------ outcome classes and the table
def test_outcome_rules_on_metrics_whose_class_is_known():
    def metrics(train, test):
        return pd.DataFrame({"step": range(0, 10 * len(train), 10), "train_acc": train, "test_acc": test})

    assert outcome(metrics([0.1, 0.5, 0.8], [0.1, 0.1, 0.1]))["outcome"] == "confusion"
    assert outcome(metrics([0.1, 1, 1, 1], [0.1, 0.2, 0.3, 0.5]))["outcome"] == "memorisation"
    assert outcome(metrics([0.1, 1, 1, 1], [0.1, 0.5, 1, 1])) == {"outcome": "comprehension", "fit_step": 10,
                                                                  "gen_step": 20}
    late = [0.1] + [1.0] * 30
    assert outcome(metrics(late, [0.1] * 25 + [1.0] * 6)) == {"outcome": "grokking", "fit_step": 10, "gen_step": 250}




# ------------------------------------------------------------------ new config fields
def test_label_noise_flips_exactly_that_fraction_of_training_labels_to_wrong_ones(runs_root):
    run = start_run(runs_root / "noisy", load_config("smoke", {"label_noise": 0.25}))
    clean = run.dataset.labels
    split = store.open_run(runs_root / "noisy").split  # read back from split.safetensors
    flipped = split.train_labels != clean[split.train]
    assert int(flipped.sum()) == round(0.25 * len(split.train))
    assert split.train_targets(run.dataset) is split.train_labels
    same = start_run(runs_root / "noisy2", load_config("smoke", {"label_noise": 0.25}))
    assert torch.equal(same.split.train_labels, split.train_labels), "the noise is fixed by split_seed"
    plain = start_run(runs_root / "plain", load_config("smoke", {}))
    assert plain.split.train_labels is None and torch.equal(plain.split.train, split.train)


def test_init_scale_multiplies_every_initial_weight():
    one, three = initial_weights(load_config("smoke", {})), initial_weights(load_config("smoke", {"init_scale": 3.0}))
    assert all(torch.equal(three[k], one[k] * 3.0) for k in one)


@pytest.mark.parametrize("override, message", [
    ("label_noise=1.0", "label_noise must lie in [0, 1)"),
    ("init_scale=0", "init_scale must be a positive number"),
])
def test_new_fields_refuse_bad_values(runs_root, capsys, override, message):
    assert main(["train", "x", "--preset", "smoke", override]) == 2
    assert message in capsys.readouterr().err and not (runs_root / "x").exists()


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("text, extra, message", [
    ('base = "smoke"\n[axes]\nlearning_rate = [1e-3]\n', [], "unknown axis 'learning_rate'"),
    ('base = "smoke"\n[axes]\nlr = []\n', [], "axis 'lr' has no values"),
    ('base = "smoke"\n[axes]\nfrac_train = [0.3, 1.5]\n', [], "frac_train must lie strictly between 0 and 1"),
    ('base = "smoke"\nmember_name = "../x{lr}"\n[axes]\nlr = [1e-3]\n', [], "would not be a plain folder"),
    ('base = "smoke"\n[axes]\nlr = [1e-3]\n', ["d_mlp=0"], "d_mlp must be a positive integer"),
    ('base = "smoke"\n[axes]\nlr = [1e-3]\n', ["epochs=10", "lr=1e-3,"], None),  # a one-value axis is fine
    ('base = "nope"\n', [], "unknown preset 'nope'"),
    ('base = "smoke"\nseeds = 2\n[axes]\nmodel_seed = [0, 1]\n', [], "seeds pairs model_seed and split_seed"),
])
def test_bad_sweep_definitions_exit_2_before_anything_is_written(runs_root, tmp_path, capsys, text, extra, message):
    path = _definition(tmp_path, "bad", text)
    code = main(["sweep", str(path), "--no-probe", "--no-progress", *extra])
    if message is None:
        assert code == 0
        return
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_sweep_name_reused_by_another_definition_is_refused(runs_root, tmp_path, capsys):
    path = _definition(tmp_path, "same", 'base = "smoke"\n[set]\nepochs = 5\n[axes]\nlr = [1e-3]\n')
    assert main(["sweep", str(path), "--no-probe", "--no-progress"]) == 0
    before = snapshot(runs_root)
    assert main(["sweep", str(path), "--no-probe", "--no-progress", "lr=1e-3,2e-3"]) == 2
    assert "already exists at" in capsys.readouterr().err and snapshot(runs_root) == before
    assert main(["sweep", "no-such-sweep"]) == 2 and "shipped sweeps: canonical-seeds, forecast-decay, forecast-families, forecast-fit, forecast-heldout," in capsys.readouterr().err
    assert main(["sweep", str(path), "--executor", "slurm", "--no-progress"]) == 2
    assert "unknown executor 'slurm'" in capsys.readouterr().err


def test_a_definition_that_changes_only_its_probes_or_description_is_the_same_sweep(runs_root, tmp_path):
    text = 'base = "smoke"\n[set]\nepochs = 5\n[axes]\nlr = [1e-3]\n'
    path = _definition(tmp_path, "probed", text)
    assert main(["sweep", str(path), "--no-probe", "--no-progress"]) == 0
    path.write_text('description = "now with effective parameters"\nprobes = ["effective"]\n' + text)
    assert main(["sweep", str(path), "--no-probe", "--no-progress"]) == 0
    assert open_sweep("probed").definition.probes == ["effective"]


def test_case_override_keeps_only_the_named_cases(tmp_path):
    path = _definition(tmp_path, "cased", 'base = "smoke"\n[cases]\na = {}\nb = { lr = 2e-3 }\nc = { lr = 3e-3 }\n')
    assert [m.values["case"] for m in read_definition(path, {"case": "c,a"}).members()] == ["c", "a"]
    with pytest.raises(UsageError, match="unknown case.*d; this sweep's cases: a, b, c"):
        read_definition(path, {"case": "a,d"})


def test_shipped_definitions_expand_and_name_their_members():
    for name, count in (("frac-wd", 60), ("seeds", 8), ("model-wise", 22), ("sample-wise", 12)):
        members = read_definition(name).members()
        assert len(members) == count and len({m.name for m in members}) == count
    seeds = read_definition("seeds").members()
    assert [(m.config.model_seed, m.config.split_seed) for m in seeds] == [(s, s) for s in range(8)]
    widths = {(m.config.d_model, m.config.d_head, m.config.d_mlp) for m in read_definition("model-wise").members()}
    assert all(d == 4 * h and m == 4 * d for d, h, m in widths) and len(widths) == 11
    assert {m.config.label_noise for m in read_definition("model-wise").members()} == {0.0, 0.1}
    assert {m.config.d_model for m in read_definition("sample-wise").members()} == {20}


def test_manifest_and_member_runs_are_ordinary(runs_root, tmp_path):
    path = _definition(tmp_path, "plain", 'base = "smoke"\nseeds = 2\n[set]\nepochs = 10\n'
                                          "[axes]\nweight_decay = { linspace = [0.5, 1.0, 2] }\n")
    sweep = prepare(read_definition(path), runs_root)
    manifest = json.loads((sweep.path / MANIFEST).read_text())
    assert [m["name"] for m in manifest["members"]] == ["weight_decay0.5-seed0", "weight_decay0.5-seed1",
                                                        "weight_decay1-seed0", "weight_decay1-seed1"]
    assert all(m["status"] == "pending" for m in manifest["members"])
    run_sweep(path, root=runs_root, probe=False, progress=False)
    member = workbench.open_run(sweep.path / "weight_decay1-seed1")  # single-run API on a member
    assert member.is_complete and member.config.model_seed == 1 and member.config.weight_decay == 1.0
    assert open_sweep("plain", root=runs_root).members[-1]["status"] == "complete"


def test_a_member_whose_probing_fails_keeps_its_row_with_the_reason_and_the_others_are_kept(runs_root, tmp_path,
                                                                                         monkeypatch):
    from workbench.sweeps import probe_sweep
    from workbench.sweeps import probing as sweep_probing

    definition = _definition(tmp_path, "probe-fail", 'base = "smoke"\n[set]\nepochs = 20\n[axes]\nlr = [0.01, 0.02]\n')
    sweep = run_sweep(str(definition), root=runs_root, probe=False, progress=False)
    real = sweep_probing.member_row

    def fails_for_one(path, probes):
        if Path(path).name.endswith("0.02"):
            raise RuntimeError("probe crashed\nwith a long traceback")
        return real(path, probes)

    monkeypatch.setattr(sweep_probing, "member_row", fails_for_one)
    table = probe_sweep(open_sweep(sweep.path), progress=False).set_index("member")
    bad = [m for m in table.index if m.endswith("0.02")][0]
    good = [m for m in table.index if m != bad][0]
    assert table.loc[bad, "probe_error"] == "RuntimeError: probe crashed"
    from probes.outcome import CLASSES

    assert pd.isna(table.loc[good, "probe_error"]) and table.loc[good, "outcome"] in CLASSES
    assert pd.isna(table.loc[bad, "outcome"]) and table.loc[bad, "status"] == "complete"
    assert (sweep.path / "sweep.csv").is_file()
