"""Scoring forecasts on runs whose outcome is known: the honest test of a calibration.

For each run (members of sweeps the calibration was not fitted on), with T_fit and T_grok its
fit and grok steps (`workbench.forecasting.fitting.known_outcome`), forecasts are made at

    fit   s = T_fit                               (the end of memorisation)
    25%   s = T_fit + 0.25 (T_grok − T_fit)       (runs that grok only)
    50%   s = T_fit + 0.50 (T_grok − T_fit)
    800   s = 800                                 (every run: the step of the issue's example)

and scored by

    MAPE      mean over grokking runs of |ĝ − T_grok| / T_grok at each stage (a forecast with no
              grok step, p_generalise < 0.5, is counted apart as a miss, not as an error of 0)
    AUROC     of p_generalise at ``fit`` and at ``800`` for "test accuracy reaches 99% within the
              budget": the probability that a random grokking run gets a higher p than a random
              other run (ties count half; Mann–Whitney)
    coverage  the fraction of forecasts at fit / 25% / 50% whose 80% interval holds T_grok

Example:
    >>> auroc([0.9, 0.8, 0.1], [True, True, False])
    1.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench import store
from workbench.forecasting.calibration import Calibration
from workbench.forecasting.fitting import known_outcome
from workbench.forecasting.forecaster import forecast_view
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import training_view

STAGES = ("fit", "25%", "50%", "800")

ROW_COLUMNS = ("run", "stage", "at_step", "fit_step", "grok_step", "groks", "state", "p_generalise",
               "forecast_step", "low", "high")


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Mann–Whitney AUROC; NaN without both classes."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def forecast_rows(runs: Sequence[store.Run], cal: Calibration, cache: SignalCache | None = None) -> pd.DataFrame:
    """One row per run and stage (`ROW_COLUMNS`); a stage outside a run's checkpoints is skipped."""
    cache = cache or SignalCache()
    rows = []
    for run in runs:
        out = known_outcome(run)
        steps = run.steps
        if out.fit_step is None or len(steps) < 2:
            stages = {"800": 800}
        else:
            stages = {"fit": out.fit_step, "800": 800}
            if out.grok_step is not None and out.grok_step > out.fit_step:
                delay = out.grok_step - out.fit_step
                stages.update({"25%": out.fit_step + round(0.25 * delay), "50%": out.fit_step + round(0.5 * delay)})
        for stage, at in stages.items():
            if not steps[0] <= at <= steps[-1]:
                continue
            f = forecast_view(training_view(run, at), cal, cache=cache)
            rows.append({"run": f"{run.path.parent.name}/{run.name}", "stage": stage, "at_step": at, "fit_step": out.fit_step,
                         "grok_step": out.grok_step, "groks": out.grok_step is not None, "state": f.state,
                         "p_generalise": f.p_generalise, "forecast_step": f.grok_step,
                         "low": f.interval[0] if f.interval else None, "high": f.interval[1] if f.interval else None})
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def summarise(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{stage: {runs, grokking, mape, missing, coverage, auroc}} (NaN where a measure has no data)."""
    out = {}
    for stage in STAGES:
        part = rows[rows.stage == stage]
        grok = part[part.groks & (part.grok_step > part.at_step)]  # at 800, the runs still to grok
        has = grok[grok.forecast_step.notna()]
        ape = (has.forecast_step.astype(float) - has.grok_step.astype(float)).abs() / has.grok_step.astype(float)
        inside = (has.low.astype(float) <= has.grok_step.astype(float)) & (has.grok_step.astype(float) <= has.high.astype(float))
        out[stage] = {"runs": int(len(part)), "grokking": int(len(grok)),
                      "mape": float(ape.mean()) if len(ape) else float("nan"),
                      "missing": int(len(grok) - len(has)),
                      "coverage": float(inside.sum() / len(grok)) if len(grok) else float("nan"),
                      "auroc": auroc(part.p_generalise, part.groks) if stage in ("fit", "800") else float("nan")}
    return out


class Evaluation:
    """The rows and summary of one evaluation, with what it ran on and how long it took."""

    def __init__(self, rows: pd.DataFrame, cal: Calibration, sweeps: Sequence[str], wall_s: float, provenance: dict,
                 train_wall_s: float = float("nan")):
        self.rows, self.cal, self.sweeps, self.wall_s, self.provenance = rows, cal, list(sweeps), wall_s, provenance
        self.train_wall_s = train_wall_s
        self.summary = summarise(rows)
        self.in_sample: Evaluation | None = None  # the same calibration on the runs it was fitted on, for contrast

    def table(self) -> str:
        """The summary as a markdown table, one row per stage."""
        def pct(x: float) -> str:
            return "-" if x != x else f"{100 * x:.1f}%"

        def num(x: float) -> str:
            return "-" if x != x else f"{x:.3f}"

        lines = ["| stage | runs | grokking after it | MAPE of grok_step | no grok_step given | 80% coverage | AUROC of p_generalise |",
                 "|---|---|---|---|---|---|---|"]
        for stage, v in self.summary.items():
            lines.append(f"| {stage} | {v['runs']} | {v['grokking']} | {pct(v['mape'])} | {v['missing']} | "
                         f"{pct(v['coverage'])} | {num(v['auroc'])} |")
        return "\n".join(lines)

    def page(self) -> str:
        prov = self.provenance
        commit = (prov.get("git_commit") or "unknown")[:10] + (" (with uncommitted changes)" if prov.get("git_dirty") else "")
        fitted = self.cal.fitted_on
        return "\n".join([
            "# Forecast evaluation", "",
            "Written by `make forecast-eval` (`python -m workbench forecast-eval --out ...`); do not edit by hand.", "",
            f"- measured: {prov.get('created')}", f"- commit: {commit}", f"- machine: {prov.get('platform')}",
            f"- evaluated on: {', '.join(self.sweeps)} ({self.rows.run.nunique()} runs); forecasting wall time "
            f"{self.wall_s:.0f} s; training them took {self.train_wall_s:.0f} s (their sessions' wall time, a group's "
            "shared among its members)",
            f"- calibration: fitted {self.cal.fitted or 'never (defaults)'} on "
            f"{', '.join(fitted.get('sweeps', [])) or '-'} ({fitted.get('runs', 0)} runs, {fitted.get('grokking', 0)} grokking)",
            "", "Stages and measures: `workbench.forecasting.evaluation`; the rows: the .csv beside this page.", "",
            "## Held out", "", self.table(), ""]
            + (["## In sample (the runs the calibration was fitted on, for contrast)", "",
                f"{', '.join(self.in_sample.sweeps)} ({self.in_sample.rows.run.nunique()} runs)", "",
                self.in_sample.table(), ""] if self.in_sample is not None else []))

    def write(self, path: Path) -> None:
        """The page at ``path`` and its rows at ``path`` with suffix ``.csv``."""
        store.write_text(Path(path), self.page())
        store.write_table(Path(path).with_suffix(".csv"), self.rows)


def evaluate_forecasts(runs: Sequence[store.Run], cal: Calibration, sweeps: Sequence[str] = ()) -> Evaluation:
    """Forecast every run at every stage (`forecast_rows`) and summarise."""
    t0 = time.perf_counter()
    rows = forecast_rows(runs, cal)
    return Evaluation(rows, cal, sweeps, time.perf_counter() - t0, store.new_provenance(runs[0].config) if runs else {},
                      training_wall_s(runs))


def training_wall_s(runs: Sequence[store.Run]) -> float:
    """The runs' training time (`store.Run.training_wall_s`), summed."""
    return sum(run.training_wall_s for run in runs)
