"""Fault injection: bad input and damaged files, each case asserting what the workbench promises
(docs/guarantees.md): a non-zero exit, one line saying what was wrong and what to do, no traceback,
and every other file of the run byte-identical afterwards."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from workbench.cli import main


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` by its content (blake2b): to assert that nothing was lost or changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


class Cli:
    """The command line in this process (as `python -m workbench` runs it), with its exit code and
    what it printed."""

    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = self.capsys.readouterr()
        return code, out, err

    def refuses(self, *args: str, says: str, code: int = 2) -> str:
        """Run a command that must fail: exit ``code``, exactly one line on stderr, starting
        ``error:`` and holding ``says``; returns the line."""
        got, _, err = self(*args)
        assert got == code, f"exit {got}, stderr: {err}"
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert says in err, err
        return err


@pytest.fixture
def cli(capsys, runs_root) -> Cli:
    return Cli(capsys)


@pytest.fixture(scope="session")
def trained_smoke(session_root) -> Path:
    """A complete smoke run of 150 epochs, probed: the pristine copy fault cases damage copies of."""
    import workbench

    run = workbench.train("pristine", "smoke", {"epochs": 150}, device="cpu", progress=False, root=session_root / "faults")
    workbench.probe(run, progress=False)
    return run.path


@pytest.fixture
def smoke_copy(trained_smoke, runs_root) -> Path:
    """A private copy of the complete, probed smoke run under this test's runs root, named ``r``."""
    runs_root.mkdir(parents=True, exist_ok=True)
    path = runs_root / "r"
    shutil.copytree(trained_smoke, path)
    return path
