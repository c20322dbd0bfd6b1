"""Command line: a thin layer over the library API (``python -m workbench ...``, ``make ...``).

Modules: ``shell`` (the runs root, the console, the one-line parser), ``runs`` (train, probe,
report, import, info, runs, presets), ``sweeps`` (sweep, sweep-report, sweeps), ``forecasts``
(forecast, forecast-fit, forecast-eval), ``double_descent`` (rff, double-descent), ``command_line`` (the
parser over every group, and `main`). Runs live under ``$WORKBENCH_CHECKPOINTS`` when it is set,
else under ``checkpoints/``: `shell.runs_root` is the only place the environment is read.

Example:
    $ python -m workbench train demo --preset fast epochs=3000
    $ python -m workbench runs
"""

from __future__ import annotations

from workbench.cli.command_line import main
from workbench.cli.shell import runs_root

__all__ = ["main", "runs_root"]
