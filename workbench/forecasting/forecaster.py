"""The forecast: will this run generalise within its budget, and when, from what training alone shows.

`forecast(run, at_step)` reads the run through `training_view` (training-set information up to
``at_step`` only) and combines two estimates of the delay Δ = T_grok − T_fit, in log space:

    prior   μ₀ = a + b log η + c log λ + d log f + e log p   the config's weight-norm law (fitted constants)
    trend   μ₁ = log(T₁ − T_fit),  T₁ = s + β (g_t − g(s)) / ġ(s)   (s itself once g(s) >= g_t)
            g the embedding's Fourier Gini, g_t and β fitted (`Calibration`), ġ its slope over the last max(200, (s − T_fit)/4) steps (4 checkpoints at least)
    μ  = (1 − w) μ₀ + w μ₁,   w = clip(max(q, (s − T_fit) / e^μ₀), 0, 1),  q = (g(s) − g(T_fit)) / (g★ − g(T_fit))
    σ  = (1 − w) σ_prior + w σ_trend

so the config carries the forecast at the end of memorisation and the measured hidden progress
takes over as it accumulates (or as the prior's expected delay runs out without it). Δ is
log-normal with (μ, σ), conditioned on not having happened by s:

    p_generalise = P(T ≤ H | T > s),  H the horizon (default: the configured epochs)
    grok_step    = T_fit + the conditional median of Δ;  interval: its 10% and 90% quantiles

States: ``not_fitted`` (train accuracy < 99%: the fit step is extrapolated from the log train loss
toward the calibrated fit loss, and the prior added), ``generalised`` (g(s) ≥ g★: the circuit is
there; grok_step is where g crossed g★), ``memorised_progressing`` (ġ ≥ the calibrated stall
slope) and ``memorised_stalled``. ``grok_step`` and ``interval`` are None where p_generalise < 0.5.
Constants: `workbench.forecasting.calibration`; the measured accuracy: docs/results/forecast-eval.md.

Example:
    >>> f = forecast(workbench.open_run("demo"))      # the smoke run: it memorises, never groks
    >>> f.at_step, f.fit_step is not None, f.state in STATES
    (300, True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.calibration import Calibration, shipped_calibration
from workbench.forecasting.estimators import early_loss_energy, time_to_reach, trend
from workbench.forecasting.signals import SignalCache, fit_step
from workbench.forecasting.view import TrainingView, training_view

STATES = ("not_fitted", "memorised_progressing", "memorised_stalled", "generalised")

INTERVAL = (0.1, 0.9)  # the 80% interval's quantiles

EARLY_STEPS = 300  # the early-loss energy's window (Notsawo et al. 2023: the first few hundred steps)

_N = NormalDist()


@dataclass(frozen=True)
class Signal:
    name: str
    value: float | None
    trend: float | None  # per step, over the forecast's window; None where it has none
    estimator: str


@dataclass(frozen=True)
class Forecast:
    run: str
    at_step: int
    horizon: int
    state: str
    p_generalise: float
    grok_step: int | None
    interval: tuple[int, int] | None
    fit_step: int | None
    signals: list[Signal] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out

    def short(self) -> str:
        """One line for a progress bar: "groks ~1,450 [1,300–1,700]" or "no generalisation expected"."""
        if self.grok_step is None:
            return "not fitted yet" if self.state == "not_fitted" and self.p_generalise >= 0.1 else \
                "no generalisation expected"
        lo, hi = self.interval
        verb = "grokked" if self.state == "generalised" else "groks"
        return f"{verb} ~{self.grok_step:,} [{lo:,}–{hi:,}]"

    def text(self) -> str:
        head = [f"{self.run} at step {self.at_step:,} (horizon {self.horizon:,}): {self.state.replace('_', ' ')}",
                f"  p_generalise {self.p_generalise:.2f}   {self.short()}"]
        rows = [f"  {s.name:18s} {_fmt(s.value):>10s}  trend {_fmt(s.trend):>10s}/step  ({s.estimator})"
                for s in self.signals]
        return "\n".join(head + rows)


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _conditional_quantile(mu: float, sigma: float, after: float, u: float) -> float:
    """The u-quantile of log-normal Δ (μ, σ) given Δ > ``after``."""
    lo = _N.cdf((math.log(after) - mu) / sigma) if after > 0 else 0.0
    q = min(lo + u * (1 - lo), 1 - 1e-12)
    return math.exp(mu + sigma * _N.inv_cdf(q)) if q > 0 else 0.0


def _p_by(mu: float, sigma: float, after: float, horizon: float) -> float:
    """P(Δ <= horizon | Δ > after) for log-normal Δ."""
    if not math.isfinite(mu) or horizon <= after:
        return 0.0
    c_after = _N.cdf((math.log(after) - mu) / sigma) if after > 0 else 0.0
    c_h = _N.cdf((math.log(horizon) - mu) / sigma)
    return float(max(c_h - c_after, 0.0) / max(1 - c_after, 1e-300))


def forecast_view(view: TrainingView, cal: Calibration | None = None, horizon: int | None = None,
                  cache: SignalCache | None = None) -> Forecast:
    """The forecast from one `TrainingView` (formulas: module docstring)."""
    cal = cal or shipped_calibration()
    cfg, s = view.config, view.at_step
    H = int(horizon or cfg.epochs)
    table = (cache or SignalCache()).table(view)
    if table.empty:
        raise UsageError(f"run {view.run.name!r} has no readable checkpoint at or before step {s}; "
                         "restore the damaged checkpoint files from a copy, or give a later --at")
    metrics = view.metrics
    t_fit = fit_step(view)
    # the trend's window: the last quarter of the time since fitting, at least 200 steps and 4 checkpoints
    window = max(200.0, 0.25 * (s - (t_fit or 0)), float(s - table.step.iloc[-min(4, len(table))]))
    g_now = float(table.fourier_gini.iloc[-1])
    g_slope, _ = trend(table.step, table.fourier_gini, window)
    mu0 = cal.prior_log_delay(cfg)
    signals = _evidence(view, table, window, g_slope, mu0)

    def result(state: str, p: float, mu: float = math.nan, sigma: float = math.nan, t0: float = 0, after: float = 0):
        grok = interval = None
        if p >= 0.5 and math.isfinite(mu):
            q = [_conditional_quantile(mu, sigma, after, u) for u in (INTERVAL[0], 0.5, INTERVAL[1])]
            lo, grok, hi = (int(round(t0 + x)) for x in q)
            interval = (lo, hi)
        return Forecast(view.run.name, s, H, state, round(float(p), 4), grok, interval, t_fit, signals)

    if t_fit is None:
        loss = metrics.train_loss.to_numpy()
        l_slope, _ = trend(metrics.step, np.log(np.maximum(loss, 1e-300)), max(200.0, 0.5 * s))
        gap = math.log(max(loss[-1], 1e-300)) - math.log(cal.fit_loss)
        t_fit_hat = s + gap / -l_slope if l_slope < 0 else math.inf
        if not math.isfinite(t_fit_hat) or t_fit_hat >= H:
            return result("not_fitted", 0.0)
        return result("not_fitted", _p_by(mu0, cal.sigma_prior, 0, H - t_fit_hat), mu0, cal.sigma_prior, t_fit_hat)
    if g_now >= cal.gini_star:
        crossed = _crossing(table, cal.gini_star)
        prev = int(table.step[table.step < crossed].max()) if (table.step < crossed).any() else int(crossed)
        return Forecast(view.run.name, s, H, "generalised", 1.0, int(round(crossed)), (prev, int(table.step[table.step >= crossed].min())),
                        t_fit, signals)
    elapsed = max(s - t_fit, 1)
    g_fit = float(np.interp(t_fit, table.step, table.fourier_gini))
    q = (g_now - g_fit) / (cal.gini_star - g_fit) if cal.gini_star > g_fit else 1.0
    floor = cal.stall_slope / 10  # a slope at or below zero: as slow as a tenth of a stall
    slope = max(g_slope, floor) if math.isfinite(g_slope) else floor
    t_trend = s + cal.trend_scale * (time_to_reach(g_now, slope, cal.trend_target, s) - s)
    mu1 = math.log(max(t_trend - t_fit, 1.0))
    w = float(np.clip(max(q, elapsed / math.exp(mu0) if math.isfinite(mu0) else 1.0), 0.0, 1.0))
    mu = mu1 if not math.isfinite(mu0) else (1 - w) * mu0 + w * mu1
    sigma = (1 - w) * cal.sigma_prior + w * cal.sigma_trend
    state = "memorised_progressing" if math.isfinite(g_slope) and g_slope >= cal.stall_slope else "memorised_stalled"
    return result(state, _p_by(mu, sigma, elapsed, H - t_fit), mu, sigma, t_fit, elapsed)


def _crossing(table, target: float) -> float:
    """The first step where the Gini reaches ``target``, interpolated between checkpoints."""
    above = np.flatnonzero(table.fourier_gini.to_numpy() >= target)
    i = int(above[0])
    if i == 0:
        return float(table.step.iloc[0])
    s0, s1 = table.step.iloc[i - 1], table.step.iloc[i]
    g0, g1 = table.fourier_gini.iloc[i - 1], table.fourier_gini.iloc[i]
    return float(s0 + (target - g0) / (g1 - g0) * (s1 - s0))


def _evidence(view: TrainingView, table, window: float, g_slope: float, mu0: float) -> list[Signal]:
    m = view.metrics
    log_norm = np.log(table.weight_norm.to_numpy())
    norm_slope, _ = trend(table.step, log_norm, window)
    scale_slope, _ = trend(table.step, table.logit_scale, window)
    out = [Signal("fourier_gini", _finite(table.fourier_gini.iloc[-1]), _finite(g_slope),
                  "fourier_gini: embedding Fourier sparsity (Nanda et al. 2023)"),
           Signal("weight_norm", _finite(table.weight_norm.iloc[-1]), _finite(norm_slope),
                  "sum of squared weights, trend of its log (weight-norm law, arXiv 2605.18845)"),
           Signal("prior_delay", _finite(math.exp(mu0)) if math.isfinite(mu0) else None, None,
                  "config prior exp(a + b log lr + c log wd + d log frac + e log p) steps after fitting"),
           Signal("logit_scale", _finite(table.logit_scale.iloc[-1]), _finite(scale_slope),
                  "RMS centred train logit (arXiv 2606.18465)"),
           Signal("train_loss", _finite(m.train_loss.iloc[-1]) if len(m) else None, None, "training-set cross-entropy"),
           Signal("early_loss_energy", _finite(early_loss_energy(m.step, m.train_loss, EARLY_STEPS)), None,
                  f"∫ L² dt over the first {EARLY_STEPS} steps (Notsawo et al. 2023)")]
    llc = view.llc
    if llc is not None:
        llc_slope, _ = trend(llc.step, llc.value, window)
        out.append(Signal("llc", _finite(llc.value.iloc[-1]), _finite(llc_slope), "local learning coefficient (Lau et al. 2023)"))
    return out


def forecast(run: str | store.Run, at_step: int | None = None, horizon: int | None = None,
             calibration: Calibration | None = None, root=None) -> Forecast:
    """The forecast for a run (a name, a run directory's path, or a `Run`) at ``at_step`` (default:
    its last checkpoint), within ``horizon`` steps (default: its configured epochs)."""
    handle = run if isinstance(run, store.Run) else store.open_run(run, root)
    if horizon is not None and horizon < 1:
        raise UsageError(f"--horizon must be a positive number of steps, got {horizon}")
    return forecast_view(training_view(handle, at_step), calibration, horizon)


def forecast_history(run: store.Run, calibration: Calibration | None = None, steps=None):
    """A ``pandas.DataFrame`` of the forecast made at each checkpoint (or each of ``steps``) from the
    second on: at_step, state, p_generalise, grok_step, low, high. Each row reads only what its own
    step allows (one signal cache is shared, so each checkpoint is read once)."""
    cache = SignalCache()
    rows = []
    for s in steps if steps is not None else run.steps[1:]:
        f = forecast_view(training_view(run, s), calibration, cache=cache)
        rows.append({"at_step": s, "state": f.state, "p_generalise": f.p_generalise, "grok_step": f.grok_step,
                     "low": f.interval[0] if f.interval else None, "high": f.interval[1] if f.interval else None})
    return pd.DataFrame(rows, columns=["at_step", "state", "p_generalise", "grok_step", "low", "high"])
