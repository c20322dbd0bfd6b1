"""The resume state: weights, AdamW moments and RNG at the last checkpoint; rebuilding it from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from workbench.errors import UsageError
from workbench.store import files
from workbench.store.formats import (
    CorruptCheckpoint,
    DamagedFile,
    _load_tensors,
    _metadata,
    rewrite_metrics,
    write_tensors,
)
from workbench.store.layout import CONFIG, METRICS, PROVENANCE, STATE
from workbench.store.run import Run


def truncate_metrics(run_dir: Path, start: int) -> None:
    """Before a session resumes at ``start``: drop the metrics an interrupted process logged at or
    after it (they are recomputed identically) and any torn last line."""
    path = run_dir / METRICS
    rows = Run(run_dir).metrics_rows  # damaged, or lost while the run has checkpoints: refused, not rewritten
    if any(r["step"] >= start for r in rows) or (path.exists() and not path.read_bytes().endswith(b"\n")
                                                 and path.stat().st_size):
        rewrite_metrics(run_dir, [r for r in rows if r["step"] < start])


@dataclass
class ResumeState:
    """What resuming needs: the step, the weights, AdamW's state per parameter name
    (``{name: {"exp_avg": t, "exp_avg_sq": t, "step": t}}``; empty before the first update) and
    torch's RNG state; ``grad_filter``: the state of a Grokfast filter (`workbench.training.variants`)."""

    step: int
    weights: dict[str, torch.Tensor]
    adam: dict[str, dict[str, torch.Tensor]]
    rng: torch.Tensor
    grad_filter: dict[str, torch.Tensor] = field(default_factory=dict)  # Grokfast's filter state, by weight name


def write_state(run: Run, state: ResumeState) -> None:
    """The resume state, marked with the run it belongs to (`Run.identity`) and its step."""
    tensors = {f"weights/{k}": v for k, v in state.weights.items()}
    for name, moments in state.adam.items():
        for key, value in moments.items():
            tensors[f"adam/{key}/{name}"] = value.reshape(-1) if key == "step" else value
    tensors["rng/torch"] = state.rng
    tensors.update({f"grad_filter/{k}": v.contiguous() for k, v in state.grad_filter.items()})
    write_tensors(run.path / STATE, tensors, {"step": str(state.step), "run": run.identity})


def read_state(run: Run) -> ResumeState:
    """The resume state, once it is shown to be this run's latest (`check_belongs`); `DamagedFile`
    (with the way out) if it cannot be read or is not."""
    path = run.path / STATE
    step = run.state_step
    if step is None:
        raise DamagedFile(f"{path} is missing; {run.reset_advice()}")
    tensors = _load_tensors(path, run.reset_advice())
    if "rng/torch" not in tensors:
        raise DamagedFile(f"{path} is damaged (no RNG state); {run.reset_advice()}")
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    check_belongs(run, step, weights)
    adam: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("adam/"):
            _, key, name = k.split("/", 2)
            adam.setdefault(name, {})[key] = v.reshape(()) if key == "step" else v
    grad_filter = {k[len("grad_filter/"):]: v for k, v in tensors.items() if k.startswith("grad_filter/")}
    return ResumeState(step=step, weights=weights, adam=adam, rng=tensors["rng/torch"], grad_filter=grad_filter)


def check_belongs(run: Run, step: int, weights: dict[str, torch.Tensor]) -> None:
    """Refuse a resume state that is not this run's latest: one marked with another run's
    identity (another config or split), a state behind more than the one checkpoint a kill between
    the two writes leaves ahead of it, or weights other than the checkpoint saved at its own step.
    (States written before they carried an identity get the other checks; the trainer checks the
    weights' shapes against the config.)"""
    path = run.path / STATE
    marked = _metadata(path, "run", None)
    if marked is not None and marked != run.identity:
        raise DamagedFile(f"{path} belongs to another run (another config or split), not {run.name!r}: training from it "
                          f"would rewrite this run's history; {run.reset_advice()}")
    steps = run.steps
    if step != 0 and step not in steps:
        raise DamagedFile(f"{path} is at step {step}, where the run has no checkpoint (its checkpoints "
                          f"{'end at step ' + str(steps[-1]) if steps else 'are missing'}): each state is written just after its "
                          f"checkpoint, so it is not this run's (a copy from a twin run?); {run.reset_advice()}")
    rows = run.metrics_rows  # a cut or damaged log is refused here too
    logged = max((r["step"] for r in rows), default=None)
    if step and logged is not None and logged < step and run.provenance["sessions"]:
        raise DamagedFile(f"{path} is at step {step} but {METRICS} ends at step {logged}: each "
                          f"checkpoint's step is logged before it is saved, so the state is not this run's; "
                          f"{run.reset_advice()}")
    ahead = [s for s in steps if s > step]
    if len(ahead) > 1:
        raise DamagedFile(f"{path} is at step {step} but the run's checkpoints reach step {ahead[-1]}: it is not this run's "
                          f"latest state, and training from it would overwrite {len(ahead)} checkpoints; {run.reset_advice()}")
    if step in steps:
        try:
            saved = run.weights(step)
        except CorruptCheckpoint:
            return  # the damaged checkpoint is reported where it is read
        if saved.keys() != weights.keys() or any(not torch.equal(saved[k], weights[k]) for k in saved):
            raise DamagedFile(f"{path} holds other weights than the checkpoint at its own step {step}: it is not this "
                              f"run's state; {run.reset_advice()}")


def check_consistent(run: Run) -> None:
    """The resume state, checkpoints and metrics agree (`check_belongs` on the state, the metrics'
    coverage): what `train`, `info`, `runs`, `probe` and `forecast` all rely on. `DamagedFile`
    naming the first disagreement; a run with no state yet passes."""
    step = run.state_step
    if step is None:
        run.metrics_rows  # noqa: B018 - a cut or damaged log is refused here (check_belongs reads it otherwise)
        return
    path = run.path / STATE
    tensors = _load_tensors(path, run.reset_advice())
    check_belongs(run, step, {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")})


def last_good_checkpoint(run: Run) -> tuple[int, dict[str, torch.Tensor]]:
    """The latest checkpoint that loads, for rebuilding a damaged resume state."""
    for step in reversed(run.steps):
        try:
            return step, run.weights(step)
        except CorruptCheckpoint:
            continue
    raise UsageError(f"run {run.name!r} has no readable checkpoint to resume from; train a new run")


def extend_epochs(run: Run, epochs: int) -> Run:
    """Give a run more epochs to train (an imported run being extended): its config gets the new
    ``epochs``, its resume state (read and checked first, weights and moments unchanged) the
    identity of the new config, and its provenance the change. Returns the run re-opened. A kill
    between the two writes leaves a state marked for the old config, which is refused and rebuilt
    from the last checkpoint as any stale state is."""
    state = read_state(run)
    old = run.config.epochs
    files.write_json(run.path / CONFIG, {**run.config.to_dict(), "epochs": int(epochs)})
    extended = Run(run.path)
    write_state(extended, state)
    provenance = dict(extended.provenance)
    provenance["extended"] = [*provenance.get("extended", []), {"from_epochs": old, "to_epochs": int(epochs),
                                                               "at_step": state.step}]
    files.write_json(run.path / PROVENANCE, provenance)
    return Run(run.path)

