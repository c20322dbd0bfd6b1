"""Full-batch training with checkpoints, metrics and exact resume.

The loop (Nanda et al. 2023, Appendix: full-batch AdamW on the train split):

    for step in 0 .. epochs-1:
        logits = model(train_tokens)                      # weights after `step` updates
        loss   = cross_entropy(float64(logits), labels)   # float64: losses reach 1e-7
        if step is an evaluation step: log train/test loss and accuracy at these weights
        if step is a checkpoint step:  save weights, then the resume state
        lr(step) = lr * min(step / warmup_steps, 1);  AdamW update

so "step s" always means "the weights after s updates", for metrics and checkpoints alike.
The final step (``epochs``) is always evaluated and saved. A run trains as a group of one
(`workbench.training.batched`): the step is `workbench.training.step.GroupStep`, the same for
a run alone and for a sweep's members.

Resume: the state file holds the weights, the AdamW moments and step counts, and the RNG
state at the last checkpoint. Training on CPU is deterministic, so an interrupted run that is
resumed ends with weights bit-identical to an uninterrupted one (tested with SIGKILL).

Example:
    >>> run = train("demo-train", "smoke", progress=False)   # or train("demo-train") to resume / no-op when complete
    >>> run.metrics.step.iloc[-1]
    np.int64(300)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from workbench import store
from workbench.config import DEFAULT_PRESET, RunConfig, load_config
from workbench.errors import UsageError
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.training.batched import train_locked
from workbench.training.budget import check_fits
from workbench.training.device import pick_device
from workbench.training.start import start_run
from workbench.training.status import FAILED
from workbench.training.status import kind as status_kind


class TrainingFailed(UsageError):
    """Training stopped because the loss stopped being a number (one line: the step and what to do)."""


def _resolve_config(
    run_path: Path, preset: str | Path | Mapping[str, Any] | RunConfig | None, overrides: Mapping[str, Any] | None,
    extend_imported: bool = False,
) -> tuple[RunConfig, RunConfig | None]:
    """(config to train, saved config if the run exists). Refuses a contradicting request, but for
    more ``epochs`` given to an imported run with ``extend_imported``."""
    saved = store.Run(run_path).config if (run_path / store.CONFIG).is_file() else None
    if extend_imported and saved is None:
        raise UsageError(f"there is no run {run_path.name!r} at {run_path} to extend: --extend-imported trains an "
                         "imported run on; import it first (make import SRC=... RUN=...)")
    if saved is not None and preset is None:
        cfg = load_config(saved, overrides)  # overrides alone apply to the run's own config
    else:
        cfg = load_config(preset if preset is not None else DEFAULT_PRESET, overrides)
    if saved is not None and cfg != saved:
        changed = {k for k, v in cfg.to_dict().items() if saved.to_dict()[k] != v}
        if extend_imported and changed == {"epochs"}:
            if not store.Run(run_path).provenance.get("imported_from"):
                raise UsageError(f"run {run_path.name!r} was not imported: --extend-imported applies to imported runs; "
                                 "give a trained run more epochs by training a new RUN")
            if cfg.epochs <= saved.epochs:
                raise UsageError(f"epochs={cfg.epochs} does not extend run {run_path.name!r} (it has epochs="
                                 f"{saved.epochs}); give more")
            return cfg, saved
        diffs = [f"{k}={v!r} (run has {saved.to_dict()[k]!r})" for k, v in cfg.to_dict().items() if k in changed]
        raise UsageError(
            f"run {run_path.name!r} already exists with a different config: {'; '.join(diffs)}. "
            "Use a new RUN name, or drop the preset/overrides to resume it as it is"
        )
    return cfg, saved


def reset_state_from_checkpoint(run: store.Run) -> int:
    """Rebuild a damaged resume state from the last readable checkpoint: its weights, fresh
    AdamW moments (so the rest of the run is not bit-identical to an uninterrupted one). Returns
    the step training resumes from."""
    step, weights = store.last_good_checkpoint(run)
    store.write_state(run, store.ResumeState(step=step, weights=weights, adam={}, rng=torch.get_rng_state()))
    return step


def train(
    run: str,
    preset: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool | Monitor = True,
    stop_after: int | None = None,
    root: Path | None = None,
    from_last_checkpoint: bool = False,
    extend_imported: bool = False,
) -> store.Run:
    """Train run ``<root>/<run>/`` to completion: create it, resume it, or report it complete.

    ``preset``: a preset name, config file, mapping or `RunConfig` (default: the saved config
    of an existing run, else the ``fast`` preset). ``overrides`` change single fields.
    ``root``: where runs live (default `store.default_root`). ``stop_after``: stop (resumably)
    once this step is reached, for experiments and tests. ``from_last_checkpoint``: rebuild a
    damaged resume state from the last readable checkpoint first (`reset_state_from_checkpoint`).
    ``progress``: a bar with the losses and one-line notes (True: in the terminal or the notebook
    it runs in; False: nothing; or any `workbench.monitor.Monitor`). An imported run is complete as
    imported: ``extend_imported`` continues one from its last checkpoint with fresh AdamW moments (the
    source file holds none), keeping every row of its imported log as it is.
    """
    monitor = resolve_monitor(progress)
    run_path = store.run_path(str(run), root)
    cfg, saved = _resolve_config(run_path, preset, overrides, extend_imported)
    if stop_after is not None and stop_after < 0:
        raise UsageError(f"stop_after must be a step >= 0, got {stop_after}")
    dev = pick_device(device)
    check_fits(cfg, run_path.parent, what=f"run {run_path.name!r}", device=str(dev))
    handle = start_run(run_path, cfg) if saved is None else store.Run(run_path)
    with store.training_lock(handle):
        imported = handle.provenance.get("imported_from")
        handle.split  # noqa: B018 - read (and checked) before anything is written
        if from_last_checkpoint:
            step = reset_state_from_checkpoint(handle)
            prov = handle.provenance
            prov["resets"] = [*prov.get("resets", []), {"from_checkpoint": step, "optimiser": "fresh AdamW moments",
                                                        "at": datetime.now(UTC).isoformat(timespec="seconds")}]
            store.write_provenance(handle, prov)
            monitor.note(f"run {handle.name!r}: resume state rebuilt from the checkpoint at step {step} (fresh optimiser moments)")
        if saved is not None:
            store.check_consistent(handle)  # another run's state or a cut log: refused before "complete" is trusted
        if saved is not None and cfg.epochs != saved.epochs:  # an imported run given more epochs (_resolve_config)
            handle = store.extend_epochs(handle, cfg.epochs)
            monitor.note(f"run {handle.name!r}: epochs {saved.epochs} -> {cfg.epochs} (recorded in its provenance)")
        if handle.is_complete:
            more = (f"; to train it further give --extend-imported epochs=N (N > {cfg.epochs})"
                    if imported and extend_imported else "")
            monitor.note(f"run {handle.name!r} is already complete at step {cfg.epochs}; nothing to do ({run_path}){more}")
            return handle
        keep = None
        if imported:
            if not extend_imported:
                raise UsageError(f"run {handle.name!r} was imported from {imported.get('file')} and is complete as "
                                 f"imported; training would continue it from step {handle.state_step} to {cfg.epochs} with "
                                 "fresh AdamW moments (the file holds none): give --extend-imported to do that (the "
                                 "imported log is kept as it is)")
            rows = handle.metrics_rows
            keep = imported.get("logged_until", max((r["step"] for r in rows), default=0))
        outcome = train_locked([handle], dev, monitor, stop_after, label=handle.name, keep_logs_until=keep)[handle.name]
    if status_kind(outcome) == FAILED:
        raise TrainingFailed(f"run {handle.name!r}: {outcome.split(':', 1)[1].strip()}")
    return handle
