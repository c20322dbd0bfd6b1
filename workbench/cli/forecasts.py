"""The forecast commands: forecast one run, fit the calibration, score it on held-out sweeps.

Example:
    $ python -m workbench forecast demo --at 800
    $ python -m workbench forecast-eval --out docs/results/forecast-eval.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.cli.shell import runs_root
from workbench.errors import UsageError
from workbench.forecasting import (
    SHIPPED_CALIBRATION,
    evaluate_forecasts,
    fit_calibration,
    forecast,
    load_calibration,
    save_calibration,
    shipped_calibration,
)
from workbench.sweeps import open_sweep


def add_commands(sub) -> dict:
    """Register this module's subcommands on ``sub``; returns {command: function}."""
    p = sub.add_parser("forecast", help="will this run generalise, and when? from what training alone shows")
    p.add_argument("run", help="run name or a run directory's path")
    p.add_argument("--at", type=int, default=None, help="forecast as of this step (default: the last checkpoint)")
    p.add_argument("--horizon", type=int, default=None, help="steps the run may train (default: its configured epochs)")
    p.add_argument("--calibration", default=None, help="a calibration file from forecast-fit (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("forecast-fit", help="fit the forecaster's constants on complete sweeps")
    p.add_argument("--sweeps", default="forecast-fit,seeds", help="comma-separated sweep names or paths (default: %(default)s)")
    p.add_argument("--out", default=None, help="where to write the calibration (default: the shipped calibration.json)")

    p = sub.add_parser("forecast-eval", help="score a calibration on complete sweeps it was not fitted on")
    p.add_argument("--sweeps", default="forecast-heldout", help="comma-separated sweep names or paths (default: %(default)s)")
    p.add_argument("--calibration", default=None, help="a calibration file (default: the shipped one)")
    p.add_argument("--in-sample", default=None, help="also score the sweeps it was fitted on, for contrast (e.g. forecast-fit,seeds)")
    p.add_argument("--out", default=None, help="write the results page here (and its rows beside it as .csv)")

    return {"forecast": _cmd_forecast, "forecast-fit": _cmd_forecast_fit, "forecast-eval": _cmd_forecast_eval}


def _calibration(path: str | None):
    return load_calibration(Path(path)) if path else shipped_calibration()


def _sweep_runs(names: str) -> tuple[list, list[str]]:
    """Every complete member of the named sweeps; a `UsageError` if one has none."""
    runs, used = [], []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        sweep = open_sweep(name, runs_root())
        members = sweep.runs()
        if not members:
            raise UsageError(f"sweep {sweep.name!r} has no complete member; train it with make sweep SWEEP={sweep.name}")
        runs += members
        used.append(sweep.name)
    if not runs:
        raise UsageError("no sweep given; name one or more with --sweeps a,b")
    return runs, used


def _cmd_forecast(args: argparse.Namespace) -> int:
    result = forecast(args.run, args.at, args.horizon, _calibration(args.calibration), root=runs_root())
    print(json.dumps(result.to_dict(), allow_nan=False, default=_no_nan) if args.json else result.text())
    return 0


def _no_nan(value):
    raise TypeError(f"not JSON: {value!r}")


def _cmd_forecast_fit(args: argparse.Namespace) -> int:
    runs, used = _sweep_runs(args.sweeps)
    cal = fit_calibration(runs, {"sweeps": used})
    out = Path(args.out) if args.out else SHIPPED_CALIBRATION
    save_calibration(cal, out)
    print(f"fitted on {len(runs)} runs of {', '.join(used)} ({cal.fitted_on['grokking']} grok): "
          f"g* {cal.gini_star:.3f}, sigma {cal.sigma_prior:.2f}/{cal.sigma_trend:.2f}  -> {out}")
    return 0


def _cmd_forecast_eval(args: argparse.Namespace) -> int:
    runs, used = _sweep_runs(args.sweeps)
    cal = _calibration(args.calibration)
    evaluation = evaluate_forecasts(runs, cal, used)
    print(evaluation.table())
    if args.in_sample:
        fitted_runs, fitted_used = _sweep_runs(args.in_sample)
        evaluation.in_sample = evaluate_forecasts(fitted_runs, cal, fitted_used)
        print(f"in sample ({', '.join(fitted_used)}):\n{evaluation.in_sample.table()}")
    if args.out:
        evaluation.write(Path(args.out))
        print(f"-> {args.out}")
    return 0
