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
    evaluate,
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

    p = sub.add_parser("forecast-fit", help="fit the forecaster's constants on complete sweeps, across their families")
    p.add_argument("--sweeps", default=FIT_SWEEPS, help="comma-separated sweep names or paths (default: %(default)s)")
    p.add_argument("--out", default=None, help="where to write the calibration (default: the shipped calibration.json)")

    p = sub.add_parser("forecast-eval", help="score the forecaster leave one family out, and on sweeps it never saw")
    p.add_argument("--sweeps", default=FIT_SWEEPS, help="the sweeps to fit and score leave one family out "
                   "(default: %(default)s)")
    p.add_argument("--unseen", default=UNSEEN_SWEEPS, help="sweeps no calibration is fitted on, scored by the calibration "
                   "(default: %(default)s; '' for none)")
    p.add_argument("--calibration", default=None, help="the calibration for --unseen (default: the shipped one)")
    p.add_argument("--out", default=None, help="write the results page here (and its rows beside it as .csv)")

    return {"forecast": _cmd_forecast, "forecast-fit": _cmd_forecast_fit, "forecast-eval": _cmd_forecast_eval}


FIT_SWEEPS = "forecast-families,forecast-decay,forecast-fit,seeds,forecast-heldout,frac-wd"
UNSEEN_SWEEPS = "forecast-unseen"


def _calibration(path: str | None):
    return load_calibration(Path(path)) if path else shipped_calibration()


def _sweep_runs(names: str, required: bool = True) -> tuple[list, list[str]]:
    """Every complete member of the named sweeps; a `UsageError` if one has none (or none is given,
    unless not ``required``)."""
    runs, used = [], []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        sweep = open_sweep(name, runs_root())
        members = sweep.runs()
        if not members:
            raise UsageError(f"sweep {sweep.name!r} has no complete member; train it with make sweep SWEEP={sweep.name}")
        runs += members
        used.append(sweep.name)
    if not runs and required:
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
    out = Path(args.out) if args.out else SHIPPED_CALIBRATION
    cal = fit_calibration(runs, {"sweeps": used})
    save_calibration(cal, out)
    fitted = cal.fitted_on
    print(f"fitted on {fitted['runs']} runs of {', '.join(used)} ({len(fitted['families'])} families, "
          f"{fitted['grokking']} grok, {fitted['generalising']} generalise): g* {cal.gini_star:.3f}, "
          f"log rho* {cal.log_ratio_star:.2f}  -> {out}")
    return 0


def _cmd_forecast_eval(args: argparse.Namespace) -> int:
    runs, used = _sweep_runs(args.sweeps)
    unseen, unseen_used = _sweep_runs(args.unseen, required=False)
    cal = _calibration(args.calibration) if unseen else None
    evaluation = evaluate(runs, used, unseen, unseen_used, cal, progress=lambda f: print(f"  scored {f}", flush=True))
    print(evaluation.page())
    if args.out:
        evaluation.write(Path(args.out))
        print(f"-> {args.out}")
    return 0
