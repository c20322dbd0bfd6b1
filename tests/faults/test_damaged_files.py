"""Damaged run files: a probe table cut in half, and a metrics log that is garbage, empty, missing or
holds a bad row. Each is refused in one line or measured again whole; nothing is trusted in part."""

from __future__ import annotations

import pytest

from tests.faults.conftest import digest
from workbench import store


def test_a_half_truncated_probe_table_is_measured_again_whole_with_a_note(cli, smoke_copy):
    table = store.probe_table_path(smoke_copy, "fourier")
    whole = table.read_bytes()
    table.write_bytes(whole[: len(whole) // 2])
    code, out, _ = cli("probe", "r", "--no-progress")
    assert code == 0 and f"NOTE: {table} was damaged" in out
    assert table.read_bytes() == whole  # every row back, the torn one replaced
    code, out, _ = cli("probe", "r", "--no-progress")
    assert code == 0 and "NOTE" not in out and "fourier 0" in out  # and trusted again once whole


def test_a_probe_table_swapped_for_another_valid_one_is_not_trusted(cli, smoke_copy):
    fourier, progress = store.probe_table_path(smoke_copy, "fourier"), store.probe_table_path(smoke_copy, "progress")
    whole = fourier.read_bytes()
    fourier.write_bytes(progress.read_bytes())  # a valid CSV with step and value columns, but not this table
    code, out, _ = cli("probe", "r", "--no-progress")
    assert code == 0 and f"NOTE: {fourier} was damaged" in out and fourier.read_bytes() == whole


DAMAGE = {
    "garbage": (lambda p: p.write_text("garbage\n"), "is damaged at line 1 (not JSON"),
    "empty": (lambda p: p.write_text(""), "is empty but the run has checkpoints up to step 150"),
    "missing": (lambda p: p.unlink(), "is missing but the run has checkpoints up to step 150"),
    "bad step": (lambda p: p.write_text(p.read_text().replace('"step": 10,', '"step": "abc",', 1)),
                 "is damaged at line 3 (step 'abc' is not a whole number"),
    "a line in the middle": (lambda p: p.write_text(p.read_text().replace("\n", "\n{torn\n", 5)),
                             "is damaged at line 2 (not JSON"),
    "a text value": (lambda p: p.write_text(p.read_text().replace('"train_acc": ', '"train_acc": "x", "y": ', 1)),
                     "is damaged at line 1 (train_acc not a number)"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", [["train", "r", "--no-progress"], ["probe", "r", "--no-progress"],
                                     ["report", "r", "--no-images"], ["info", "r"], ["forecast", "r"]])
def test_a_damaged_metrics_log_is_one_line_for_every_command_and_nothing_changes(cli, smoke_copy, runs_root, damage, command):
    metrics = smoke_copy / store.METRICS
    DAMAGE[damage][0](metrics)
    before = digest(runs_root)
    cli.refuses(*command, says=f"{metrics} {DAMAGE[damage][1]}")
    assert digest(runs_root) == before


def test_a_torn_last_line_is_what_a_crash_leaves_and_is_dropped_when_training_resumes(cli, runs_root):
    assert cli("train", "t", "--preset", "smoke", "epochs=150", "--stop-after", "50", "--no-progress")[0] == 0
    metrics = runs_root / "t" / store.METRICS
    metrics.write_bytes(metrics.read_bytes() + b'{"step": 55, "train_lo')
    assert cli("info", "t")[0] == 0
    assert cli("train", "t", "--no-progress")[0] == 0
    assert metrics.read_bytes().endswith(b"}\n") and b'"train_lo\n' not in metrics.read_bytes()
