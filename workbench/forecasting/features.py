"""What the forecast knows about a run at step s: one `Evidence` record, from a `TrainingView` and its signals.

Everything here is read from the view (the config, the training metrics up to s, the signals
of the checkpoints up to s); nothing from a test number or a later step. With t_fit the fit
step, e = s − t_fit the time spent on the plateau, and a window w = max(200, e / 4) steps (at
least the last 4 checkpoints) for every trend:

    norm_rate       r = −d log V / dt over w (the metrics' V, every evaluation): the run's own
                    decay rate, where the weight-norm law assumes 2 κ η λ
    gini, gini_slope    the embedding's Fourier Gini at s and its slope over w
    log_restricted, restricted_slope   log of the restricted loss on the training inputs at s
                    and its slope over w (the circuit alone, getting better)
    slingshots      falls of the train accuracy below 90% since fitting (Thilak et al. 2022)

and the four estimates of the delay Δ = T_grok − t_fit (each the delay it implies, e plus the
time still to go, clipped to [e + 1, `DELAY_CAP`]; `Calibration` holds the fitted constants):

    prior       exp(μ₀): the config prior, log Δ = c · (1, log η, log λ, log f, log p, op, log d_model)
    norm        e + (log V(s) − log V★) / r, with log(V★ / V₀) = c★ · the same config features
                (the weight-norm law with the run's own rate: arXiv 2605.18845, 2603.13331)
    gini        e + (g★ − g(s)) / ġ            (Nanda et al. 2023: the embedding sparsifies first)
    restricted  e + (log R(s) − log R★) / (−d log R/dt)   (the restricted loss's log-linear fall)
    cleanup     e + (log ρ(s) − log ρ★) / (−d log ρ/dt)   (the memorisation ratio's fall, Varma et al. 2023)

Example:
    >>> from workbench.forecasting import SignalCache, shipped_calibration, training_view
    >>> view = training_view(workbench.open_run("demo"), 300)
    >>> ev = evidence(view, SignalCache().table(view))
    >>> ev.fitted, sorted(implied_delays(ev, shipped_calibration()))
    (True, ['cleanup', 'gini', 'norm', 'prior', 'restricted'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.config import RunConfig
from workbench.forecasting.estimators import slingshots, trend
from workbench.forecasting.signals import fit_step
from workbench.forecasting.view import TrainingView

DELAY_CAP = 100_000.0  # a delay estimate that does not converge (a trend the wrong way) is this many steps
OPERATION_FEATURES = ("sub", "mul")  # one-hot against add (and every other operation reads as add)
CONFIG_FEATURES = ("1", "log_lr", "log_wd", "log_frac", "log_p", "op_sub", "op_mul", "log_d_model")
ESTIMATORS = ("prior", "norm", "gini", "restricted", "cleanup")


def config_features(cfg: RunConfig) -> np.ndarray:
    """(1, log η, log λ, log f, log p, [op = sub], [op = mul], log d_model); λ = 0 reads as 1e-6."""
    return np.array([1.0, math.log(cfg.lr), math.log(max(cfg.weight_decay, 1e-6)), math.log(cfg.frac_train),
                     math.log(cfg.p), float(cfg.operation == "sub"), float(cfg.operation in ("mul", "div")),
                     math.log(cfg.d_model)])


@dataclass(frozen=True)
class Evidence:
    """The run at step s, as the forecast reads it (module docstring). Raw quantities only: the
    delay estimates, which depend on fitted constants, come from `implied_delays`."""

    at_step: int
    fit_step: int | None
    elapsed: float  # s − t_fit (0 before fitting)
    log_norm: float  # log V(s)
    log_norm_init: float  # log V(0): the run's own initial norm
    norm_rate: float  # −d log V / dt over the window
    gini: float
    gini_at_fit: float
    gini_slope: float
    log_restricted: float  # NaN where the task has no a ± b coordinates
    restricted_slope: float
    log_excluded: float
    log_ratio: float  # log ρ, the memorisation ratio (NaN without a ± b coordinates)
    ratio_slope: float
    logit_scale: float
    slingshots: int
    log_train_loss: float
    train_loss_slope: float  # d log L / dt over the window (before fitting: toward the fit)
    x_config: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(len(CONFIG_FEATURES)))

    @property
    def fitted(self) -> bool:
        return self.fit_step is not None


def _window(s: int, t_fit: int | None, steps: np.ndarray) -> float:
    last4 = float(s - steps[-min(4, len(steps))]) if len(steps) else 0.0
    return max(200.0, 0.25 * (s - (t_fit or 0)), last4)


def _finite(x: float, default: float = math.nan) -> float:
    return float(x) if x is not None and math.isfinite(x) else default


def _log(x) -> np.ndarray:
    return np.log(np.maximum(np.asarray(x, dtype=float), 1e-300))


def evidence(view: TrainingView, table: pd.DataFrame) -> Evidence:
    """The `Evidence` at the view's step from its metrics and signal ``table`` (`signals.SignalCache`)."""
    m = view.metrics
    return evidence_at(view.config, view.at_step, m.step.to_numpy(float), m.train_loss.to_numpy(float),
                       m.train_acc.to_numpy(float), m.weight_norm.to_numpy(float), table, fit_step(view))


