"""Sweeps: many runs from one small definition, trained in groups, probed into one table.

Modules: ``definition`` (the TOML definition language; the shipped definitions are in
``definitions/``), ``manifest`` (`Sweep`, `open_sweep`, `prepare`), ``executors`` (training the
members in groups: in process, in worker processes, on Ray), ``probing`` (`probe_sweep`, the
outcome table), ``runner`` (`run_sweep`).
"""

from __future__ import annotations

from workbench.sweeps.definition import SEED_AXIS, SWEEP_DIR, definition_names, read_definition
from workbench.sweeps.executors import chunks
from workbench.sweeps.manifest import Sweep, open_sweep, prepare
from workbench.sweeps.probing import phase_table, probe_sweep
from workbench.sweeps.runner import run_sweep

__all__ = ["SEED_AXIS", "SWEEP_DIR", "Sweep", "chunks", "definition_names", "open_sweep", "phase_table", "prepare", "probe_sweep", "read_definition", "run_sweep"]
