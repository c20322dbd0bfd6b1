"""The run store: files get the user's permissions; a damaged file is one clear line, nothing lost."""

from __future__ import annotations

import os
import stat

import pytest

import workbench
from tests.conftest import snapshot
from workbench import store
from workbench.cli import main
from workbench.report import build_report


@pytest.fixture
def umask():
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _modes(root):
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if not p.name.startswith(".")}


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_run_files_get_the_permissions_of_a_plain_open(runs_root, umask, mask, file_mode, dir_mode):
    """Wrong answer 3: runs and reports were 0600/0700 whatever the umask."""
    umask(mask)
    run = workbench.train("shared", "smoke", {"epochs": 20, "ckpt_every": 10}, device="cpu", progress=False,
                          root=runs_root)
    workbench.probe(run, progress=False)
    build_report(run, formats=())
    modes = _modes(run.path)
    assert {"config.json", "state.safetensors", "steps/step_0000010.safetensors", "metrics.jsonl",
            "probes/fourier.csv", "probes/index.json", "report/index.html"} <= set(modes)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (dir_mode if (run.path / name).is_dir() else file_mode)}
    assert not wrong, wrong
    assert stat.S_IMODE(run.path.stat().st_mode) == dir_mode


def _damage(path, how):
    if how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"\x00not what it should be{")
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _one_line_error(capsys, *needles):
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in captured.err, (needle, captured.err)
    return captured.err


@pytest.fixture
def small_run(runs_root):
    return workbench.train("dmg", "smoke", {"epochs": 40, "ckpt_every": 10}, device="cpu", progress=False,
                           root=runs_root, stop_after=20)


@pytest.mark.parametrize("how", ["empty", "garbage", "truncated"])
def test_a_damaged_resume_state_is_one_line_and_a_way_out(small_run, runs_root, capsys, how):
    """Wrong answer 5: an empty state.safetensors made `train` die with a SafetensorError traceback."""
    _damage(small_run.path / store.STATE, how)
    before = snapshot(runs_root)
    assert main(["train", "dmg", "--no-progress"]) == 2
    _one_line_error(capsys, "state.safetensors is damaged", "--from-last-checkpoint")
    assert snapshot(runs_root) == before, "nothing written"
    # the way out the message gives works: resume from the last good checkpoint, to the end
    assert main(["train", "dmg", "--no-progress", "--from-last-checkpoint"]) == 0
    assert "rebuilt from the checkpoint at step 20" in capsys.readouterr().out
    assert small_run.is_complete and small_run.steps == [0, 10, 20, 30, 40]
    assert [r["step"] for r in small_run.metrics_rows if r["step"] > 20][:1] == [25]


@pytest.mark.parametrize("command", [["train", "dmg", "--no-progress"], ["probe", "dmg", "--no-progress"],
                                     ["info", "dmg"], ["report", "dmg", "--no-images"]])
def test_a_config_that_is_not_json_is_one_line(small_run, runs_root, capsys, command):
    """Wrong answer 5: a config.json that is not JSON made train and probe die with a JSONDecodeError."""
    (small_run.path / store.CONFIG).write_text('{"p": 23, "d_model":')
    before = snapshot(runs_root)
    assert main(command) == 2
    _one_line_error(capsys, "config.json is damaged (not JSON", "restore it from a copy")
    assert snapshot(runs_root) == before


@pytest.mark.parametrize("name, command, needle", [
    (store.SPLIT, ["probe", "dmg", "--no-progress"], "split.safetensors is damaged"),
    (store.SPLIT, ["train", "dmg", "--no-progress"], "split.safetensors is damaged"),
    (store.PROVENANCE, ["train", "dmg", "--no-progress"], "provenance.json is damaged"),
])
def test_other_damaged_run_files_are_one_line(small_run, runs_root, capsys, name, command, needle):
    _damage(small_run.path / name, "garbage")
    before = snapshot(runs_root)
    assert main(command) == 2
    _one_line_error(capsys, needle)
    assert snapshot(runs_root) == before


def test_damaged_probe_cache_files_are_rebuilt_and_said(small_run, capsys):
    first = workbench.probe(small_run, progress=False)
    (small_run.path / "probes" / "index.json").write_text("{not json")
    (small_run.path / "probes" / "progress.csv").write_bytes(b"\x00\x01garbage\n1,2\n3")
    assert main(["probe", "dmg", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "index.json was damaged (unreadable, or not what the cache index recorded); its results were recomputed" in out
    assert "progress.csv was damaged" in out
    again = small_run.probe_table("progress")
    assert again.equals(first.tables["progress"])


def test_damaged_probe_settings_are_one_line(small_run, runs_root, capsys):
    workbench.probe(small_run, progress=False)
    (small_run.path / "probes" / "settings.json").write_text('{"settings": {"neuron_threshold": 7}}')
    before = snapshot(runs_root)
    assert main(["probe", "dmg", "--no-progress"]) == 2
    _one_line_error(capsys, "settings.json are not valid (neuron_threshold must lie in [0, 1]", "delete the file")
    assert snapshot(runs_root) == before


def test_library_takes_the_runs_root_as_an_argument(tmp_path, monkeypatch):
    """Only the CLI reads WORKBENCH_CHECKPOINTS; the library goes where it is told."""
    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(tmp_path / "from-env"))
    run = workbench.train("rooted", "smoke", {"epochs": 5}, device="cpu", progress=False, root=tmp_path / "given")
    assert run.path == tmp_path / "given" / "rooted"
    assert not (tmp_path / "from-env").exists()
    assert store.list_runs(tmp_path / "given") == ["rooted"]
    assert workbench.open_run("rooted", tmp_path / "given").path == run.path


@pytest.mark.parametrize("text", ["{}", "[]", '{"sessions": 3}'])
def test_provenance_of_the_wrong_shape_is_one_line(small_run, runs_root, capsys, text):
    (small_run.path / store.PROVENANCE).write_text(text)
    before = snapshot(runs_root)
    assert main(["train", "dmg", "--no-progress"]) == 2
    _one_line_error(capsys, "provenance.json is damaged")
    assert snapshot(runs_root) == before
    assert main(["train", "dmg", "--no-progress", "--from-last-checkpoint"]) == 2, "checked before the state is rebuilt"
    assert snapshot(runs_root) == before


@pytest.mark.parametrize("text", ["[]", "null", "{}"])
def test_probe_settings_of_the_wrong_shape_are_one_line(small_run, runs_root, capsys, text):
    workbench.probe(small_run, progress=False)
    (small_run.path / "probes" / "settings.json").write_text(text)
    before = snapshot(runs_root)
    assert main(["probe", "dmg", "--no-progress"]) == 2
    _one_line_error(capsys, "settings.json is damaged")
    assert snapshot(runs_root) == before


def test_report_on_a_run_whose_last_checkpoint_is_damaged(small_run, capsys):
    path = small_run.step_path(20)
    path.write_bytes(path.read_bytes()[:100])
    assert main(["report", "dmg", "--no-images"]) == 1  # written, but not whole: the exit says so
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"note: the report leaves out the checkpoint at step 20: checkpoint {path} is unreadable" in captured.err
    page = (small_run.path / "report" / "index.html").read_text()
    assert "step 10" in page and "after (final): step 10" in page
    assert "Checkpoints left out (unreadable)</b>: step 20" in page
