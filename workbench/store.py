"""The run store: the one module that knows the run-directory layout and does its I/O.

A run lives in ``checkpoints/<RUN>/`` and describes itself; it contains no pickles::

    config.json               the resolved RunConfig, written once when the run is created
    provenance.json           package versions, git commit, and one entry per training session
                              (device, steps covered, wall time)
    split.safetensors         the train/test split itself: ``train`` [n_train], ``test`` [n_test]
                              indices into the task's inputs (a-major order)
    metrics.jsonl             append-only: one JSON object per evaluation
                              (step, train_loss, train_acc, test_loss, test_acc, lr, wall_s)
    steps/step_0001200.safetensors
                              one file per checkpoint: the TransformerBridge state dict
    state.safetensors         what resuming needs: weights, AdamW moments, RNG, the step
    probes/<probe>.csv        tidy probe tables (`make probe`)
    report/                   figures and index.html (`make report`)

Every file is written atomically (a hidden temporary file in the same folder, fsync, then
rename), and a new run is assembled in a hidden folder and renamed into place, so a crash at
any moment leaves only complete files. Hidden names (leading ``.``) are never read as data.

Example:
    >>> run = open_run("demo")
    >>> run.steps[:3], run.metrics.tail(1)
    >>> model = run.model(run.steps[-1])     # a TransformerBridge with that checkpoint
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.config import RunConfig, from_dict
from workbench.errors import UsageError
from workbench.tasks import Dataset, Split, make_dataset

CONFIG = "config.json"
PROVENANCE = "provenance.json"
SPLIT = "split.safetensors"
METRICS = "metrics.jsonl"
STATE = "state.safetensors"
STEPS_DIR = "steps"
PROBES_DIR = "probes"
REPORT_DIR = "report"
LOCK = ".lock"
# inside PROBES_DIR
PROBE_INDEX = "index.json"  # per probe: version, engine, key frequencies, content hash per step
KEY_FREQUENCIES = "key_frequencies.json"
PHASES = "phases.json"
_STEP_FILE = re.compile(r"^step_(\d{7,})\.safetensors$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def checkpoints_root() -> Path:
    """Where runs live: ``$WORKBENCH_CHECKPOINTS``, else ``checkpoints/`` of this source tree."""
    env = os.environ.get("WORKBENCH_CHECKPOINTS")
    if env:
        return Path(env)
    tree = Path(__file__).resolve().parents[1]
    if (tree / "pyproject.toml").is_file():
        return tree / "checkpoints"
    return Path.cwd() / "checkpoints"


def check_run_name(name: str) -> str:
    """A run name is one plain folder name: letters, digits, ``_ . -``; no ``/`` or ``..``."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise UsageError(
            f"invalid run name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no '/' or '..', at most 100 characters)"
        )
    return name


def step_filename(step: int) -> str:
    return f"step_{step:07d}.safetensors"


