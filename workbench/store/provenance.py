"""Provenance of a run: package versions, the workbench's git commit, the platform."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.config import RunConfig


def new_provenance(cfg: RunConfig) -> dict[str, Any]:
    """Package versions and the git commit of the workbench source."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("torch", "transformer-lens", "numpy", "safetensors", "workbench"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    source = Path(__file__).resolve().parents[2]
    commit = None
    dirty = None
    if (source / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
            dirty = bool(
                subprocess.run(
                    ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True, text=True, check=True,
                ).stdout.strip()
            )
        except (OSError, subprocess.CalledProcessError):
            pass
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "platform": platform.platform(),
        "sessions": [],
    }
