"""A whole sweep: prepare, train (resumably) and probe."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from workbench.errors import UsageError
from workbench.monitor import Monitor
from workbench.sweeps.definition import read_definition
from workbench.sweeps.executors import check_options, train_sweep
from workbench.sweeps.manifest import Sweep, prepare
from workbench.sweeps.probing import probe_sweep
from workbench.training import StopRule


def run_sweep(name: str | Path, overrides: Mapping[str, str] | None = None, root: Path | None = None,
              executor: str = "local", workers: int = 1, group_size: int = 8, device: str = "cpu",
              probe: bool = True, progress: bool | Monitor = True, sweep_name: str | None = None,
              shared_disk: bool = True, stop_hopeless: float | None = None, patience: int = 3,
              extend: bool = False) -> Sweep:
    """Prepare, train (resumably) and probe a sweep; returns the `Sweep`. ``shared_disk=False``: a
    Ray cluster whose nodes do not see this disk (`workbench.sweeps.executors`). ``stop_hopeless``:
    stop members whose forecast gives p_generalise below it in a regime that cannot generalise, at
    ``patience`` forecasts in a row (`workbench.training.StopRule`); ``extend``: train members so
    stopped on to their epochs (the two exclude each other)."""
    if stop_hopeless is not None and extend:
        raise UsageError("--stop-hopeless and --extend contradict each other (--extend trains on the members the "
                         "forecast stopped); give one")
    stop = StopRule(stop_hopeless, patience) if stop_hopeless is not None else None
    if stop is None:
        StopRule(0.5, patience)  # --patience is checked whether or not it is used
    definition = read_definition(name, overrides, sweep_name)
    device = check_options(executor, workers, group_size, device, shared_disk)
    sweep = prepare(definition, root)
    train_sweep(sweep, executor=executor, workers=workers, group_size=group_size, device=device, progress=progress,
                shared_disk=shared_disk, stop=stop, extend=extend)
    if probe:
        probe_sweep(sweep, workers=workers, progress=progress)
    return sweep