def evidence_at(cfg: RunConfig, s: int, steps, train_loss, train_acc, weight_norm, table: pd.DataFrame,
                t_fit: int | None) -> Evidence:
    """`evidence` from arrays: the metrics at or before s and the signal rows at or before s."""
    window = _window(s, t_fit, table.step.to_numpy())
    log_v = _log(weight_norm)
    v_slope, _ = trend(steps, log_v, window)
    g_slope, _ = trend(table.step, table.fourier_gini, window)
    log_r = _log(table.restricted_loss)
    r_slope, _ = trend(table.step, np.where(np.isfinite(table.restricted_loss.to_numpy(float)), log_r, np.nan), window)
    ratio = table.memorisation_ratio.to_numpy(float)
    log_rho = np.where(np.isfinite(ratio) & (ratio > 0), np.log(np.maximum(ratio, 1e-300)), np.nan)
    rho_slope, _ = trend(table.step, log_rho, window)
    log_l = _log(train_loss)
    l_slope, _ = trend(steps, log_l, max(200.0, 0.5 * s) if t_fit is None else window)
    g_now = float(table.fourier_gini.iloc[-1])
    restricted = float(table.restricted_loss.iloc[-1])
    excluded = float(table.excluded_loss.iloc[-1])
    return Evidence(
        at_step=int(s), fit_step=t_fit, elapsed=float(s - t_fit) if t_fit is not None else 0.0,
        log_norm=float(log_v[-1]), log_norm_init=float(log_v[0]), norm_rate=-_finite(v_slope, 0.0),
        gini=g_now, gini_at_fit=float(np.interp(t_fit, table.step, table.fourier_gini)) if t_fit is not None else g_now,
        gini_slope=_finite(g_slope, 0.0),
        log_restricted=math.log(max(restricted, 1e-300)) if math.isfinite(restricted) else math.nan,
        restricted_slope=_finite(r_slope, 0.0),
        log_excluded=math.log(max(excluded, 1e-300)) if math.isfinite(excluded) else math.nan,
        log_ratio=float(log_rho[-1]), ratio_slope=_finite(rho_slope, 0.0),
        logit_scale=_finite(float(table.logit_scale.iloc[-1]), 0.0), slingshots=slingshots(steps, train_acc, t_fit),
        log_train_loss=float(log_l[-1]), train_loss_slope=_finite(l_slope, 0.0), x_config=config_features(cfg))


def _implied(elapsed: float, remaining: float) -> float:
    """The delay e + remaining, clipped to [e + 1, DELAY_CAP] (a non-converging trend gives the cap)."""
    total = elapsed + remaining if math.isfinite(remaining) and remaining >= 0 else DELAY_CAP
    return float(min(max(total, elapsed + 1.0), DELAY_CAP))


def implied_delays(ev: Evidence, cal) -> dict[str, float]:
    """Each estimator's delay Δ (steps after t_fit) at ``ev`` under calibration ``cal`` (module
    docstring); ``restricted`` is NaN where the task has no a ± b coordinates."""
    e = ev.elapsed
    prior = math.exp(float(np.clip(cal.prior_coef @ ev.x_config, 0.0, math.log(DELAY_CAP))))
    out = {"prior": float(min(max(prior, e + 1.0), DELAY_CAP))}
    log_v_star = ev.log_norm_init + float(np.clip(cal.v_star_coef @ ev.x_config, -20.0, 20.0))
    out["norm"] = _implied(e, 0.0 if ev.log_norm <= log_v_star
                           else (ev.log_norm - log_v_star) / ev.norm_rate if ev.norm_rate > 0 else math.inf)
    out["gini"] = _implied(e, 0.0 if ev.gini >= cal.gini_star
                           else (cal.gini_star - ev.gini) / ev.gini_slope if ev.gini_slope > 0 else math.inf)
    if math.isfinite(ev.log_restricted):
        out["restricted"] = _implied(e, 0.0 if ev.log_restricted <= cal.log_restricted_star
                                     else (ev.log_restricted - cal.log_restricted_star) / -ev.restricted_slope
                                     if ev.restricted_slope < 0 else math.inf)
    else:
        out["restricted"] = math.nan
    if math.isfinite(ev.log_ratio):
        out["cleanup"] = _implied(e, 0.0 if ev.log_ratio <= cal.log_ratio_star
                                  else (ev.log_ratio - cal.log_ratio_star) / -ev.ratio_slope if ev.ratio_slope < 0 else math.inf)
    else:
        out["cleanup"] = math.nan
    return out


