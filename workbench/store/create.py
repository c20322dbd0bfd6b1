"""Creating a run directory: config, provenance, split and the step-0 resume state, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import RunConfig
from workbench.errors import UsageError
from workbench.store import files
from workbench.store.formats import write_tensors
from workbench.store.layout import CONFIG, PROVENANCE, SPLIT, STEPS_DIR
from workbench.store.run import Run
from workbench.store.state import ResumeState, write_state
from workbench.tasks import Split


def create_run(path: Path, cfg: RunConfig, provenance: dict[str, Any], split: Split, state: ResumeState,
               fill: Callable[[Run], None] | None = None) -> Run:
    """Assemble a new run in a hidden folder and rename it into place (all or nothing).

    ``fill``, if given, writes more of the run (checkpoints, metrics: an import) into the hidden
    folder's `Run` before the rename; if it raises, nothing appears at ``path``."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.make_private_temp_dir(path.parent, f".{path.name}.creating.")
    try:
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
            raise UsageError(f"run {path.name!r} was created by another process meanwhile; run again to resume it") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(path)
