"""A sweep across a Ray cluster of two nodes started on this machine (`ray start --head` and a second
`ray start --address`, each with its own temp dir), without a shared disk: members are placed on
both nodes, and when the worker node is killed mid-sweep nothing is lost and nothing finished is
trained again."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import snapshot
from tests.sweeps.test_sweep import ROOT, _definition, _same_run_files
from workbench import store
from workbench.sweeps import open_sweep, run_sweep

pytestmark = pytest.mark.slow


def _processes_under(folder: str) -> list[int]:
    """Pids of the processes whose command line names ``folder`` (one node's Ray processes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if folder in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _parents() -> dict[int, int]:
    """Every process's parent pid."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def _kill_node(folder: str) -> None:
    """SIGKILL one node: its processes (their command lines name its temp dir) and all their
    descendants (agents retitle themselves, and once orphaned nothing links them to the node)."""
    parents = _parents()
    doomed = set(_processes_under(folder))
    grown = True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        doomed |= more
        grown = bool(more)
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children_titled(parent: int, title: str) -> list[int]:
    """Pids of ``parent``'s children whose process title starts with ``title`` (a Ray worker sets
    its title to ``ray::<task>`` while it runs one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and (entry / "cmdline").read_bytes().decode(errors="replace").startswith(title):
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.fixture
def two_nodes():
    """A head node and a worker node of one CPU each, token-authenticated, with their own temp dirs
    (short paths: Ray's sockets live there); yields (env for a driver, the worker node's temp dir);
    kills both nodes' processes afterwards."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).parent / "ray"
    dirs = [tempfile.mkdtemp(prefix="wbray", dir="/tmp") for _ in range(2)]
    port = 20000 + secrets.randbelow(20000)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    try:
        subprocess.run([str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=1", f"--temp-dir={dirs[0]}",
                        "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([str(ray_bin), "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", f"--temp-dir={dirs[1]}",
                        "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, dirs[1]
    finally:
        for folder in dirs:
            _kill_node(folder)
            shutil.rmtree(folder, ignore_errors=True)


def _node_of(env: dict[str, str], temp_dir: str) -> str:
    """The Ray node id of the node whose sockets live in ``temp_dir`` (asked of the cluster)."""
    code = ("import ray, sys; ray.init(log_to_driver=False); "
            "print(next(n['NodeID'] for n in ray.nodes() if sys.argv[1] in n['RayletSocketName']))")
    return subprocess.run([sys.executable, "-c", code, temp_dir], env=env, check=True, capture_output=True, text=True,
                          timeout=120).stdout.strip().splitlines()[-1]


def _last_node(run_dir: Path) -> str | None:
    sessions = store.Run(run_dir).provenance["sessions"]
    return sessions[-1].get("ray_node") if sessions else None


def test_a_sweep_without_a_shared_disk_uses_both_nodes_and_survives_losing_one(runs_root, tmp_path, two_nodes):
    env, worker_dir = two_nodes
    worker_node = _node_of(env, worker_dir)
    text = 'base = "smoke"\n[set]\nepochs = 2500\nckpt_every = 500\n[axes]\nmodel_seed = [0, 1, 2, 3, 4, 5]\n'
    path = _definition(tmp_path, "cluster", text)
    reference = run_sweep(path, root=runs_root / "ref", probe=False, progress=False)

    cmd = [sys.executable, "-m", "workbench", "sweep", str(path), "--executor", "ray", "--no-shared-disk",
           "--group-size", "1", "--no-probe", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, "WORKBENCH_CHECKPOINTS": str(runs_root)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    raylet = next(pid for pid in _processes_under(worker_dir)
                  if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"raylet"))
    sweep_dir = runs_root / "cluster"
    finished_before: dict[str, dict] = {}
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        complete = []
        if (sweep_dir / store.MANIFEST).exists():
            complete = [m["name"] for m in open_sweep(sweep_dir).members if m["status"] == "complete"]
        on_worker = [n for n in complete if _last_node(sweep_dir / n) == worker_node]
        if on_worker and _children_titled(raylet, "ray::_train_shipped"):
            # the worker node has finished a group and is training another one: take the node away
            finished_before = {n: snapshot(sweep_dir / n) for n in complete}
            _kill_node(worker_dir)
            break
        time.sleep(0.05)
    assert finished_before, "the worker node never finished a group while it trained another"
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]

    sweep = open_sweep(sweep_dir)
    assert [m["status"] for m in sweep.members] == ["complete"] * 6
    for m in reference.members:  # nothing lost: every member as an uninterrupted local sweep wrote it
        _same_run_files(reference.path / m["name"], sweep_dir / m["name"])
    for name, files in finished_before.items():  # nothing finished was trained again
        assert snapshot(sweep_dir / name) == files, name
    nodes = {_last_node(sweep_dir / m["name"]) for m in sweep.members}
    assert worker_node in nodes and len(nodes) == 2, "members were placed on both nodes"
    after = [m["name"] for m in sweep.members if m["name"] not in finished_before]
    assert after and all(_last_node(sweep_dir / n) != worker_node for n in after), "the rest trained on the head node"
