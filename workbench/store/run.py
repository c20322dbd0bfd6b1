"""A run directory, read lazily (`Run`), and finding runs by name or path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from workbench.config import RunConfig, from_dict
from workbench.errors import UsageError
from workbench.store import files
from workbench.store.formats import (
    _TENSOR_ERRORS,
    METRICS_ADVICE,
    CorruptCheckpoint,
    DamagedFile,
    _first_line,
    _load_tensors,
    _metadata,
    _read_json,
    read_jsonl,
    read_table,
    write_tensors,
)
from workbench.store.layout import (
    _STEP_FILE,
    CONFIG,
    KEY_FREQUENCIES,
    LOCK,
    METRICS,
    PHASES_FILE,
    PROBE_OPTIONS,
    PROBES_DIR,
    PROVENANCE,
    SPLIT,
    STATE,
    STEPS_DIR,
    default_root,
    probe_table_path,
    run_path,
    runs_root_is_a_file,
    step_filename,
)
from workbench.tasks import Dataset, Split, make_dataset


def run_identity(cfg: RunConfig, split: Split) -> str:
    """blake2b (128 bits) of the config's fields and the split's indices (and noisy labels): two
    runs share it exactly when they train the same model on the same data from the same start."""
    digest = hashlib.blake2b(json.dumps(cfg.to_dict(), sort_keys=True).encode(), digest_size=16)
    for tensor in (split.train, split.test, split.train_labels):
        digest.update(b"|" if tensor is None else tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reading a run
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
        path = self.path / CONFIG
        values = _read_json(path, "restore it from a copy of this run (it is written once, at creation), or train a new run")
        if not isinstance(values, dict):
            raise DamagedFile(f"{path} is damaged (not a JSON object); restore it from a copy of this run, or train a new run")
        return from_dict(values)

    @property
    def provenance(self) -> dict[str, Any]:
        path = self.path / PROVENANCE
        advice = "restore it from a copy of this run; the checkpoints are unaffected"
        prov = _read_json(path, advice)
        if not isinstance(prov, dict) or not isinstance(prov.get("sessions"), list):
            raise DamagedFile(f"{path} is damaged (not an object with a list of sessions); {advice}")
        return prov

    @property
    def training_wall_s(self) -> float:
        """Seconds spent training this run: each session's wall time, divided among the members of
        its batched group."""
        return sum(float(s.get("wall_s", 0.0)) / int(s.get("group", 1)) for s in self.provenance["sessions"])

    @property
    def steps(self) -> list[int]:
        """Checkpoint steps present on disk, sorted."""
        folder = self.path / STEPS_DIR
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for m in map(_STEP_FILE.match, (e.name for e in folder.iterdir())) if m)

    def step_path(self, step: int) -> Path:
        return self.path / STEPS_DIR / step_filename(step)

    @property
    def metrics_rows(self) -> list[dict[str, Any]]:
        """Every evaluation row; `DamagedFile` if the log is damaged, or missing or empty although the
        run was trained or imported (its provenance says so) and has checkpoints (each checkpoint's
        step is evaluated before it is saved). Planted checkpoints that nothing trained have none."""
        path = self.path / METRICS
        rows = read_jsonl(path)
        if not rows and self.steps and (self.provenance["sessions"] or "imported_from" in self.provenance):
            state = "missing" if not path.exists() else "empty"
            raise DamagedFile(f"{path} is {state} but the run has checkpoints up to step {self.steps[-1]}: its losses "
                              f"are lost; {METRICS_ADVICE}")
        gap = self._metrics_gap(rows)
        if gap:
            raise DamagedFile(f"{path} lacks the evaluations at {len(gap)} step(s) from {gap[0]} to {gap[-1]} that training "
                              f"logged before its checkpoints up to step {self.steps[-1]} (the log was cut); {METRICS_ADVICE}")
        return rows

    def _metrics_gap(self, rows: list[dict[str, Any]]) -> list[int]:
        """The evaluation steps a run trained here must have logged before its last checkpoint (every
        ``eval_every`` steps and every checkpoint's step) that the log lacks. An imported run's log, and
        a run nothing trained, are as they were written."""
        steps = self.steps
        if not rows or not steps:
            return []
        prov = self.provenance
        if not prov["sessions"] or "imported_from" in prov:
            return []
        last = steps[-1]
        logged = {r["step"] for r in rows}
        expected = set(range(0, last + 1, self.config.eval_every)) | set(steps)
        return sorted(expected - logged)

    @property
    def metrics(self):
        """A ``pandas.DataFrame``, one row per evaluation: step, train/test loss and accuracy, the
        sum of squared trainable weights (``weight_norm``; NaN in runs trained before it was
        logged), lr and wall time."""
        import pandas as pd

        rows = self.metrics_rows
        columns = ["step", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "lr", "wall_s"]
        frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
        return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)

    @property
    def last_metrics(self) -> dict[str, Any] | None:
        """The latest evaluation row, or None before the first."""
        rows = self.metrics_rows
        return rows[-1] if rows else None

    @cached_property
    def dataset(self) -> Dataset:
        """Every input of the task: ``tokens`` [n, 3], ``labels`` [n]."""
        cfg = self.config
        return make_dataset(cfg.operation, cfg.p, cfg.table_seed)

    @cached_property
    def identity(self) -> str:
        """What this run is: `run_identity` of its config and split (a resume state carries it,
        and is not trusted when it names another run)."""
        return run_identity(self.config, self.split)

    @cached_property
    def split(self) -> Split:
        path = self.path / SPLIT
        tensors = _load_tensors(path, "restore it from a copy of this run (it is written once, at creation)")
        if not {"train", "test"} <= set(tensors) <= {"train", "test", "train_labels"}:
            raise DamagedFile(f"{path} is damaged (expected tensors train and test); restore it from a copy of this run")
        return Split(train=tensors["train"], test=tensors["test"], train_labels=tensors.get("train_labels"))

    @property
    def final_step(self) -> int:
        return self.config.epochs

    @property
    def state_step(self) -> int | None:
        """The step training would resume from (None before the first state is written)."""
        path = self.path / STATE
        if not path.exists():
            return None
        try:
            return int(_metadata(path, "step"))
        except files.UnreadableFile:
            raise  # permission, a FIFO, a folder: named as what it is, with no advice that would replace it
        except (*_TENSOR_ERRORS, TypeError) as exc:
            raise DamagedFile(f"{path} is damaged ({_first_line(exc)}); {self.reset_advice()}") from None

    @property
    def is_complete(self) -> bool:
        return self.state_step == self.final_step

    def reset_advice(self) -> str:
        """What to do about a damaged resume state."""
        return (f"resume from the last good checkpoint with `python -m workbench train {self.name} --from-last-checkpoint` "
                f"(make train RUN={self.name} FROM_CHECKPOINT=1; the optimiser restarts its moments there)")

    def weights(self, step: int) -> dict[str, torch.Tensor]:
        """The state dict saved at ``step``; `CorruptCheckpoint` names an unreadable file."""
        path = self.step_path(step)
        if not path.exists():
            steps = self.steps
            have = f"it has {len(steps)} steps from {steps[0]} to {steps[-1]}" if steps else "it has no checkpoints"
            raise UsageError(f"run {self.name!r} has no checkpoint at step {step}; {have}")
        files.check_readable(path)  # a FIFO would block the read; a permission is not damage
        try:
            return load_file(path)
        except _TENSOR_ERRORS as exc:
            raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({_first_line(exc)})") from exc

    def content_hash(self, step: int) -> str:
        """blake2b (128 bits) of the checkpoint file."""
        return hashlib.blake2b(self.step_path(step).read_bytes(), digest_size=16).hexdigest()

    def probe_table(self, probe: str):
        """The probe's tidy table (a DataFrame), or None before `make probe`."""
        return read_table(probe_table_path(self.path, probe))

    def _probe_json(self, name: str) -> Any:
        path = self.path / PROBES_DIR / name
        return _read_json(path, "delete it and probe again") if path.exists() else None

    @property
    def key_frequencies(self) -> dict[str, Any] | None:
        return self._probe_json(KEY_FREQUENCIES)

    @property
    def phases(self) -> dict[str, Any] | None:
        """The ``phases.json`` dict: steps, criteria, key_freqs (None before `make probe`)."""
        return self._probe_json(PHASES_FILE)

    @property
    def probe_options(self) -> dict[str, Any] | None:
        """The probe options the run was last probed with (``settings.json``), or None."""
        path = self.path / PROBES_DIR / PROBE_OPTIONS
        if not path.exists():
            return None
        advice = "delete it to probe with the default settings, or give the settings again with SET="
        options = _read_json(path, advice)
        if not isinstance(options, dict) or not isinstance(options.get("settings"), dict):
            raise DamagedFile(f"{path} is damaged (not an object with settings); {advice}")
        return options


def write_provenance(run: Run, provenance: dict[str, Any]) -> None:
    files.write_json(run.path / PROVENANCE, provenance)


def write_checkpoint(run: Run, step: int, weights: dict[str, torch.Tensor]) -> None:
    write_tensors(run.step_path(step), weights, {"step": str(step)})


@contextmanager
def training_lock(run: Run) -> Iterator[None]:
    """Hold ``<run>/.lock`` for training; a second trainer is refused instead of interleaving.
    Stale temporaries of an interrupted writer are cleared once the lock is held."""
    with files.exclusive_lock(run.path / LOCK, f"run {run.name!r} is busy: another process is training it; "
                                               "wait for it to finish"):
        files.remove_stale_temporaries(run.path, run.path / STEPS_DIR)
        yield


@contextmanager
def probe_lock(run: Run) -> Iterator[None]:
    """Two probers of one run take turns."""
    with files.waiting_lock(run.path / PROBES_DIR / LOCK):
        yield


# ----------------------------------------------------------------------------- finding runs
def list_runs(root: Path | None = None) -> list[str]:
    """Names of the runs under ``root`` (folders holding a config; hidden folders, such as a run
    being created, are not runs), sorted. A runs root that is a file is one `UsageError` line."""
    root = Path(root if root is not None else default_root())
    if root.exists() and not root.is_dir():
        raise UsageError(runs_root_is_a_file(root))
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / CONFIG).is_file())


def resolve_run_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A run name under ``root``, or a path to a run directory."""
    if isinstance(name_or_path, Path):
        return name_or_path
    text = str(name_or_path)
    if "/" in text or text.startswith("."):
        return Path(text)
    return run_path(text, root)


def open_run(name_or_path: str | Path, root: Path | None = None) -> Run:
    """Open an existing run by name (under ``root``, default `default_root`) or by path."""
    path = resolve_run_path(name_or_path, root)
    if not (path / CONFIG).is_file():
        names = list_runs(path.parent)
        listing = ", ".join(names) if names else "none yet; train one with `make train RUN=<name>`"
        raise UsageError(f"no run at {path}; runs in {path.parent}: {listing}")
    return Run(path)
