"""Config numbers, sizes, sweep definitions and resume states: refused in one line, before anything is written."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import workbench
from tests.faults.conftest import digest
from workbench import store


@pytest.mark.parametrize(("override", "says"), [
    ("lr=inf", "lr must be a finite number"), ("lr=nan", "lr must be a finite number"),
    ("weight_decay=nan", "weight_decay must be a finite number"), ("weight_decay=inf", "weight_decay must be a finite number"),
    ("grokfast_lamb=inf", "grokfast_lamb must be a finite number"), ("init_scale=-inf", "init_scale must be a finite number"),
    ("epochs=inf", "epochs must be a whole number"), ("d_model=1e400", "d_model must be a whole number"),
    ("p=1e400", "p must be a whole number"), ("n_layers=100000", "n_layers=100000 is beyond"),
    ("d_mlp=1000000000", "d_mlp=1000000000 is beyond"),
    ("p=999983", "needs about"), ("d_model=1000000", "needs about"),
])
def test_an_impossible_number_is_refused_and_no_run_is_made(cli, runs_root, override, says):
    extra = ["d_head=250000"] if override == "d_model=1000000" else []
    cli.refuses("train", "x", "--preset", "smoke", override, *extra, "--no-progress", says=says)
    assert not (runs_root / "x").exists()


def test_a_refused_number_leaves_the_name_free_for_a_sane_one(cli, runs_root):
    cli.refuses("train", "x", "--preset", "smoke", "lr=inf", "--no-progress", says="lr must be a finite number")
    assert cli("train", "x", "--preset", "smoke", "epochs=5", "--no-progress")[0] == 0


def test_disk_that_cannot_hold_the_checkpoints_is_refused_before_writing(cli, runs_root):
    cli.refuses("train", "x", "--preset", "smoke", "d_model=512", "d_head=256", "epochs=10000000", "ckpt_every=1",
                "--no-progress", says="of disk for")
    assert not (runs_root / "x").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["lr=1e-2", "lr=1e-3"], "lr is given twice"),
    (["--stop-after", "-5"], "stop_after must be a step >= 0"),
])
def test_ambiguous_or_negative_arguments_are_refused(cli, runs_root, args, says):
    cli.refuses("train", "x", "--preset", "smoke", *args, "--no-progress", says=says)
    assert not (runs_root / "x").exists()


@pytest.mark.parametrize(("text", "says"), [
    ('base = "smoke"\nseeds = 2.5\n', "seeds must be a whole number"),
    ('base = "smoke"\nseeds = true\n', "seeds must be a whole number"),
    ('base = "smoke"\n[axes]\nlr = { linspace = [0.1, 0.2, 0] }\n', "n must be 1 to 10,000"),
    ('base = "smoke"\n[axes]\nlr = { linspace = [0.1, 0.2, -3] }\n', "n must be 1 to 10,000"),
    ('base = "smoke"\n[axes]\nmodel_seed = { range = [0, 1000000] }\n', "it must hold 1 to 10,000 values"),
    ('base = "smoke"\n[axes]\nmodel_seed = { range = [0, 1000] }\nsplit_seed = { range = [0, 1000] }\n',
     "would have 1,000,000 members"),
    ('base = "smoke"\n[axes]\nlr = [inf]\n', "lr must be a finite number"),
])
def test_a_bad_sweep_definition_is_refused_and_no_sweep_folder_is_made(cli, runs_root, tmp_path, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    cli.refuses("sweep", str(path), "--no-progress", says=says)
    assert not runs_root.exists() or not any(runs_root.iterdir())


# ---------------------------------------------------------------------------- resume states
@pytest.fixture
def two_runs(runs_root):
    """A complete smoke run ``a`` (150 epochs) and ``b``, another seed stopped at step 10."""
    workbench.train("a", "smoke", {"epochs": 150}, device="cpu", progress=False, root=runs_root)
    workbench.train("b", "smoke", {"epochs": 150, "model_seed": 1}, device="cpu", progress=False, root=runs_root,
                    stop_after=10)
    return runs_root / "a", runs_root / "b"


def test_another_runs_state_is_refused_and_nothing_is_rewritten(cli, two_runs):
    a, b = two_runs
    (a / store.STATE).write_bytes((b / store.STATE).read_bytes())
    before = digest(a)
    cli.refuses("train", "a", "--no-progress", says="belongs to another run")
    assert digest(a) == before


def test_a_state_of_another_shape_is_refused_before_the_metrics_are_touched(cli, runs_root, two_runs):
    _, b = two_runs
    workbench.train("w", "smoke", {"epochs": 150, "d_mlp": 32}, device="cpu", progress=False, root=runs_root, stop_after=10)
    (b / store.STATE).write_bytes((runs_root / "w" / store.STATE).read_bytes())
    before = digest(b)
    cli.refuses("train", "b", "--no-progress", says="belongs to another run")
    assert digest(b) == before
    # without the identity mark (a state written before states carried one), and with no checkpoint at
    # its step to compare it with: a state is written just after its checkpoint, so it is not this run's
    tensors = load_file(b / store.STATE)
    save_file(tensors, b / store.STATE, metadata={"step": "10"})
    store.open_run(b).step_path(10).unlink()
    before = digest(b)
    cli.refuses("train", "b", "--no-progress", says="where the run has no checkpoint")
    assert digest(b) == before


def test_a_stale_state_of_the_run_itself_is_refused_with_the_way_out(cli, two_runs):
    a, _ = two_runs
    run = store.open_run(a)
    store.write_state(run, store.ResumeState(step=25, weights=run.weights(25), adam={}, rng=torch.get_rng_state()))
    before = digest(a)
    line = cli.refuses("train", "a", "--no-progress", says="is at step 25 but the run's checkpoints reach step 150")
    assert "--from-last-checkpoint" in line and digest(a) == before
    assert cli("train", "a", "--no-progress", "--from-last-checkpoint")[0] == 0  # the way out works


def test_a_state_unlike_its_own_checkpoint_is_refused(cli, two_runs):
    _, b = two_runs
    tensors = load_file(b / store.STATE)
    tensors["weights/embed.weight"] = tensors["weights/embed.weight"] + 1.0
    save_file(tensors, b / store.STATE, metadata={"step": "10"})
    before = digest(b)
    cli.refuses("train", "b", "--no-progress", says="other weights than the checkpoint at its own step 10")
    assert digest(b) == before


def test_a_state_written_before_states_carried_an_identity_still_resumes(cli, two_runs):
    _, b = two_runs
    tensors = load_file(b / store.STATE)
    save_file(tensors, b / store.STATE, metadata={"step": "10"})
    assert cli("train", "b", "--no-progress")[0] == 0
    assert store.open_run(b).is_complete


@pytest.mark.parametrize(("suffix", "text", "says"), [
    (".toml", "p = [oops\n", "is not valid TOML"), (".json", '{"p": ', "is not valid JSON"),
    (".json", "[1, 2]", "holds no table of config fields"), (".toml", "lr = inf\n", "lr must be a finite number"),
])
def test_a_bad_preset_file_is_one_line(cli, runs_root, tmp_path, suffix, text, says):
    path = tmp_path / f"mine{suffix}"
    path.write_text(text)
    cli.refuses("train", "x", "--preset", str(path), "--no-progress", says=says)
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_a_member_the_manifest_calls_complete_but_is_not_is_trained_again(runs_root, tmp_path):
    from workbench.sweeps import run_sweep

    path = tmp_path / "m.toml"
    path.write_text('base = "smoke"\n[set]\nepochs = 40\n[axes]\nmodel_seed = [0, 1]\n')
    sweep = run_sweep(path, root=runs_root, probe=False, progress=False)
    member = sweep.path / "model_seed0"
    workbench.train("half", "smoke", {"epochs": 40}, device="cpu", progress=False, root=tmp_path, stop_after=20)
    import shutil

    shutil.rmtree(member)
    shutil.copytree(tmp_path / "half", member)  # the same config, trained halfway: the manifest still says complete
    sweep = run_sweep(path, root=runs_root, probe=False, progress=False)
    assert [m["status"] for m in sweep.members] == ["complete", "complete"]
    assert store.open_run(member).is_complete


def test_an_import_file_whose_config_holds_inf_is_refused(cli, runs_root, tmp_path):
    from tests.legacy_sources import nanda_file

    contents = nanda_file(tmp_path / "run.pth", epochs=20, save_every=10)["contents"]
    contents["config"]["lr"] = float("inf")
    torch.save(contents, tmp_path / "inf.pth")
    cli.refuses("import", str(tmp_path / "inf.pth"), "inf", says="lr must be a finite number")
    assert not runs_root.exists() or not any(runs_root.iterdir())
