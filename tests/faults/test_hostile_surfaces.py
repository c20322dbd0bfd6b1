"""Round two of hostile input, on the newer surfaces: resume states and logs that disagree with
the run, import, extend, forecast, calibration and definition files, double descent, rff, Ray.
Each case: exit 2, one line naming the problem and what to do, and every file as it was."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import workbench
from tests.faults.conftest import digest
from workbench import store


# ----------------------------------------------------------------------------- the run's own files
def _unopenable(monkeypatch, name: str) -> None:
    """Make every file called ``name`` fail to open with EACCES, as a mode-000 file does for a user
    without CAP_DAC_OVERRIDE (these tests may run as root, where chmod 000 still reads)."""
    import builtins

    real = builtins.open

    def guarded(path, *args, **kwargs):
        if os.path.basename(str(path)) == name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr("workbench.inputs.open", guarded, raising=False)


def test_an_unreadable_state_is_named_as_permission_and_no_advice_replaces_it(cli, smoke_copy, runs_root, monkeypatch):
    _unopenable(monkeypatch, store.STATE)
    before = digest(runs_root)
    line = cli.refuses("train", "r", "--no-progress", says="cannot be read (permission denied)")
    assert "from-last-checkpoint" not in line and "damaged" not in line
    assert digest(runs_root) == before


@pytest.mark.parametrize("what", [store.STATE, store.SPLIT])
def test_a_fifo_or_a_folder_in_place_of_a_run_file_is_named_as_such(cli, smoke_copy, runs_root, what):
    path = smoke_copy / what
    path.unlink()
    os.mkfifo(path)  # a read of it would block for ever
    line = cli.refuses("train", "r", "--no-progress", says="is not a regular file")
    assert "from-last-checkpoint" not in line
    path.unlink()
    path.mkdir()
    cli.refuses("info", "r", says="is a folder, not a file")


def test_a_twins_later_state_is_refused_by_train_info_and_runs(cli, runs_root):
    workbench.train("twin", "smoke", {"epochs": 300}, device="cpu", progress=False, root=runs_root)
    workbench.train("half", "smoke", {"epochs": 300}, device="cpu", progress=False, root=runs_root, stop_after=150)
    (runs_root / "half" / store.STATE).write_bytes((runs_root / "twin" / store.STATE).read_bytes())
    before = digest(runs_root / "half")
    for command in (["train", "half", "--no-progress"], ["info", "half"], ["forecast", "half"], ["probe", "half", "--no-progress"]):
        cli.refuses(*command, says="where the run has no checkpoint")
    code, out, _ = cli("runs")
    line = next(x for x in out.splitlines() if x.startswith("half"))
    assert code == 0 and line.split()[1] == "DAMAGED:" and "where the run has no checkpoint" in line, line
    assert digest(runs_root / "half") == before


def test_a_metrics_log_cut_in_half_is_refused_everywhere(cli, smoke_copy, runs_root):
    metrics = smoke_copy / store.METRICS
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[: len(lines) // 2]))
    before = digest(runs_root)
    for command in (["train", "r", "--no-progress"], ["probe", "r", "--no-progress"], ["info", "r"], ["forecast", "r"]):
        cli.refuses(*command, says="lacks")
    assert digest(runs_root) == before


def test_from_last_checkpoint_on_a_healthy_state_is_recorded_in_provenance(cli, runs_root):
    assert cli("train", "h", "--preset", "smoke", "epochs=150", "--stop-after", "50", "--no-progress")[0] == 0
    assert cli("train", "h", "--from-last-checkpoint", "--no-progress")[0] == 0
    resets = json.loads((runs_root / "h" / store.PROVENANCE).read_text()).get("resets")
    assert resets and resets[0]["from_checkpoint"] == 50, resets


# ----------------------------------------------------------------------------- import and extend
def _nanda(tmp_path):
    from tests.legacy_sources import nanda_file

    return nanda_file(tmp_path / "run.pth", epochs=20, save_every=10)["contents"]


@pytest.mark.parametrize(("change", "says"), [
    (lambda c: c["state_dicts"][0].update({k: v.to(torch.int64) for k, v in c["state_dicts"][0].items()}),
     "holds weights of an integer dtype"),
    (lambda c: c["config"].update(p="abc"), "p must be a whole number"),
    (lambda c: c.update(train_losses=[math.nan] * len(c["train_losses"])), "none is a finite number"),
    (lambda c: c.update(epochs=[math.inf] * len(c["epochs"])), "cannot import"),
])
def test_an_import_file_with_wrong_numbers_is_refused_and_nothing_is_written(cli, runs_root, tmp_path, change, says):
    contents = _nanda(tmp_path)
    change(contents)
    torch.save(contents, tmp_path / "bad.pth")
    cli.refuses("import", str(tmp_path / "bad.pth"), "bad", says=says)
    assert not (runs_root / "bad").exists()


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: os.mkfifo(p), "is not a regular file"), (lambda p: p.mkdir(), "is a folder"),
    (lambda p: None, "does not exist"),
])
def test_import_of_something_that_is_not_a_file_says_what_it_is(cli, runs_root, tmp_path, make, says):
    path = tmp_path / "thing.pth"
    make(path)
    cli.refuses("import", str(path), "x", says=says)
    cli.refuses("import", "/dev/zero", "x", says="is not a regular file")
    assert not (runs_root / "x").exists()


def test_extend_imported_on_a_name_that_does_not_exist_is_refused(cli, runs_root):
    cli.refuses("train", "nobody", "--extend-imported", "epochs=500", "--no-progress", says="nobody")
    assert not (runs_root / "nobody").exists()


def test_a_forecast_of_a_one_checkpoint_import_says_how_to_get_a_second(cli, runs_root, tmp_path):
    contents = _nanda(tmp_path)
    contents["state_dicts"], contents["epochs"] = contents["state_dicts"][-1:], contents["epochs"][-1:]
    torch.save(contents, tmp_path / "one.pth")
    assert cli("import", str(tmp_path / "one.pth"), "one")[0] == 0
    run = store.open_run("one", runs_root)
    if len(run.steps) < 2:
        line = cli.refuses("forecast", "one", says="checkpoint")
        assert "make train RUN=one" not in line or "EXTEND=1" in line or "import" in line, line


# ----------------------------------------------------------------------------- forecast, sweeps, double descent
def test_a_horizon_before_the_step_is_refused(cli, smoke_copy):
    cli.refuses("forecast", "r", "--at", "150", "--horizon", "100", says="horizon")


def test_a_sweep_key_in_both_set_and_axes_is_refused(cli, runs_root, tmp_path):
    path = tmp_path / "both.toml"
    path.write_text('base = "smoke"\n[set]\nlr = 1e-3\n[axes]\nlr = [1e-3, 1e-2]\n')
    cli.refuses("sweep", str(path), "--no-probe", "--no-progress", says="lr is given in both [set] and [axes]")
    assert not (runs_root / "both").exists()


def test_an_unreachable_ray_head_is_refused_before_the_sweep_folder_is_written(cli, runs_root, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    path = tmp_path / "tiny.toml"
    path.write_text('base = "smoke"\n[axes]\nlr = [1e-3, 1e-2]\n')
    cli.refuses("sweep", str(path), "--executor", "ray", "--no-shared-disk", "--no-probe", "--no-progress",
                says="no Ray head answers")
    assert not (runs_root / "tiny").exists()
    monkeypatch.setenv("RAY_ADDRESS", "not-an-address")
    cli.refuses("sweep", str(path), "--executor", "ray", "--no-probe", "--no-progress", says="is not host:port")


def test_double_descent_checks_its_out_and_its_sweeps_before_any_work(cli, runs_root, tmp_path):
    cli.refuses("double-descent", "--out", str(tmp_path), says="is a folder")
    cli.refuses("double-descent", "--sweeps", "nothing-here", "--out", str(tmp_path / "dd.md"), says="no sweep at")
    path = tmp_path / "lrs.toml"
    path.write_text('base = "smoke"\n[set]\nepochs = 5\n[axes]\nlr = [1e-3, 1e-2]\n')
    assert cli("sweep", str(path), "--no-probe", "--no-progress")[0] == 0
    before = digest(runs_root)
    cli.refuses("double-descent", "--sweeps", "lrs", "--out", str(tmp_path / "dd.md"), says="varies no d_model or frac_train")
    assert digest(runs_root) == before and not (tmp_path / "dd.md").exists()


@pytest.mark.parametrize("bad", [["--ridge", "nan"], ["--ridge", "-1"], ["--features", "0"], ["--features", "abc"],
                                 ["--features", "1000000000"], ["--frac-train", "nan"], ["--frac-train", "2"],
                                 ["--label-noise", "1"], ["--label-noise", "nan"], ["--p", "1"], ["--p", "100000"],
                                 ["--operation", "pow"], ["--dataset", "digits", "--n-train", "0"]])
def test_rff_refusals_leave_no_output_folder(cli, tmp_path, bad):
    out = tmp_path / "rff-out"
    cli.refuses("rff", "--out", str(out), "--no-images", *bad, says="")
    assert not out.exists()


# ----------------------------------------------------------------------------- fuzz: every option, every reader
MALFORMED = ["nan", "inf", "-inf", "-1", "0", "1e400", "1e30", "abc", "", "[1]", "0x10", "1_000_000_000_000"]
OPTIONS = {  # command (with a run r where it needs one) -> options that take a number
    ("forecast", "r"): ["--at", "--horizon"],
    ("train", "x", "--preset", "smoke", "--no-progress"): ["--stop-after"],
    ("sweep", "SWEEPFILE", "--no-probe", "--no-progress"): ["--workers", "--group-size", "--stop-hopeless", "--patience"],
    ("rff", "--out", "RFFOUT", "--no-images"): ["--p", "--frac-train", "--ridge", "--label-noise", "--seed"],
}
VALID = {("--at", "0"), ("--horizon", "1_000_000_000_000"), ("--stop-after", "0"), ("--stop-after", "1_000_000_000_000"),
         ("--ridge", "0"), ("--ridge", "1e30"), ("--ridge", "1_000_000_000_000"), ("--label-noise", "0"),
         ("--seed", "-1"), ("--seed", "0"), ("--seed", "1_000_000_000_000")}  # values these options take (Python's int() reads 1_000)


def _cases():
    for command, options in OPTIONS.items():
        for option in options:
            for value in MALFORMED:
                if (option, value) not in VALID:
                    yield command, option, value


@pytest.mark.parametrize(("command", "option", "value"), list(_cases()), ids=lambda v: str(v)[:24])
def test_a_malformed_number_for_any_option_is_one_line_and_writes_nothing(cli, smoke_copy, runs_root, tmp_path,
                                                                          command, option, value):
    sweep = tmp_path / "fz.toml"
    sweep.write_text('base = "smoke"\n[set]\nepochs = 2\n[axes]\nlr = [1e-3]\n')
    args = [str(sweep) if a == "SWEEPFILE" else str(tmp_path / "rff") if a == "RFFOUT" else a for a in command]
    before = digest(runs_root)
    code, _, err = cli(*args, f"{option}={value}")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), (option, value, err)
    assert digest(runs_root) == before and not (tmp_path / "rff").exists()


HOSTILE_FILES = {
    "empty": b"", "deep json": b"[" * 5000 + b"]" * 5000, "deep toml": b"a = " + b"[" * 5000 + b"]" * 5000,
    "not utf-8": b"\xff\xfe\x00", "huge": b" " * 5_000_000, "a list": b"[1, 2, 3]", "a number": b"1e999",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_FILES))
@pytest.mark.parametrize("reader", ["calibration", "preset", "sweep"])
def test_every_file_reader_refuses_hostile_contents_in_one_line(cli, smoke_copy, runs_root, tmp_path, kind, reader):
    suffix = {"calibration": ".json", "preset": ".json", "sweep": ".toml"}[reader]
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(HOSTILE_FILES[kind])
    command = {"calibration": ["forecast", "r", "--calibration", str(path)],
               "preset": ["train", "x", "--preset", str(path), "--no-progress"],
               "sweep": ["sweep", str(path), "--no-probe", "--no-progress"]}[reader]
    before = digest(runs_root)
    cli.refuses(*command, says="")
    assert digest(runs_root) == before


@pytest.mark.parametrize("reader", ["calibration", "preset", "sweep"])
def test_every_file_reader_refuses_a_fifo_without_opening_it(cli, smoke_copy, tmp_path, reader):
    suffix = {"calibration": ".json", "preset": ".json", "sweep": ".toml"}[reader]
    path = tmp_path / f"pipe{suffix}"
    os.mkfifo(path)
    command = {"calibration": ["forecast", "r", "--calibration", str(path)],
               "preset": ["train", "x", "--preset", str(path), "--no-progress"],
               "sweep": ["sweep", str(path), "--no-probe", "--no-progress"]}[reader]
    cli.refuses(*command, says="is not a regular file")


def test_the_state_check_agrees_with_a_state_rewritten_at_its_own_step(cli, runs_root):
    """The check is not over-eager: a run's own state, re-saved with the same tensors, still resumes."""
    assert cli("train", "own", "--preset", "smoke", "epochs=150", "--stop-after", "50", "--no-progress")[0] == 0
    path = runs_root / "own" / store.STATE
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
    save_file(load_file(path), path, metadata=meta)
    assert cli("train", "own", "--no-progress")[0] == 0
    shutil.rmtree(runs_root / "own")
