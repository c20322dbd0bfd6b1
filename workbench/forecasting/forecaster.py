"""The forecast: what kind of run this is, will it generalise within its budget, and when, from what training alone shows.

`forecast(run, at_step)` reads the run through `training_view` (training-set information up to
``at_step`` only), measures its `features.Evidence` and decides, in this order:

1. **the regime** (`REGIMES`), before any number:
   ``no_structure``  the task is a random table (``operation = random``): nothing to generalise;
   ``confusion``     not fitted at s >= `TOO_EARLY`, and the train loss, extrapolated along its
                     log-slope, does not reach the calibrated fit loss within the horizon;
   ``memorisation``  no weight decay at the init rule's own scale (no norm law drives the
                     plateau: all 8 such calibration runs memorise; Liu et al. 2023 need a large
                     initial norm to grok without decay), p_generalise then at most `NO_DECAY_P`;
                     or fitted with p_generalise < 0.5 (the hidden progress is not heading for
                     generalisation within the horizon: weak decay, stalls, slingshots);
   ``comprehension`` fitted, generalising, and the comprehension model gives P >= 0.5 (it
                     generalises as it fits: Liu et al. 2022's comprehension);
   ``grokking``      fitted and generalising after a delay governed by the decay.
   ``pending``       not fitted yet, and expected to fit within the horizon: the regime is
                     decided once it has (p_generalise and a grok step from the config prior).
2. **p_generalise** = P(test accuracy reaches 99% within the horizon H | not yet): the
   calibrated logistic model of `calibration.GENERALISE_FEATURES`, whose first input is the
   budget left in units of the predicted delay, z = (log(H − t_fit) − μ) / σ.
3. **the grok step**, only in ``grokking`` and ``comprehension`` (never an invented step for the
   other regimes, nor where p_generalise < 0.5):

       μ = the delay model · (1, log Δ_prior, log Δ_norm, log Δ_gini, log Δ_restricted,
                              log Δ_cleanup, log e, g, log ρ, d log ρ/dt, ġ, log R)

   (`features` gives the five estimators and the clocks), and with the stage (`calibration.STAGES`,
   by how far hidden progress has got) the delay's distribution is exp(μ + r) over that stage's
   out-of-family residuals r (`Calibration.delay_residuals`), conditioned on Δ > e (it
   has not happened yet): grok_step = t_fit + its median, the 80% interval its 10% and 90%
   quantiles (conformal: the residuals are each family's error when the models were fitted
   without it), mixed with the calibration runs' comprehension delays in the proportion the
   comprehension model gives (a hard switch between the two misplaced a fifth of the held-out
   runs by a factor of two).
4. **the state** (`STATES`): ``not_fitted``; ``generalised`` where the calibrated model of
   `calibration.GENERALISED_FEATURES` says test accuracy has already reached 99% (P >= `GENERALISED_P`;
   grok_step is then the checkpoint where that probability first crossed it);
   ``memorised_progressing`` (the Gini rising or the restricted loss falling faster than the
   stall slopes) and ``memorised_stalled``.

`Forecast.carried_by` says which estimator carries the grok step here: each one's share of what
moves μ away from the calibration runs' average (`carried_by`). Text, JSON and a
notebook's rich display (`Forecast._repr_html_`) say the horizon, the interval's level, the
regime and what carries the number. Accuracy measured on held-out families: docs/results/forecast-eval.md.

Example:
    >>> f = forecast(workbench.open_run("demo"))      # the smoke run: it memorises, never groks
    >>> f.at_step, f.fit_step is not None, f.state in STATES, f.regime in REGIMES
    (300, True, True, True)
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from probes.outcome import DELAY_FACTOR, MIN_DELAY
from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.calibration import STAGES, Calibration, shipped_calibration
from workbench.forecasting.estimators import trend
from workbench.forecasting.features import (
    DELAY_CAP,
    ESTIMATORS,
    Evidence,
    comprehension_row,
    delay_row,
    evidence,
    evidence_at,
    generalise_row,
    generalised_row,
    implied_delays,
    stage_of,
)
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import TrainingView, training_view, training_views

STATES = ("not_fitted", "memorised_progressing", "memorised_stalled", "generalised")
REGIMES = ("comprehension", "grokking", "memorisation", "confusion", "no_structure", "pending")
LEVEL = 0.8
INTERVAL = (0.1, 0.9)  # the 80% interval's quantiles
TOO_EARLY = 200  # before this step a run not yet fitted is assumed to fit by it (the calibration runs' median fit step: 80)
NO_DECAY_P = 0.01  # p_generalise of a run without weight decay (the module docstring)
GENERALISED_P = 0.8  # "generalised" read from training alone needs odds of 4 to 1 (at 1/2: 9 false claims of 128 held-out runs)
SOON = 200.0  # where every residual draw lies in the past, the grok is due within this many steps


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
    regime: str
    state: str
    stage: str | None  # `calibration.STAGES` once fitted
    p_generalise: float
    grok_step: int | None
    interval: tuple[int, int] | None
    fit_step: int | None
    carried_by: dict[str, float] = field(default_factory=dict)  # estimator -> share of the stage model's weight
    delays: dict[str, float | None] = field(default_factory=dict)  # each estimator's implied grok step
    signals: list[Signal] = field(default_factory=list)
    level: float = LEVEL
    why: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out

    def short(self) -> str:
        """One line for a progress bar: "grokking: ~1,450 [1,300–1,700] 80%" or "memorisation: none by 3,000"."""
        if self.grok_step is None:
            if self.state == "not_fitted" and self.regime != "confusion":
                return "not fitted yet"
            return f"{self.regime}: none by {self.horizon:,}"
        lo, hi = self.interval
        verb = "grokked" if self.state == "generalised" else self.regime
        return f"{verb} ~{self.grok_step:,} [{lo:,}–{hi:,}]"

    def text(self) -> str:
        head = [f"{self.run} at step {self.at_step:,}: regime {self.regime}, state {self.state.replace('_', ' ')}"
                + (f", stage {self.stage}" if self.stage else ""),
                f"  p_generalise {self.p_generalise:.2f}  (test accuracy >= 99% by step {self.horizon:,}, the horizon)"]
        if self.grok_step is not None:
            lo, hi = self.interval
            head.append(f"  grok step ~{self.grok_step:,}, {self.level:.0%} interval [{lo:,}, {hi:,}]")
        else:
            head.append(f"  no grok step: {self.why}")
        if self.carried_by:
            head.append("  carried by " + ", ".join(f"{k} {v:.0%}" for k, v in self.carried_by.items())
                        + "  (each estimator's share of this stage's weight)")
        if self.delays:
            head.append("  the estimators alone: " + ", ".join(f"{k} ~{v:,.0f}" if v is not None else f"{k} -"
                                                              for k, v in self.delays.items()))
        rows = [f"  {s.name:18s} {_fmt(s.value):>10s}  trend {_fmt(s.trend):>10s}/step  ({s.estimator})"
                for s in self.signals]
        return "\n".join(head + ["  evidence:"] + rows)

    def _repr_html_(self) -> str:
        """The notebook's display: a short table, not a line of Python."""
        e = html.escape
        rows = [("regime", self.regime), ("state", self.state.replace("_", " ")), ("stage", self.stage or "-"),
                ("p_generalise", f"{self.p_generalise:.2f} (by step {self.horizon:,}, the horizon)"),
                ("grok step", f"~{self.grok_step:,}, {self.level:.0%} interval {self.interval[0]:,}–{self.interval[1]:,}"
                 if self.grok_step is not None else f"none ({self.why})"),
                ("carried by", ", ".join(f"{k} {v:.0%}" for k, v in self.carried_by.items()) or "-")]
        body = "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td style='text-align:left'>{e(v)}</td></tr>"
                       for k, v in rows)
        evidence_rows = "".join(f"<tr><td>{e(s.name)}</td><td>{e(_fmt(s.value))}</td><td>{e(_fmt(s.trend))}</td>"
                                f"<td style='text-align:left'>{e(s.estimator)}</td></tr>" for s in self.signals)
        return (f"<div><b>{e(self.run)}</b> at step {self.at_step:,}<table>{body}</table>"
                f"<details><summary>evidence</summary><table><tr><th>signal</th><th>value</th><th>trend/step</th>"
                f"<th>estimator</th></tr>{evidence_rows}</table></details></div>")


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def conditional_delays(mu: float, residuals, elapsed: float) -> np.ndarray:
    """Draws of the delay exp(μ + r) over ``residuals``, each at least ``elapsed`` + `SOON` / 20 (it
    has not happened yet; the residuals come from runs that had not grokked either, so they are
    not conditioned a second time)."""
    draws = np.exp(np.clip(mu + np.asarray(residuals, float), 0.0, math.log(DELAY_CAP)))
    return np.maximum(draws, elapsed + SOON / 20)