# ----------------------------------------------------------------------------- the models' inputs
STAGE_AT_FIT = 20  # steps after the fit step that still count as "at the end of memorisation"


def progress(ev: Evidence, delays: dict[str, float], cal) -> float:
    """u in [0, 1]: how far along the plateau the run is, the larger of the Gini's share of the way
    from its value at fitting to g★ and the elapsed share of the prior's delay."""
    span = cal.gini_star - ev.gini_at_fit
    q = (ev.gini - ev.gini_at_fit) / span if span > 1e-9 else 1.0
    return float(np.clip(max(q, ev.elapsed / delays["prior"]), 0.0, 1.0))


def stage_of(ev: Evidence, delays: dict[str, float], cal) -> int:
    """The stage index (`calibration.STAGES`): at_fit (within `STAGE_AT_FIT` steps of fitting), then
    early, middle, late by thirds of `progress`."""
    if ev.elapsed <= STAGE_AT_FIT:
        return 0
    return 1 + min(2, int(3 * progress(ev, delays, cal)))


def _or(x: float, fallback: float) -> float:
    return x if math.isfinite(x) else fallback


def delay_row(ev: Evidence, delays: dict[str, float]) -> np.ndarray:
    """`calibration.DELAY_FEATURES`: (1, log of each estimator's delay, log(e + 10), and the raw clocks
    they come from: g, log ρ, its slope, ġ, log R); an estimator that does not apply (restricted and
    cleanup, for a task without a ± b coordinates) reads as the prior, its clock as 0."""
    lp = math.log(delays["prior"])
    logs = [math.log(delays[k]) if math.isfinite(delays[k]) else lp for k in ESTIMATORS]
    return np.array([1.0, *logs, math.log(ev.elapsed + 10.0), ev.gini, _or(ev.log_ratio, 0.0), 1e2 * ev.ratio_slope,
                     1e3 * ev.gini_slope, _or(ev.log_restricted, 0.0)])


def _eta_lambda(ev: Evidence) -> float:
    return float(ev.x_config[1] + ev.x_config[2])  # log η + log λ


def generalise_row(ev: Evidence, mu: float, sigma: float, budget: float) -> np.ndarray:
    """`calibration.GENERALISE_FEATURES`; ``budget`` the steps after fitting the horizon allows,
    z_budget = (log budget − μ) / σ (clipped to ±10: a budget spent is −10)."""
    x = ev.x_config
    z = (math.log(budget) - mu) / sigma if budget > 0 else -10.0
    no_decay = float(x[2] <= math.log(1e-6) + 1e-9)
    return np.array([1.0, float(np.clip(z, -10, 10)), x[3], x[4], x[5], x[6], no_decay, _eta_lambda(ev), ev.gini,
                     1e3 * ev.gini_slope, _or(ev.log_restricted, 0.0), 1e2 * ev.restricted_slope,
                     _or(ev.log_ratio, 0.0), 1e2 * ev.ratio_slope, float(np.clip(ev.norm_rate / math.exp(_eta_lambda(ev)), -10, 10)), float(ev.slingshots), math.log(ev.elapsed + 10.0)])


def comprehension_row(ev: Evidence) -> np.ndarray:
    """`calibration.COMPREHENSION_FEATURES`."""
    x = ev.x_config
    return np.array([1.0, ev.gini, _or(ev.log_restricted, 0.0), _or(ev.log_ratio, 0.0), x[3], x[4], x[5], x[6],
                     _eta_lambda(ev), math.log(ev.elapsed + 10.0)])


def generalised_row(ev: Evidence, delays: dict[str, float]) -> np.ndarray:
    """`calibration.GENERALISED_FEATURES`."""
    x = ev.x_config
    return np.array([1.0, ev.gini, _or(ev.log_restricted, 0.0), _or(ev.log_excluded, 0.0), _or(ev.log_ratio, 0.0),
                     1e3 * ev.gini_slope, 1e2 * ev.restricted_slope, 1e2 * ev.ratio_slope, math.log(ev.elapsed + 10.0),
                     x[3], x[4], x[5], x[6], math.log(delays["prior"])])
