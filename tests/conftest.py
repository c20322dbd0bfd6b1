"""Shared fixtures. Runs are trained once per session into a temporary checkpoints folder.

Tensor shapes annotated with jaxtyping in `probes` and `workbench.model` (and the probing engines) are checked at run
time in the whole test suite (beartype through jaxtyping's import hook, installed here before
either package is imported, as TransformerLens checks its own).
"""

from __future__ import annotations

from pathlib import Path

import jaxtyping
import pytest

with jaxtyping.install_import_hook(["probes", "workbench.model", "workbench.probing.evaluate", "workbench.probing.engines"], "beartype.beartype"):
    import probes  # noqa: F401
    import workbench
    import workbench.model  # noqa: F401
    import workbench.probing.engines  # noqa: F401
    import workbench.probing.evaluate  # noqa: F401


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    """A checkpoints folder for runs shared by the whole session."""
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty checkpoints folder, private to one test: library calls get it as ``root=``; the
    in-process CLI finds it through WORKBENCH_CHECKPOINTS, as a user's shell would set it."""
    root = tmp_path / "checkpoints"
    monkeypatch.setenv("WORKBENCH_CHECKPOINTS", str(root))
    return root


def _train_in(root: Path, name: str, preset: str, **overrides):
    return workbench.train(name, preset, overrides, device="cpu", progress=False, root=root)


@pytest.fixture(scope="session")
def smoke_run(session_root) -> workbench.Run:
    """The `smoke` preset, trained once (a few seconds): memorises, does not grok."""
    return _train_in(session_root, "smoke", "smoke")


@pytest.fixture(scope="session")
def probed_smoke(smoke_run):
    """The smoke run's probe results (every probe but llc)."""
    return workbench.probe(smoke_run, progress=False)


@pytest.fixture(scope="session")
def fast_run(session_root) -> workbench.Run:
    """The `fast` preset, trained once (~40 s on 2 cores): memorises, then groks."""
    return _train_in(session_root, "fast", "fast")


@pytest.fixture(scope="session")
def random_table_run(session_root) -> workbench.Run:
    """The null control: the `fast` preset on a random lookup table (no structure to find), 1,200
    epochs: it memorises and never generalises."""
    return _train_in(session_root, "random-table", "fast", operation="random", epochs=1200, ckpt_every=100, ckpt_log=0)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root: to assert that nothing changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
