"""A whole sweep: prepare, train (resumably) and probe."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from workbench.monitor import Monitor
from workbench.sweeps.definition import read_definition
from workbench.sweeps.executors import check_options, train_sweep
from workbench.sweeps.manifest import Sweep, prepare
from workbench.sweeps.probing import probe_sweep


def run_sweep(name: str | Path, overrides: Mapping[str, str] | None = None, root: Path | None = None,
              executor: str = "local", workers: int = 1, group_size: int = 8, device: str = "cpu",
              probe: bool = True, progress: bool | Monitor = True, sweep_name: str | None = None,
              shared_disk: bool = True) -> Sweep:
    """Prepare, train (resumably) and probe a sweep; returns the `Sweep`. ``shared_disk=False``: a
    Ray cluster whose nodes do not see this disk (`workbench.sweeps.executors`)."""
    definition = read_definition(name, overrides, sweep_name)
    device = check_options(executor, workers, group_size, device, shared_disk)
    sweep = prepare(definition, root)
    train_sweep(sweep, executor=executor, workers=workers, group_size=group_size, device=device, progress=progress,
                shared_disk=shared_disk)
    if probe:
        probe_sweep(sweep, workers=workers, progress=progress)
    return sweep
