"""Bad input: one line on stderr, exit status 2, no traceback, nothing created or changed."""

import pytest

import workbench
from tests.conftest import snapshot
from workbench.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "x", "--preset", "nope"], "unknown preset 'nope'; valid presets:"),
        (["train", "x", "operation=pow"], "unknown operation 'pow'; valid operations:"),
        (["train", "x", "operation=div", "p=20"], "needs a prime p"),
        (["train", "x", "frac_train=1.5"], "frac_train must lie strictly between 0 and 1"),
        (["train", "x", "frac_train=0"], "frac_train must lie strictly between 0 and 1"),
        (["train", "a/b"], "invalid run name 'a/b'"),
        (["train", "../x"], "invalid run name '../x'"),
        (["train", ".."], "invalid run name"),
        (["train", "x..y"], "invalid run name"),
        (["train", "-x"], "required: run"),
        (["train", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["runs", "extra=1"], "unrecognized arguments: extra=1"),
        (["train", "x", "bogus=1"], "unknown config key(s) bogus; valid keys:"),
        (["train", "x", "epochs"], "not of the form key=value"),
        (["train", "x", "--device", "tpu"], "unknown device 'tpu'"),
        (["info", "missing"], "no run at"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(runs_root, capsys, argv, message):
    before = snapshot(runs_root)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert snapshot(runs_root) == before
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_missing_run_lists_the_runs_that_exist(runs_root, capsys):
    workbench.train("there", "smoke", {"epochs": 5}, device="cpu", progress=False, root=runs_root)
    workbench.train("also-here", "smoke", {"epochs": 5}, device="cpu", progress=False, root=runs_root)
    assert main(["info", "not-there"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.rstrip().endswith(f"runs in {runs_root}: also-here, there"), err
    with pytest.raises(workbench.UsageError, match="no run at .*not-there; runs in .*: also-here, there$"):
        workbench.open_run("not-there", runs_root)


def test_second_trainer_on_a_busy_run_is_refused(runs_root):
    from workbench import store

    run = workbench.train("busy", "smoke", {"epochs": 5}, device="cpu", progress=False, root=runs_root)
    with store.training_lock(run):
        with pytest.raises(workbench.UsageError, match="busy: another process is training it"):
            workbench.train("busy", device="cpu", progress=False, root=runs_root)
