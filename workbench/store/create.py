"""Creating a run directory: config, provenance, split and the step-0 resume state, all or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.errors import UsageError
from workbench.store import files
from workbench.store.formats import write_tensors
from workbench.store.layout import CONFIG, LOCK, PROVENANCE, SPLIT, STEPS_DIR, runs_root_is_a_file
from workbench.store.run import Run
from workbench.store.state import ResumeState, write_state
from workbench.tasks import Split

CREATING = ".creating."  # a run being assembled: ".<name>.creating.<random>" beside where it will be
_STALE_S = 60  # a creation folder without its lock, untouched this long, was left by a process killed at birth


def ensure_runs_root(root: Path) -> Path:
    """The folder runs live in, made if needed (`files.ensure_folder`)."""
    return files.ensure_folder(root, runs_root_is_a_file(root), "the runs root")


def remove_stale_creations(root: Path) -> list[str]:
    """Delete the hidden folders of run creations that a killed process left under ``root`` (a live
    creator holds the lock inside its folder, so its folder is left alone); returns their names."""
    import shutil

    removed = []
    if not Path(root).is_dir():
        return removed
    for folder in Path(root).glob(f".*{CREATING}*"):
        lock = folder / LOCK
        try:
            if lock.exists():
                with files.exclusive_lock(lock, "busy"):
                    shutil.rmtree(folder)
            elif time.time() - folder.stat().st_mtime > _STALE_S:
                shutil.rmtree(folder)
            else:
                continue
        except (UsageError, OSError):
            continue  # a creator is at work, or it went meanwhile
        removed.append(folder.name)
    return removed


def _check_free(path: Path) -> None:
    """Refuse a run's place that something already holds (before anything is written)."""
    if path.is_symlink() or path.exists():
        if path.is_dir() and not (path / CONFIG).exists():
            raise UsageError(f"{path} exists but holds no run (no {CONFIG}): its config was deleted, or the folder is "
                             f"not a run; restore {CONFIG} from a copy of the run, or move the folder away")
        if not path.is_dir():
            raise UsageError(f"{path} is a file, not a run folder; move it away or choose another run name")


def create_run(path: Path, cfg: RunConfig, provenance: dict[str, Any], split: Split, state: ResumeState,
               fill: Callable[[Run], None] | None = None) -> Run:
    """Assemble a new run in a hidden folder and rename it into place (all or nothing).

    ``fill``, if given, writes more of the run (checkpoints, metrics: an import) into the hidden
    folder's `Run` before the rename; if it raises, nothing appears at ``path``. The hidden folder
    holds its own lock while it is assembled: a folder whose creator was killed is removed by the
    next command that looks (`remove_stale_creations`)."""
    import shutil

    ensure_runs_root(path.parent)
    remove_stale_creations(path.parent)
    _check_free(path)
    tmp = files.make_private_temp_dir(path.parent, f".{path.name}{CREATING}")
    try:
        with files.exclusive_lock(tmp / LOCK, "busy"):
            (tmp / STEPS_DIR).mkdir()
            files.write_json(tmp / CONFIG, cfg.to_dict())
            files.write_json(tmp / PROVENANCE, provenance)
            noisy = {} if split.train_labels is None else {"train_labels": split.train_labels}
            write_tensors(tmp / SPLIT, {"train": split.train, "test": split.test, **noisy})
            write_state(Run(tmp), state)
            if fill is not None:
                fill(Run(tmp))
            try:
                tmp.rename(path)
            except OSError:
                _check_free(path)
                raise UsageError(f"run {path.name!r} was created by another process meanwhile; run again to resume it") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(path)
