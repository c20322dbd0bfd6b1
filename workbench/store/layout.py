"""Every name on disk: the files and folders of a run directory (described once, in docs/run-directory.md) and of a sweep directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

from workbench.errors import UsageError

CONFIG = "config.json"

PROVENANCE = "provenance.json"

SPLIT = "split.safetensors"

METRICS = "metrics.jsonl"

STATE = "state.safetensors"

STEPS_DIR = "steps"

PROBES_DIR = "probes"

REPORT_DIR = "report"

REPORT_PAGE = "index.html"

# what `python -m workbench rff --out DIR` writes in DIR (beside REPORT_PAGE and its figures)
RFF_TABLE = "rff.csv"

LOCK = ".lock"

# inside PROBES_DIR
PROBE_INDEX = "index.json"

PROBE_OPTIONS = "settings.json"

KEY_FREQUENCIES = "key_frequencies.json"

PHASES_FILE = "phases.json"
# the forecaster's per-checkpoint signals, cached in probes/ (rows keyed by the checkpoint file's size and time)
FORECAST_SIGNALS = "forecast-signals.csv"

PROBE_INDEX_FORMAT = 2  # bump when the index layout changes: an older index is recomputed once

_STEP_FILE = re.compile(r"^step_(\d{7,})\.safetensors$")

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


ROOT_VARIABLE = "WORKBENCH_CHECKPOINTS"


def default_root() -> Path:
    """Where runs live when no ``root`` is given: ``$WORKBENCH_CHECKPOINTS`` when it is set (the CLI,
    notebooks and the library alike), else ``checkpoints/`` of this source tree (an editable
    install), else of the working directory."""
    env = os.environ.get(ROOT_VARIABLE)
    if env:
        return Path(env)
    tree = Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file():
        return tree / "checkpoints"
    return Path.cwd() / "checkpoints"


def runs_root_is_a_file(root: Path) -> str:
    """The one line for a runs root that a file stands in."""
    return f"the runs root {root} is a file, not a folder; point WORKBENCH_CHECKPOINTS (or root=) at a folder"


def check_run_name(name: str) -> str:
    """A run name is one plain folder name: letters, digits, ``_ . -``; no ``/`` or ``..``."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"invalid run name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no '/' or '..', at most 100 characters)"
        )
    return name


def step_filename(step: int) -> str:
    return f"step_{step:07d}.safetensors"


def probe_table_path(run_dir: Path, probe: str) -> Path:
    return run_dir / PROBES_DIR / f"{probe}.csv"


# ---------------------------------------------------------------------------- writing a run
def run_path(name: str, root: Path | None = None) -> Path:
    return Path(root if root is not None else default_root()) / check_run_name(name)

# ----------------------------------------------------------------------------- a sweep directory

MANIFEST = "sweep.json"

TABLE = "sweep.csv"

CRITERIA_FILE = "outcomes.json"

MANIFEST_FORMAT = 1