# ---------------------------------------------------------------------------- atomic writes
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write (tensors are made contiguous CPU copies first)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one row with a single ``write`` on an O_APPEND descriptor (no interleaving)."""
    line = (json.dumps(row, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete rows; a torn final line (a crash mid-append) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def remove_stale_temporaries(folder: Path) -> None:
    """Delete leftover ``.*.tmp`` files from an interrupted writer (only the lock holder calls this)."""
    for tmp in list(folder.glob(".*.tmp")) + list(folder.glob(f"{STEPS_DIR}/.*.tmp")):
        tmp.unlink(missing_ok=True)


def probe_table_path(run_dir: Path, probe: str) -> Path:
    return run_dir / PROBES_DIR / f"{probe}.csv"


def write_table(path: Path, frame) -> None:
    """A tidy table as CSV, atomically (readers never see a torn table)."""
    write_text(path, frame.to_csv(index=False))


def read_table(path: Path):
    import pandas as pd

    return pd.read_csv(path) if path.exists() else None


def read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


@contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """An exclusive lock that waits its turn (two `make probe` on one run take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(run_dir: Path, what: str) -> Iterator[None]:
    """Hold ``<run>/.lock`` for writing; a second writer is refused instead of interleaving."""
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"run {run_dir.name!r} is busy: another process is {what} it; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- reading a run
class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated, corrupted)."""


class Run:
    """A run directory, read lazily. Safe to open while training appends to it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, steps={len(self.steps)}, path='{self.path}')"

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def config(self) -> RunConfig:
        return from_dict(json.loads((self.path / CONFIG).read_text()))

    @property
    def provenance(self) -> dict[str, Any]:
        return json.loads((self.path / PROVENANCE).read_text())

    @property
    def steps(self) -> list[int]:
        """Checkpoint steps present on disk, sorted."""
        found = []
        for entry in (self.path / STEPS_DIR).iterdir():
            m = _STEP_FILE.match(entry.name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def step_path(self, step: int) -> Path:
        return self.path / STEPS_DIR / step_filename(step)

    @property
    def metrics_rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / METRICS)

    @property
    def metrics(self):
        """A ``pandas.DataFrame``, one row per evaluation: step, train/test loss and accuracy, lr."""
        import pandas as pd

        rows = self.metrics_rows
        columns = ["step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_s"]
        frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
        return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)

    @cached_property
    def dataset(self) -> Dataset:
        """Every input of the task: ``tokens`` [n, 3], ``labels`` [n]."""
        cfg = self.config
        return make_dataset(cfg.operation, cfg.p, cfg.table_seed)

    @cached_property
    def split(self) -> Split:
        tensors = load_file(self.path / SPLIT)
        return Split(train=tensors["train"], test=tensors["test"])

    @property
    def final_step(self) -> int:
        return self.config.epochs

    @property
    def state_step(self) -> int | None:
        """The step training would resume from (None before the first state is written)."""
        path = self.path / STATE
        if not path.exists():
            return None
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            return int(f.metadata()["step"])

    @property
    def is_complete(self) -> bool:
        return self.state_step == self.final_step

    def weights(self, step: int) -> dict[str, torch.Tensor]:
        """The bridge state dict saved at ``step``; `CorruptCheckpoint` names an unreadable file."""
        path = self.step_path(step)
        if not path.exists():
            raise UsageError(
                f"run {self.name!r} has no checkpoint at step {step}; "
                f"it has {len(self.steps)} steps from {self.steps[0]} to {self.steps[-1]}"
            )
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({exc})") from exc

    def content_hash(self, step: int, memo: dict[str, Any] | None = None) -> str:
        """blake2b of the checkpoint file; ``memo`` (from the probe index) skips files whose size and
        mtime are unchanged since they were hashed."""
        import hashlib

        path = self.step_path(step)
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        if memo is not None and memo.get(str(step), {}).get("stamp") == stamp:
            return memo[str(step)]["hash"]
        digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        if memo is not None:
            memo[str(step)] = {"stamp": stamp, "hash": digest}
        return digest

    def probe_table(self, probe: str):
        """The probe's tidy table (a DataFrame), or None before `make probe`."""
        return read_table(probe_table_path(self.path, probe))

    @property
    def key_frequencies(self) -> dict[str, Any] | None:
        return read_json(self.path / PROBES_DIR / KEY_FREQUENCIES)

    @property
    def phases(self) -> dict[str, Any] | None:
        return read_json(self.path / PROBES_DIR / PHASES)

    def model(self, step: int | None = None, device: str | torch.device = "cpu"):
        """A fresh TransformerLens ``TransformerBridge`` holding the checkpoint at ``step`` (default: last)."""
        from workbench.model import build_bridge

        if step is None:
            step = self.steps[-1]
        return build_bridge(self.config, self.weights(step), device=device)


def resolve_run_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A run name under `checkpoints_root`, or a path to a run directory."""
    text = os.fspath(name_or_path)
    if os.sep in text or text.startswith("."):
        return Path(text)
    return checkpoints_root() / check_run_name(text)


def open_run(name_or_path: str | os.PathLike[str]) -> Run:
    """Open an existing run by name (under ``checkpoints/``) or by path."""
    path = resolve_run_path(name_or_path)
    if not (path / CONFIG).is_file():
        root = path.parent
        names = sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []
        listing = ", ".join(names) if names else "none yet; train one with `make train RUN=<name>`"
        raise UsageError(f"no run at {path}; runs in {root}: {listing}")
    return Run(path)