def mixture_quantiles(parts: list[tuple[np.ndarray, float]], levels=(INTERVAL[0], 0.5, INTERVAL[1])) -> list[float]:
    """Quantiles of a mixture: ``parts`` of (draws, weight), each part's draws sharing its weight."""
    values = np.concatenate([d for d, _ in parts])
    weights = np.concatenate([np.full(len(d), w / len(d)) for d, w in parts])
    order = np.argsort(values)
    cum = np.cumsum(weights[order]) / weights.sum()
    return [float(values[order][min(np.searchsorted(cum, q), len(values) - 1)]) for q in levels]


def stage_sigma(cal: Calibration, stage: int) -> float:
    r = np.asarray(cal.delay_residuals[stage], float)
    return float(max(np.std(r), 0.05))


def carried_by(cal: Calibration, x: np.ndarray) -> dict[str, float]:
    """Each estimator's share of what moves this forecast: |coefficient × its standardised log delay
    here| (its contribution to μ away from the calibration runs' average), normalised over the five
    estimators (the raw clocks and log e are left out of the shares)."""
    model = cal.delay_model
    z = (x - model.centre) / model.scale
    weights = {name: abs(float(model.coef[1 + i] * z[1 + i])) for i, name in enumerate(ESTIMATORS)}
    total = sum(weights.values())
    if total <= 0:
        return {}
    return dict(sorted(((k, round(v / total, 3)) for k, v in weights.items()), key=lambda kv: -kv[1]))


