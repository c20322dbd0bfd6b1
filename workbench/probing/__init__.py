"""Probing: every probe (``probes``) over every checkpoint of a run, cached, in parallel.

Modules: ``runner`` (`probe`, `ProbeResults`), ``options`` (`ProbeOptions`: settings, engine, key
frequencies), ``engines`` (which forward pass computes the grid), ``evaluate`` (a checkpoint's
activations over the grid, `evaluate_on_grid`), ``heap``
(returning freed memory to the system).
"""

from __future__ import annotations

from workbench.probing.engines import DEFAULT_ENGINE, ENGINES, check_engine, grid_activations
from workbench.probing.evaluate import GridEvaluator, evaluate_on_grid
from workbench.probing.options import ProbeOptions
from workbench.probing.runner import ProbeResults, llc_line, probe

__all__ = ["DEFAULT_ENGINE", "ENGINES", "GridEvaluator", "ProbeOptions", "ProbeResults", "check_engine", "evaluate_on_grid", "grid_activations", "llc_line", "probe"]
