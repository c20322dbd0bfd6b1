"""Faults of the environment: a full disk, an unreadable file, a runs root that is a file, files deleted or
standing in a run's place, a creation killed half-way, a hostile name, a killed sweep with workers."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import workbench
from tests.faults.conftest import digest
from workbench import store

ROOT = Path(__file__).resolve().parents[2]


def test_a_disk_that_fills_mid_run_is_one_line_and_training_resumes_bit_identically(cli, runs_root, monkeypatch):
    reference = workbench.train("ref", "smoke", {"epochs": 100}, device="cpu", progress=False, root=runs_root)
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):  # the 30th durable write finds the disk full
        calls["n"] += 1
        if calls["n"] == 30:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)
    monkeypatch.setattr("workbench.store.files.os.fsync", fsync)
    line = cli.refuses("train", "full", "--preset", "smoke", "epochs=100", "--no-progress", says="No space left on device")
    assert "free some space and run again" in line and "nothing was lost" in line
    assert not list((runs_root / "full").rglob(".*.tmp")), "no half-written temporary is left"
    monkeypatch.setattr("workbench.store.files.os.fsync", real_fsync)  # space freed
    assert cli("train", "full", "--no-progress")[0] == 0
    resumed = store.open_run(runs_root / "full")
    assert resumed.steps == reference.steps
    for step in reference.steps:
        a, b = load_file(reference.step_path(step)), load_file(resumed.step_path(step))
        assert all(torch.equal(a[k], b[k]) for k in a), step


def test_an_unreadable_config_is_one_line_naming_it_and_the_cause(cli, smoke_copy, monkeypatch):
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == store.CONFIG:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "read_text", read_text)
    for command in (["train", "r", "--no-progress"], ["probe", "r", "--no-progress"], ["info", "r"]):
        cli.refuses(*command, says=f"{smoke_copy / store.CONFIG} cannot be read (Permission denied)")


def test_a_runs_root_that_is_a_file_is_one_line(cli, tmp_path, monkeypatch):
    root = tmp_path / "afile"
    root.write_text("not a folder")
    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(root))
    for command in (["train", "x", "--preset", "smoke", "--no-progress"], ["runs"]):
        cli.refuses(*command, says=f"the runs root {root} is a file")
    assert root.read_text() == "not a folder"


@pytest.mark.parametrize(("damage", "says"), [
    ("provenance", "provenance.json is missing; restore it from a copy of this run"),
    ("config", "exists but holds no run (no config.json)"),
    ("folder", "exists but holds no run (no config.json)"),
    ("file", "is a file, not a run folder"),
])
def test_what_stands_in_a_runs_place_is_named_not_blamed_on_another_process(cli, smoke_copy, runs_root, damage, says):
    if damage == "provenance":
        (smoke_copy / store.PROVENANCE).unlink()
    elif damage == "config":
        (smoke_copy / store.CONFIG).unlink()
    elif damage == "folder":
        shutil.rmtree(smoke_copy)
        smoke_copy.mkdir()
        (smoke_copy / "notes.txt").write_text("mine")
    else:
        shutil.rmtree(smoke_copy)
        smoke_copy.write_text("mine")
    before = digest(runs_root)
    line = cli.refuses("train", "r", "--preset", "smoke", "epochs=150", "--no-progress", says=says)
    assert "another process" not in line and digest(runs_root) == before


def test_a_creation_killed_half_way_is_cleaned_by_the_next_command_but_a_live_one_is_not(cli, smoke_copy, runs_root):
    from workbench.store.files import exclusive_lock

    dead = runs_root / f".imp{store.create.CREATING}abc"
    shutil.copytree(smoke_copy, dead)  # what a killed import leaves: a whole-looking hidden run
    (dead / ".lock").touch()
    live = runs_root / f".other{store.create.CREATING}def"
    live.mkdir()
    with exclusive_lock(live / ".lock", "busy"):  # a creator at work holds its folder's lock
        code, out, _ = cli("runs")
        assert code == 0 and out.splitlines()[0].startswith("r ") and not dead.exists() and live.exists()
    code, _, _ = cli("runs")
    assert not live.exists()  # its creator is gone now


def test_runs_lists_every_run_and_marks_the_damaged_one(cli, smoke_copy, runs_root):
    shutil.copytree(smoke_copy, runs_root / "s")
    (smoke_copy / store.CONFIG).write_text("{garbage")
    code, out, _ = cli("runs")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("r") and "DAMAGED" in lines[0] and lines[1].startswith("s ")


@pytest.mark.parametrize("name", ["nl\n", "tab\t", "a/b", "..", ".hidden", "-x", "x" * 101, "sp ace"])
def test_a_run_name_that_is_not_one_plain_folder_name_is_refused(cli, runs_root, name):
    says = "unrecognized arguments: -x" if name == "-x" else "invalid run name"  # an option, to the parser
    cli.refuses("train", name, "--preset", "smoke", "epochs=5", "--no-progress", says=says)
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_steps_that_select_nothing_are_refused(cli, smoke_copy):
    cli.refuses("probe", "r", "--steps", "300:0", "--no-progress", says="select no checkpoint")


def test_the_makefile_passes_values_to_the_shell_quoted(tmp_path):
    """RUN=';touch FILE' must reach the workbench as a (refused) name, never run as a command."""
    trap = tmp_path / "INJECTED"
    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(tmp_path / "root")}
    for var in ("RUN", "PRESET", "SET"):
        values = {"RUN": "x", var: f";touch {trap}"}
        proc = subprocess.run(["make", "-s", "-o", ".venv/.setup-done", "train", *(f"{k}={v}" for k, v in values.items()),
                               "PY=echo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not trap.exists(), f"{var} ran a command"
        assert f";touch {trap}" in proc.stdout  # handed over whole, as one argument


@pytest.mark.parametrize("how", ["command line", "environment"])
def test_a_make_function_in_a_value_is_never_expanded(tmp_path, how):
    """RUN='$(shell touch FILE)': make itself would run it while expanding the variable, before any
    shell quoting; the Makefile reads every user variable as the text given."""
    trap = tmp_path / "EXPANDED"
    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(tmp_path / "root")}
    for var in ("RUN", "SET", "AT"):
        value = f"$(shell touch {trap})"
        given = {"RUN": "x", var: value}
        args = [f"{k}={v}" for k, v in given.items()] if how == "command line" else []
        proc = subprocess.run(["make", "-s", "-o", ".venv/.setup-done", "forecast" if var == "AT" else "train", *args, "PY=echo"],
                              cwd=ROOT, env={**env, **({} if args else given)}, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert not trap.exists(), f"{var} from the {how} was expanded by make"
        assert value in proc.stdout


@pytest.mark.slow
def test_a_sweep_killed_with_workers_leaves_no_worker_and_completes_when_run_again(runs_root, tmp_path):
    from tests.sweeps.test_sweep import _definition, _same_run_files
    from workbench.sweeps import run_sweep

    text = 'base = "smoke"\n[set]\nepochs = 3000\nckpt_every = 500\n[axes]\nd_mlp = [32, 64]\n'
    path = _definition(tmp_path, "orphans", text)
    reference = run_sweep(path, root=runs_root / "ref", probe=False, progress=False)
    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(runs_root)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "sweep", str(path), "--workers", "2", "--no-probe",
                             "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    member = runs_root / "orphans" / "d_mlp32"
    deadline = time.time() + 120
    while time.time() < deadline and not ((member / store.STATE).exists() and (store.Run(member).state_step or 0) >= 500):
        time.sleep(0.05)
    try:
        workers = [pid for pid in _children(proc.pid) if "resource_tracker" not in _cmdline(pid)]
        assert len(workers) == 2, f"the driver runs two workers: {[_cmdline(pid)[:80] for pid in workers]}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its driver"
    from workbench.cli import main

    assert main(["sweep", str(path), "--no-probe", "--no-progress"]) == 0
    for m in reference.members:
        _same_run_files(reference.path / m["name"], runs_root / "orphans" / m["name"])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_small_file_claiming_a_huge_model_is_refused_before_anything_is_allocated(cli, runs_root, tmp_path):
    """Stride-0 tensors claiming p = 10^6: a file of under a megabyte that would need terabytes."""
    p, d = 10**6, 32
    big = lambda *shape: torch.zeros(1).expand(*shape)  # noqa: E731 - one stored number, any shape
    sd = {"embed.W_E": big(p + 1, d), "pos_embed.W_pos": torch.zeros(3, d), "unembed.W_U": big(d, p), "unembed.b_U": big(p)}
    for name in ("W_Q", "W_K", "W_V"):
        sd[f"blocks.0.attn.{name}"] = torch.zeros(4, d, 8)
    sd["blocks.0.attn.W_O"] = torch.zeros(4, 8, d)
    sd.update({"blocks.0.attn.b_Q": torch.zeros(4, 8), "blocks.0.attn.b_K": torch.zeros(4, 8),
               "blocks.0.attn.b_V": torch.zeros(4, 8), "blocks.0.attn.b_O": torch.zeros(d),
               "blocks.0.mlp.W_in": torch.zeros(d, 128), "blocks.0.mlp.b_in": torch.zeros(128),
               "blocks.0.mlp.W_out": torch.zeros(128, d), "blocks.0.mlp.b_out": torch.zeros(d)})
    path = tmp_path / "huge.pth"
    torch.save(sd, path)
    assert path.stat().st_size < 1_000_000
    cli.refuses("import", str(path), "huge", says="needs about")
    assert not runs_root.exists() or not any(runs_root.iterdir())