def forecast_view(view: TrainingView, cal: Calibration | None = None, horizon: int | None = None,
                  cache: SignalCache | None = None) -> Forecast:
    """The forecast from one `TrainingView` (formulas: module docstring)."""
    cal = cal or shipped_calibration()
    cfg, s = view.config, view.at_step
    H = int(horizon or cfg.epochs)
    cache = cache or SignalCache()
    table = cache.table(view)
    if table.empty:
        raise UsageError(f"run {view.run.name!r} has no readable checkpoint at or before step {s}; "
                         "restore the damaged checkpoint files from a copy, or give a later --at")
    ev = evidence(view, table)
    delays = implied_delays(ev, cal)
    signals = _signals(view, ev, delays, table)
    base = dict(run=view.run.name, at_step=s, horizon=H, fit_step=ev.fit_step, signals=signals)

    if cfg.operation == "random":
        return Forecast(**base, regime="no_structure", state="not_fitted" if not ev.fitted else "memorised_stalled",
                        stage=None, p_generalise=0.0, grok_step=None, interval=None,
                        why="a random table has nothing to generalise")
    if not ev.fitted:
        return _not_fitted(base, ev, delays, cal, H, no_decay(cfg))
    stage = stage_of(ev, delays, cal)
    x_delay = delay_row(ev, delays)
    mu = float(np.clip(cal.delay_model.predict(x_delay)[0], 0.0, math.log(DELAY_CAP)))
    sigma = stage_sigma(cal, stage)
    implied = {k: (round(ev.fit_step + v) if math.isfinite(v) and v < DELAY_CAP else None) for k, v in delays.items()}
    base.update(stage=STAGES[stage], carried_by=carried_by(cal, x_delay), delays=implied)
    p_done = float(cal.generalised_model.probability(generalised_row(ev, delays))[0])
    if p_done >= GENERALISED_P:
        crossed, before = _generalised_at(view, table, ev, cal, cache)
        return Forecast(**base, regime="grokking" if crossed > DELAY_FACTOR * ev.fit_step + MIN_DELAY else "comprehension",
                        state="generalised", p_generalise=1.0, grok_step=crossed, interval=(before, crossed),
                        why="")
    # at the horizon itself nothing is left to come: p_generalise is 0, and the regime the one a
    # budget twice as long would give
    reached = H <= s
    budget = (2 * s if reached else H) - ev.fit_step
    p = float(cal.generalise_model.probability(generalise_row(ev, mu, sigma, budget))[0])
    if no_decay(cfg):
        p = min(p, NO_DECAY_P)
    progressing = ev.gini_slope >= cal.stall_gini_slope or ev.restricted_slope <= cal.stall_restricted_slope
    state = "memorised_progressing" if progressing else "memorised_stalled"
    p_comp = float(cal.comprehension_model.probability(comprehension_row(ev))[0])
    if reached:
        return Forecast(**base, regime="memorisation" if p < 0.5 else "comprehension" if p_comp >= 0.5 else "grokking",
                        state=state, p_generalise=0.0, grok_step=None, interval=None, why=f"the horizon {H:,} is reached")
    if p < 0.5:
        return Forecast(**base, regime="memorisation", state=state, p_generalise=round(p, 4), grok_step=None,
                        interval=None, why=f"p_generalise < 0.5 within the horizon {H:,}"
                        + (" (no weight decay)" if cfg.weight_decay == 0 else ""))
    comprehends = p_comp >= 0.5
    # the delay: a mixture of comprehension's (the calibration runs' own delays) and grokking's (the
    # delay model's μ with this stage's residuals), weighted by the comprehension model
    lo, mid, hi = mixture_quantiles([
        (conditional_delays(0.0, np.log(np.asarray(cal.comprehension_delays)), ev.elapsed), p_comp),
        (conditional_delays(mu, cal.delay_residuals[stage], ev.elapsed), 1.0 - p_comp)])
    t = ev.fit_step
    return Forecast(**base, regime="comprehension" if comprehends else "grokking", state=state, p_generalise=round(p, 4),
                    grok_step=int(round(t + mid)), interval=(int(round(t + lo)), int(round(t + hi))), why="")


