"""Moving runs between machines that share no disk: what a worker needs to resume them, and what it sends back.

A sweep on a cluster without a shared filesystem (`workbench.sweeps.executors`, ``shared_disk=False``)
trains each group on a worker that sees none of the driver's files. The driver packs what resuming
needs (`pack_for_training`: config, provenance, split, resume state and metrics; no checkpoints),
the worker unpacks it into a folder of its own (`unpack`), trains, and returns every file training
wrote or changed (`training_output`: the new checkpoints, the metrics, the provenance and the
resume state). The driver then writes them into the run (`write_back`), each file atomically and
the resume state last: a driver killed half-way leaves checkpoints ahead of the state, never behind
(as a killed trainer does), so the run resumes where its state says and rewrites those checkpoints
with the same bytes.

Example:
    >>> from workbench.store import open_run
    >>> packed = pack_for_training(open_run("demo"))       # on the driver
    >>> copy = unpack(Path("elsewhere/demo"), packed)      # on the worker; train it there, then
    >>> write_back(open_run("demo"), training_output(copy))  # on the driver, holding its training lock
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import UsageError
from workbench.store import files
from workbench.store.layout import _STEP_FILE, CONFIG, METRICS, PROVENANCE, SPLIT, STATE, STEPS_DIR
from workbench.store.run import Run

# what a worker needs to resume a run, and what training rewrites (the state last: it says how far the run is)
_FOR_TRAINING = (CONFIG, PROVENANCE, SPLIT, STATE, METRICS)
_REWRITTEN = (METRICS, PROVENANCE, STATE)


def pack_for_training(run: Run) -> dict[str, bytes]:
    """The files a worker needs to resume ``run``, by path relative to the run directory (a run
    with no metrics yet has no metrics file)."""
    packed = {}
    for name in _FOR_TRAINING:
        path = run.path / name
        if name == METRICS and not path.exists():
            continue
        try:
            packed[name] = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path} to send it to a worker: {exc.strerror or exc}") from None
    return packed


def unpack(folder: Path, packed: dict[str, bytes]) -> Run:
    """Write a packed run into the new folder ``folder`` (on the worker); returns it as a `Run`."""
    folder.mkdir(parents=True)
    (folder / STEPS_DIR).mkdir()
    for name, data in packed.items():
        if name not in _FOR_TRAINING:
            raise ValueError(f"a packed run holds no {name!r}")
        files.write_bytes(folder / name, data)
    return Run(folder)


def training_output(run: Run) -> dict[str, bytes]:
    """Every file training wrote into an unpacked run: its checkpoints and the rewritten files."""
    out = {f"{STEPS_DIR}/{p.name}": p.read_bytes() for p in sorted((run.path / STEPS_DIR).iterdir())
           if _STEP_FILE.match(p.name)}
    out.update({name: (run.path / name).read_bytes() for name in _REWRITTEN if (run.path / name).exists()})
    return out


def write_back(run: Run, output: dict[str, bytes]) -> None:
    """Write a worker's `training_output` into ``run`` (the caller holds its training lock): every
    file atomically, checkpoints first and the resume state last."""
    unknown = [name for name in output if name not in _REWRITTEN
               and not (name.startswith(f"{STEPS_DIR}/") and _STEP_FILE.match(name[len(STEPS_DIR) + 1:]))]
    if unknown:
        raise ValueError(f"a worker sent back files a run does not hold: {', '.join(unknown)}")
    (run.path / STEPS_DIR).mkdir(exist_ok=True)
    order = sorted(output, key=lambda name: (not name.startswith(STEPS_DIR), _REWRITTEN.index(name) if name in _REWRITTEN else 0))
    for name in order:
        files.write_bytes(run.path / name, output[name])
