"""Fitting the forecaster's constants (`Calibration`) on runs whose outcome is known.

`known_outcome` reads the answer from a run's full metrics (fit step, first step with test
accuracy >= 99%); only fitting and evaluation read it, never a forecast. `fit_calibration`
fits every constant listed in `workbench.forecasting.calibration` from complete runs.

Example:
    >>> known_outcome(workbench.open_run("demo")).grok_step is None      # smoke memorises only
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from probes.outcome import outcome
from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.calibration import PRIOR_FIELDS, Calibration, prior_features
from workbench.forecasting.forecaster import forecast_view
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import training_view


@dataclass(frozen=True)
class Outcome:
    """The answer for one run, read from its full metrics (calibration and evaluation only)."""

    fit_step: int | None
    grok_step: int | None  # first step with test accuracy >= 99%, or None within the run


def known_outcome(run: store.Run) -> Outcome:
    found = outcome(run.metrics)  # the sweep table's fit_step and gen_step, by the same rule
    return Outcome(found["fit_step"], found["gen_step"])


def _gini_at(table, step: float) -> float:
    return float(np.interp(step, table.step, table.fourier_gini))


def fit_calibration(runs: Sequence[store.Run], sources: dict | None = None, cache: SignalCache | None = None) -> Calibration:
    """Fit the constants (module docstring) on complete runs; a `UsageError` if fewer than three grok."""
    cache = cache or SignalCache()
    groks, fit_losses = [], []
    for run in runs:
        out = known_outcome(run)
        if out.fit_step is None:
            continue
        m = run.metrics
        fit_losses.append(float(m.train_loss[m.step == out.fit_step].iloc[0]))
        if out.grok_step is None or out.grok_step <= out.fit_step:
            continue
        table = cache.table(training_view(run))
        groks.append((run, out, table))
    if len(groks) < 3:
        raise UsageError(f"calibration needs at least three runs that fit and then grok; these {len(runs)} have {len(groks)}")
    g_at_grok = [_gini_at(t, o.grok_step) for _, o, t in groks]
    gini_star = float(np.median(g_at_grok))
    X = np.array([prior_features(r.config) for r, _, _ in groks])
    y = np.array([math.log(o.grok_step - o.fit_step) for _, o, _ in groks])
    varied = [0] + [j for j in range(1, X.shape[1]) if np.ptp(X[:, j]) > 1e-12]
    coef = np.zeros(X.shape[1])
    coef[varied], *_ = np.linalg.lstsq(X[:, varied], y, rcond=None)
    not_varied = [PRIOR_FIELDS[j - 1] for j in range(1, X.shape[1]) if j not in varied]
    sigma_prior = float(np.sqrt(np.mean((y - X @ coef) ** 2) * len(y) / max(len(y) - len(varied), 1)))
    slopes = []
    for _, o, t in groks:
        window = t[(t.step >= o.grok_step - 300) & (t.step <= o.grok_step)]
        if len(window) >= 2:
            slopes.append(float(np.polyfit(window.step, window.fourier_gini, 1)[0]))
    stall = 0.5 * min(s for s in slopes if s > 0) if any(s > 0 for s in slopes) else Calibration.stall_slope
    cal = Calibration(gini_star=gini_star, prior_coef=tuple(float(c) for c in coef), sigma_prior=sigma_prior,
                      stall_slope=stall, fit_loss=float(np.median(fit_losses)),
                      fitted_on=dict(sources or {}, runs=len(runs), grokking=len(groks), not_varied=not_varied),
                      fitted=datetime.now(UTC).date().isoformat())
    return _fit_trend(cal, groks, cache)


STAGES = (0.25, 0.5, 0.75)  # where on the way from fit to grok the trend constants are scored


def _stage_views(groks) -> list[tuple]:
    views = []
    for run, out, _ in groks:
        for u in STAGES:
            at = out.fit_step + round(u * (out.grok_step - out.fit_step))
            if run.steps[0] <= at <= run.steps[-1]:
                views.append((training_view(run, at), out))
    return views


def _log_errors(cal: Calibration, views, cache: SignalCache) -> list[float]:
    errors = []
    for view, out in views:
        f = forecast_view(view, cal, horizon=10**9, cache=cache)  # scored on the step, whatever the budget
        predicted = f.grok_step if f.grok_step is not None else 10**9
        errors.append(math.log(max(predicted - out.fit_step, 1)) - math.log(out.grok_step - out.fit_step))
    return errors


def _fit_trend(cal: Calibration, groks, cache: SignalCache) -> Calibration:
    """g_t and β by grid search, then sigma_trend from the errors they leave (module docstring)."""
    views = _stage_views(groks)
    if len(views) < 3:
        return cal
    best = None
    for target in np.linspace(0.35, cal.gini_star, 9):
        for scale in (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5):
            trial = replace(cal, trend_target=float(target), trend_scale=scale)
            score = float(np.median(np.abs(_log_errors(trial, views, cache))))
            if best is None or score < best[0]:
                best = (score, trial)
    fitted = best[1]
    errors = _log_errors(fitted, views, cache)
    return replace(fitted, sigma_trend=float(max(np.sqrt(np.mean(np.square(errors))), 0.05)))


def _checkpoint_at_or_before(run: store.Run, step: float) -> int | None:
    steps = [s for s in run.steps if s <= step]
    return steps[-1] if steps else None