def _not_fitted(base: dict, ev: Evidence, delays: dict[str, float], cal: Calibration, H: int,
                without_decay: bool) -> Forecast:
    """Before fitting: the fit step extrapolated along the train loss's log-slope; confusion where it
    does not come within the horizon, else the config prior's delay after it."""
    gap = ev.log_train_loss - math.log(cal.fit_loss)
    t_fit = ev.at_step + gap / -ev.train_loss_slope if ev.train_loss_slope < 0 else math.inf
    if gap <= 0:
        t_fit = float(ev.at_step)
    if ev.at_step < TOO_EARLY and (not math.isfinite(t_fit) or t_fit >= H):
        t_fit = float(min(TOO_EARLY, H - 1))  # the first steps' loss says little: confusion is not called yet
    if not math.isfinite(t_fit) or t_fit >= H:
        return Forecast(**base, regime="confusion", state="not_fitted", stage=None, p_generalise=0.0, grok_step=None,
                        interval=None, why=f"the train loss does not reach the fit loss by the horizon {H:,}")
    mu = math.log(delays["prior"])
    sigma = stage_sigma(cal, 0)
    fitted_then = Evidence(**{**asdict(ev), "fit_step": int(t_fit), "elapsed": 0.0, "x_config": ev.x_config})
    p = float(cal.generalise_model.probability(generalise_row(fitted_then, mu, sigma, H - t_fit))[0])
    if without_decay:
        p = min(p, NO_DECAY_P)
    if p < 0.5:
        return Forecast(**base, regime="pending", state="not_fitted", stage=None, p_generalise=round(p, 4),
                        grok_step=None, interval=None, why=f"p_generalise < 0.5 within the horizon {H:,}")
    lo, mid, hi = mixture_quantiles([(conditional_delays(mu, cal.delay_residuals[0], 0.0), 1.0)])
    return Forecast(**base, regime="pending", state="not_fitted", stage=None, p_generalise=round(p, 4),
                    grok_step=int(round(t_fit + mid)), interval=(int(round(t_fit + lo)), int(round(t_fit + hi))),
                    carried_by={"prior": 1.0}, why="")


def no_decay(cfg) -> bool:
    """No weight decay at the init rule's own scale (or smaller): the memorisation rule."""
    return cfg.weight_decay == 0 and cfg.init_scale <= 1.0


