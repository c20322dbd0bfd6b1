"""Importing legacy runs: format-faithful files of each kind (tests/legacy_sources.py) become run
directories whose split, metrics and logits match the source, which the probes read unchanged;
unsafe, truncated and misfitting files are refused with nothing written."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
import torch

import workbench
from tests.legacy_sources import nanda_file, pairs, tl_demo_file
from workbench import cli
from workbench.tasks import grid_tokens


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One source file of each kind, trained once for the module (~20 s)."""
    folder = tmp_path_factory.mktemp("legacy")
    made = {"nanda": nanda_file(folder / "full_run_data.pth"), "demo": tl_demo_file(folder / "grokking_demo.pth")}
    made["demo_idx"] = tl_demo_file(folder / "demo_idx.pth", epochs=100, index_keys=("train_idx", "test_idx"))
    made["demo_bare"] = tl_demo_file(folder / "demo_noidx.pth", epochs=100, index_keys=None)
    made["folder"] = folder
    return made


def _import(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["import", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _bridge_logits(run, step) -> torch.Tensor:
    bridge = workbench.load_bridge(run, step)
    with torch.no_grad():
        return bridge(grid_tokens(run.config.p))[:, -1]


def test_nanda_full_run_data_imports_with_their_split_metrics_and_logits(files, runs_root, capsys):
    src = files["folder"] / "full_run_data.pth"
    code, out, err = _import(capsys, src, "nanda-src")
    assert code == 0, err
    run = workbench.open_run("nanda-src", runs_root)
    contents = files["nanda"]["contents"]
    cfg = run.config
    assert (cfg.operation, cfg.p, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp) == ("add", 23, 32, 4, 8, 128)
    assert (cfg.init, cfg.split_rule, cfg.attn_bias, cfg.lr) == ("nanda2023", "nanda2023", False, 1e-2)
    # the split: random.seed(0); random.shuffle of the pairs, first int(0.3 p^2) train
    data = [(i, j, 23) for i in range(23) for j in range(23)]
    random.seed(0)
    random.shuffle(data)
    assert run.split.train.tolist() == sorted(i * 23 + j for i, j, _ in data[: int(0.3 * 529)])
    # checkpoints saved after their epoch's update: found from the logged losses; the final model last
    assert run.steps == [e + 1 for e in contents["epochs"]] + [300]
    assert any("after epoch" in note for note in run.provenance["imported_from"]["notes"])
    metrics = run.metrics.set_index("step")
    assert metrics.loc[37, "train_loss"] == contents["train_losses"][37]
    assert metrics.loc[40, "test_loss"] == contents["test_losses"][4]
    assert metrics.loc[251, "train_acc"] > 0.9 and metrics.loc[251, "test_acc"] < 0.5
    assert metrics.loc[300, "train_loss"] == pytest.approx(contents["train_losses"][299], rel=0.05)  # computed here
    # parity with Nanda's own forward pass on every input (float32 both sides, as trained)
    model = files["nanda"]["model"]
    for i, epoch in enumerate(contents["epochs"]):
        step = epoch + 1
        model.load_state_dict(contents["state_dicts"][i])
        with torch.no_grad():
            theirs = model(pairs(23))[:, -1, :23]
        torch.testing.assert_close(_bridge_logits(run, step), theirs, atol=1e-4, rtol=0)
    info = run.provenance["imported_from"]
    assert info["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and info["format"] == "nanda2023"
    assert info["parity"]["max_abs_logit_diff"] <= 1e-5 and info["parity"]["inputs"] == 529
    assert "parity" in out and "nanda-src" in out
    # every probe reads it unchanged
    results = workbench.probe(run, progress=False)
    assert set(results.tables) >= {"fourier", "progress", "weights", "attention"}
    assert sorted(results.tables["progress"].step.unique()) == run.steps


def test_tl_demo_file_imports_with_its_indices_steps_and_pickled_config(files, runs_root, capsys):
    code, _, err = _import(capsys, files["folder"] / "grokking_demo.pth", "demo-src", "lr=1e-2")
    assert code == 0, err
    run = workbench.open_run("demo-src", runs_root)
    contents = files["demo"]["contents"]
    assert run.split.train.tolist() == sorted(contents["train_indices"].tolist())
    assert (run.config.p, run.config.model_seed, run.config.init, run.config.freeze_biases, run.config.lr) == (
        23, 999, "tl2", True, 1e-2)
    # checkpoint e holds the weights after e + 1 updates; test_losses[e] too; train_losses[e] before
    assert run.steps == [e + 1 for e in contents["checkpoint_epochs"]]
    metrics = run.metrics.set_index("step")
    assert metrics.loc[0, "train_loss"] == contents["train_losses"][0]
    assert metrics.loc[100, "test_loss"] == contents["test_losses"][99]
    assert metrics.loc[100, "train_loss"] == contents["train_losses"][100]
    model = files["demo"]["model"]
    for step, state in zip(run.steps, contents["checkpoints"], strict=True):
        model.load_state_dict(state)
        with torch.no_grad():
            theirs = model(pairs(23))[:, -1]
        torch.testing.assert_close(_bridge_logits(run, step), theirs, atol=1e-4, rtol=0)
    read = run.provenance["imported_from"]["config_read"]
    assert read["dtype"] == "torch.float32" and read["d_vocab_out"] == 23  # the TL 2.x object, read as data


@pytest.mark.parametrize("name", ["demo_idx", "demo_bare"])
def test_demo_variants_without_the_index_keys_get_the_same_split(files, runs_root, capsys, name):
    src = files["folder"] / ("demo_idx.pth" if name == "demo_idx" else "demo_noidx.pth")
    code, out, err = _import(capsys, src, name, "lr=1e-2")
    assert code == 0, err
    assert workbench.open_run(name, runs_root).split.train.tolist() == sorted(files[name]["train_idx"].tolist())
    assert ("torch.randperm" in out) == (name == "demo_bare")


def test_a_wrong_split_seed_is_caught_by_the_logged_losses(files, runs_root, capsys):
    code, _, err = _import(capsys, files["folder"] / "demo_noidx.pth", "wrong", "split_seed=1")
    assert code == 2 and "does not reproduce the source's" in err and len(err.strip().splitlines()) == 1
    assert not (runs_root / "wrong").exists()


def test_bare_tl2_state_dicts_import_with_sizes_from_their_shapes(files, runs_root, capsys, tmp_path):
    contents = files["demo"]["contents"]
    torch.save(contents["model"], tmp_path / "model.pt")
    code, _, err = _import(capsys, tmp_path / "model.pt", "bare", "epochs=300", "freeze_biases=true")
    assert code == 0, err
    run = workbench.open_run("bare", runs_root)
    assert (run.steps, run.config.p, run.config.d_head) == ([300], 23, 8)
    torch.testing.assert_close(_bridge_logits(run, 300), files["demo"]["model"](pairs(23))[:, -1].detach(), atol=1e-4, rtol=0)
    torch.save(contents["checkpoints"], tmp_path / "list.pt")
    code, _, err = _import(capsys, tmp_path / "list.pt", "bare-list", "ckpt_every=50")
    assert code == 0, err
    assert workbench.open_run("bare-list", runs_root).steps == [0, 50, 100, 150, 200, 250]


class _Shell:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_file_that_would_run_a_command_is_refused_by_name(files, runs_root, capsys, tmp_path):
    evil = _Shell()
    evil.marker = tmp_path / "pwned"
    torch.save({"model": files["demo"]["contents"]["model"], "config": evil}, tmp_path / "evil.pth")
    code, _, err = _import(capsys, tmp_path / "evil.pth", "evil")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "evil.pth" in err and "system" in err and "allowlist" in err
    assert not evil.marker.exists() and not (runs_root / "evil").exists()


def test_truncated_foreign_and_misfitting_files_are_refused_with_nothing_written(files, runs_root, capsys, tmp_path):
    whole = (files["folder"] / "full_run_data.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    contents = dict(files["nanda"]["contents"])
    contents["state_dicts"] = [dict(sd) for sd in contents["state_dicts"]]
    contents["state_dicts"][2]["blocks.0.mlp.W_in"] = torch.zeros(7, 32)
    torch.save(contents, tmp_path / "misfit.pth")
    cases = {"cut.pth": "not a complete torch file", "notes.txt": "not a complete torch file",
             "misfit.pth": "blocks.0.mlp.W_in", "missing.pth": "it does not exist"}
    for name, message in cases.items():
        code, _, err = _import(capsys, tmp_path / name, "bad")
        assert code == 2 and message in err and name in err and len(err.strip().splitlines()) == 1, err
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_an_existing_run_is_never_overwritten(files, runs_root, capsys, smoke_run):
    workbench.train("taken", "smoke", {"epochs": 5}, device="cpu", progress=False, root=runs_root)
    before = sorted(p.name for p in (runs_root / "taken" / "steps").iterdir())
    code, _, err = _import(capsys, files["folder"] / "full_run_data.pth", "taken")
    assert code == 2 and "already exists" in err
    assert sorted(p.name for p in (runs_root / "taken" / "steps").iterdir()) == before


# ------------------------------------------------------------------ files as the original code writes them
@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """Files as the original code writes them (see tests/legacy_sources.py): a TL demo file whose
    config class lives at TL 3.3+'s path, a Nanda file whose config is their Config object pickled
    from a package module, one without the final model, and one whose checkpoints alias the live
    weights."""
    from tests.legacy_sources import TL33_CONFIG_MODULE

    folder = tmp_path_factory.mktemp("original")
    made = {"demo33": tl_demo_file(folder / "demo33.pth", epochs=100, config_module=TL33_CONFIG_MODULE),
            "nanda_obj": nanda_file(folder / "nanda_obj.pth", config_module="pm.transformers"),
            "aliased": nanda_file(folder / "aliased.pth", epochs=120, aliased=True)}
    contents = dict(made["nanda_obj"]["contents"])
    del contents["model"]  # no final model: the run's state stops at the last checkpoint, before epochs
    torch.save(contents, folder / "nanda_nomodel.pth")
    made["folder"] = folder
    return made


@pytest.mark.parametrize(("file", "extra"), [("demo33.pth", ["lr=1e-2"]), ("nanda_obj.pth", [])])
def test_files_the_original_code_wrote_import_probe_report_and_info(original, files, runs_root, capsys, file, extra):
    """TL 2.x-3.x configs hold numpy float64 fields (and so numpy dtypes) and, from TL 3.3, live at
    another module path; Nanda's Config may come from any module. All are read as data."""
    sources = {"demo33.pth": original["folder"] / "demo33.pth", "nanda_obj.pth": original["folder"] / "nanda_obj.pth"}
    code, out, err = _import(capsys, sources[file], "orig", *extra)
    assert code == 0, err
    read = workbench.open_run("orig", runs_root).provenance["imported_from"]["config_read"]
    if file == "demo33.pth":
        assert read["initializer_range"] == pytest.approx(0.8 / 32**0.5) and read["attn_scale"] == pytest.approx(8**0.5)
        assert read["__class__"] == "transformer_lens.config.hooked_transformer_config.HookedTransformerConfig"
    else:
        assert read["__class__"] == "pm.transformers.Config" and read["device"] == "cpu"
    assert cli.main(["probe", "orig", "--no-progress"]) == 0
    assert cli.main(["report", "orig", "--no-images"]) == 0
    assert cli.main(["info", "orig"]) == 0
    assert "last eval step" in capsys.readouterr().out


def test_the_tl2_demo_file_with_numpy_fields_reads_them_as_plain_numbers(files, runs_root, capsys):
    code, _, err = _import(capsys, files["folder"] / "grokking_demo.pth", "np-demo", "lr=1e-2")
    assert code == 0, err
    read = workbench.open_run("np-demo", runs_root).provenance["imported_from"]["config_read"]
    assert isinstance(read["initializer_range"], float) and isinstance(read["attn_scale"], float)


def test_checkpoints_that_alias_the_live_weights_are_refused_for_what_they_are(original, runs_root, capsys):
    code, _, err = _import(capsys, original["folder"] / "aliased.pth", "aliased")
    assert code == 2 and err.count("\n") == 1 and "are one and the same weights" in err and "deepcopy" in err
    assert "split" not in err and not (runs_root / "aliased").exists()


def test_a_split_checkable_only_on_the_train_loss_says_so(files, runs_root, capsys):
    """Nanda's loop logs the test loss every 10 epochs and checkpoints after epochs 0, 50, ...: no
    checkpoint's step has a logged test loss, so the split is checked on the train loss alone."""
    code, out, err = _import(capsys, files["folder"] / "full_run_data.pth", "nanda-split")
    assert code == 0, err
    check = workbench.open_run("nanda-split", runs_root).provenance["imported_from"]["split_check"]
    assert set(check["recomputed"]) == {"train"} and "test set was not checked" in check["only"]
    assert "note: split checked on the train loss only" in out


def test_an_imported_run_is_complete_as_imported_unless_extended_explicitly(original, runs_root, capsys):
    code, _, err = _import(capsys, original["folder"] / "nanda_nomodel.pth", "imp")
    assert code == 0, err
    run = workbench.open_run("imp", runs_root)
    logged = (run.path / "metrics.jsonl").read_bytes()
    assert run.state_step < run.config.epochs
    assert cli.main(["train", "imp", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--extend-imported" in err and "complete as imported" in err
    assert (run.path / "metrics.jsonl").read_bytes() == logged
    assert cli.main(["train", "imp", "--extend-imported", "--no-progress"]) == 0
    assert (run.path / "metrics.jsonl").read_bytes().startswith(logged)  # the imported log stands, whole
    assert workbench.open_run("imp", runs_root).is_complete


def test_a_complete_imported_run_trains_on_only_when_given_more_epochs_and_extend(original, runs_root, capsys):
    """Nanda's file with its final model: the run is complete as imported; `train --extend-imported
    epochs=N` raises its epochs (config, state identity and provenance) and trains on to N, keeping
    the imported log and checkpoints; fewer epochs, or more without the flag, are refused."""
    code, _, err = _import(capsys, original["folder"] / "nanda_obj.pth", "whole")
    assert code == 0, err
    run = workbench.open_run("whole", runs_root)
    assert run.is_complete
    old, logged = run.config.epochs, (run.path / "metrics.jsonl").read_bytes()
    kept = {s: run.step_path(s).read_bytes() for s in run.steps}
    assert cli.main(["train", "whole", f"epochs={old + 20}", "--no-progress"]) == 2
    assert "different config" in capsys.readouterr().err
    assert cli.main(["train", "whole", "--extend-imported", f"epochs={old}", "--no-progress"]) == 0  # nothing to do
    assert cli.main(["train", "whole", "--extend-imported", f"epochs={old - 1}", "--no-progress"]) == 2
    assert "does not extend" in capsys.readouterr().err
    assert (run.path / "metrics.jsonl").read_bytes() == logged
    assert cli.main(["train", "whole", "--extend-imported", f"epochs={old + 20}", "--no-progress"]) == 0, \
        capsys.readouterr().err
    run = workbench.open_run("whole", runs_root)
    assert run.is_complete and run.config.epochs == old + 20 and run.metrics.step.max() == old + 20
    assert (run.path / "metrics.jsonl").read_bytes().startswith(logged)
    assert all(run.step_path(s).read_bytes() == b for s, b in kept.items())
    assert run.provenance["extended"] == [{"from_epochs": old, "to_epochs": old + 20, "at_step": old}]
    assert cli.main(["train", "whole", "--no-progress"]) == 0  # resumable and complete under its new identity


def test_extend_imported_is_refused_for_a_run_that_was_not_imported(smoke_run):
    before = (smoke_run.path / "config.json").read_bytes()
    with pytest.raises(workbench.UsageError, match="was not imported"):
        workbench.train(smoke_run.name, overrides={"epochs": 999}, root=smoke_run.path.parent, extend_imported=True,
                        progress=False)
    assert (smoke_run.path / "config.json").read_bytes() == before