def _generalised_at(view: TrainingView, table: pd.DataFrame, ev: Evidence, cal: Calibration,
                    cache: SignalCache) -> tuple[int, int]:
    """(the first checkpoint after fitting where the generalised model's P reaches `GENERALISED_P`, the
    one before it); each checkpoint's P is kept in ``cache`` (it reads only what its own step allows)."""
    m = view.metrics
    steps = [int(s) for s in table.step if s >= ev.fit_step]
    previous = int(table.step[table.step < ev.fit_step].max()) if (table.step < ev.fit_step).any() else ev.fit_step
    for s in steps:
        key = ("generalised", str(view.run.path.resolve()), s, id(cal))
        if key not in cache.memo:
            k = m.step <= s
            e = evidence_at(view.config, s, m.step[k].to_numpy(float), m.train_loss[k].to_numpy(float),
                            m.train_acc[k].to_numpy(float), m.weight_norm[k].to_numpy(float),
                            table[table.step <= s].reset_index(drop=True), ev.fit_step)
            cache.memo[key] = float(cal.generalised_model.probability(generalised_row(e, implied_delays(e, cal)))[0])
        if cache.memo[key] >= GENERALISED_P:
            return s, previous
        previous = s
    return ev.at_step, previous


def _signals(view: TrainingView, ev: Evidence, delays: dict[str, float], table: pd.DataFrame) -> list[Signal]:
    out = [Signal("restricted_loss", _finite(math.exp(ev.log_restricted)) if math.isfinite(ev.log_restricted) else None,
                  _finite(ev.restricted_slope), "key-frequency logits' loss on the training inputs; trend of its log "
                  "(Nanda et al. 2023)"),
           Signal("memorisation_ratio", _finite(math.exp(ev.log_ratio)) if math.isfinite(ev.log_ratio) else None,
                  _finite(ev.ratio_slope), "memorising per generalising logit energy on the training inputs; trend of "
                  "its log (Varma et al. 2023)"),
           Signal("fourier_gini", _finite(ev.gini), _finite(ev.gini_slope), "embedding Fourier sparsity (Nanda et al. 2023)"),
           Signal("weight_norm", _finite(math.exp(ev.log_norm)), _finite(-ev.norm_rate),
                  "sum of squared weights; trend of its log: the run's own decay rate (arXiv 2605.18845)"),
           Signal("prior_delay", _finite(delays["prior"]), None, "config prior: steps from fitting to grokking"),
           Signal("excluded_loss", _finite(math.exp(ev.log_excluded)) if math.isfinite(ev.log_excluded) else None, None,
                  "logits without the key frequencies, on the training inputs (Nanda et al. 2023)"),
           Signal("logit_scale", _finite(ev.logit_scale), None, "RMS centred train logit (arXiv 2606.18465)"),
           Signal("slingshots", float(ev.slingshots), None, "train accuracy falls below 90% after fitting (Thilak et al. 2022)"),
           Signal("train_loss", _finite(math.exp(ev.log_train_loss)), None, "training-set cross-entropy")]
    llc = view.llc
    if llc is not None:
        llc_slope, _ = trend(llc.step, llc.value, 200.0)
        out.append(Signal("llc", _finite(llc.value.iloc[-1]), _finite(llc_slope), "local learning coefficient (Lau et al. 2023)"))
    return out


def forecast(run: str | store.Run, at_step: int | None = None, horizon: int | None = None,
             calibration: Calibration | None = None, root=None) -> Forecast:
    """The forecast for a run (a name, a run directory's path, or a `Run`) at ``at_step`` (default:
    its last checkpoint), within ``horizon`` steps (default: its configured epochs; it must lie
    beyond ``at_step``)."""
    handle = run if isinstance(run, store.Run) else store.open_run(run, root)
    view = training_view(handle, at_step)
    if horizon is not None and horizon <= view.at_step:
        raise UsageError(f"--horizon {horizon} does not lie beyond the forecast's step {view.at_step}: give a horizon "
                         f"after it (the step by which test accuracy should reach 99%)")
    return forecast_view(view, calibration, horizon)


def forecast_history(run: store.Run, calibration: Calibration | None = None, steps=None):
    """A ``pandas.DataFrame`` of the forecast made at each checkpoint (or each of ``steps``) from the
    second on: at_step, regime, state, p_generalise, grok_step, low, high. Each row reads only what
    its own step allows (one signal cache is shared, so each checkpoint is read once)."""
    cache = SignalCache()
    rows = []
    for view in training_views(run, steps if steps is not None else run.steps[1:]):
        f = forecast_view(view, calibration, cache=cache)
        rows.append({"at_step": view.at_step, "regime": f.regime, "state": f.state, "p_generalise": f.p_generalise,
                     "grok_step": f.grok_step, "low": f.interval[0] if f.interval else None,
                     "high": f.interval[1] if f.interval else None})
    return pd.DataFrame(rows, columns=["at_step", "regime", "state", "p_generalise", "grok_step", "low", "high"])
