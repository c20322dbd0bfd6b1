"""Fitting the forecaster's constants (`Calibration`) on runs whose outcome is known, across families.

`known_outcome` reads the answer from a run's full metrics (fit step, first step with test
accuracy >= 99%, and the outcome class of `probes.outcome`); only fitting and evaluation read
it, never a forecast. `run_samples` turns one complete run into what fitting needs: its outcome,
its family (p, operation) and the `features.Evidence` at every checkpoint from its fit step on
(each read through `training_view` at that step, so no sample knows more than a forecast there
would). `fit_from_samples` fits every constant listed in `workbench.forecasting.calibration`:

1. the clocks' targets g★ and log R★ (medians at the grok step), the config prior and the V★
   model (ridge over the grokking runs, one sample each), the fit loss and the stall slopes;
2. the delay model: ridge over the checkpoints of grokking runs between fitting and grokking,
   each run weighted 1 in total (so a long plateau does not outweigh a short one);
3. the residuals by stage, out of family: for each family, steps 1-2 refitted without it and its
   runs' residuals kept (``folds=True``; the residuals are the conformal interval's quantiles);
4. the three logistic models (generalise within the horizon, comprehension, generalised
   already) over every checkpoint after fitting of every run, each run weighted 1 in total.

Only grokking runs (outcome class ``grokking``) enter the delay law: comprehension has no delay to
speak of and memorisation none at all (a log-linear law over them is meaningless); those runs
teach the logistic models instead.

Example:
    >>> known_outcome(workbench.open_run("demo")).grok_step is None      # smoke memorises only
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from probes.outcome import outcome
from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.calibration import (
    COMPREHENSION_FEATURES,
    DELAY_FEATURES,
    GENERALISE_FEATURES,
    GENERALISED_FEATURES,
    STAGES,
    Calibration,
)
from workbench.forecasting.features import (
    CONFIG_FEATURES,
    DELAY_CAP,
    Evidence,
    comprehension_row,
    config_features,
    delay_row,
    evidence,
    generalise_row,
    generalised_row,
    implied_delays,
    stage_of,
)
from workbench.forecasting.regression import fit_logistic, fit_ridge
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import training_views

STALL_WINDOW = 300  # the steps before grokking whose progress sets the stall slopes
RESIDUALS_PER_RUN = 3  # a run's residuals kept per stage for the interval


@dataclass(frozen=True)
class Outcome:
    """The answer for one run, read from its full metrics (calibration and evaluation only)."""

    fit_step: int | None
    grok_step: int | None  # first step with test accuracy >= 99%, or None within the run
    kind: str = ""  # `probes.outcome.CLASSES`


def known_outcome(run: store.Run) -> Outcome:
    found = outcome(run.metrics)  # the sweep table's fit_step and gen_step, by the same rule
    return Outcome(found["fit_step"], found["gen_step"], found["outcome"])


def family_of(cfg) -> str:
    """A family: one (p, operation) pair, as ``add-59``."""
    return f"{cfg.operation}-{cfg.p}"


@dataclass
class RunSamples:
    """One complete run, ready for fitting: its outcome and the evidence at its checkpoints from the fit step on."""

    name: str
    family: str
    cfg: object
    out: Outcome
    samples: list[Evidence] = field(default_factory=list)
    fit_loss: float = math.nan
    log_norm_at_grok: float = math.nan
    gini_at_grok: float = math.nan
    log_restricted_at_grok: float = math.nan
    log_ratio_at_grok: float = math.nan
    stall: tuple[float, float] = (math.nan, math.nan)  # (Gini slope, log restricted slope) before grokking

    @property
    def groks(self) -> bool:
        return self.out.kind == "grokking"

    @property
    def generalises(self) -> bool:
        """Test accuracy reaches 99% within the run's own epochs."""
        return self.out.grok_step is not None


def run_samples(run: store.Run, cache: SignalCache | None = None, name: str | None = None) -> RunSamples:
    """The `RunSamples` of a complete run (module docstring)."""
    cache = cache or SignalCache(persist=True)
    out = known_outcome(run)
    cfg = run.config
    rs = RunSamples(name or f"{run.path.parent.name}/{run.name}", family_of(cfg), cfg, out)
    if out.fit_step is None or len(run.steps) < 2:
        return rs
    m = run.metrics
    rs.fit_loss = float(m.train_loss[m.step == out.fit_step].iloc[0])
    steps = sorted({out.fit_step, *(s for s in run.steps if s > out.fit_step)})
    steps = [s for s in steps if run.steps[0] <= s <= run.steps[-1]]
    for view in training_views(run, steps):
        table = cache.table(view)
        if not table.empty:
            rs.samples.append(evidence(view, table))
    if out.grok_step is not None:
        full = cache.table(training_views(run, [run.steps[-1]])[0])
        g = out.grok_step
        rs.gini_at_grok = float(np.interp(g, full.step, full.fourier_gini))
        rs.log_restricted_at_grok = float(np.interp(g, full.step, np.log(np.maximum(full.restricted_loss, 1e-300))))
        rs.log_ratio_at_grok = float(np.interp(g, full.step, np.log(np.maximum(full.memorisation_ratio, 1e-300))))
        rs.log_norm_at_grok = float(np.log(np.interp(g, m.step, m.weight_norm)))
        before = full[(full.step >= g - STALL_WINDOW) & (full.step <= g)]
        if len(before) >= 2:
            rs.stall = (float(np.polyfit(before.step, before.fourier_gini, 1)[0]),
                        float(np.polyfit(before.step, np.log(np.maximum(before.restricted_loss, 1e-300)), 1)[0]))
    return rs


def _weights(owners: list[int]) -> np.ndarray:
    """1 / (the number of samples its run has), per sample: each run weighs 1 in total."""
    ids, counts = np.unique(owners, return_counts=True)
    per = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    return np.array([1.0 / per[o] for o in owners])


def _constants(runs: list[RunSamples]) -> Calibration:
    """Step 1 of the module docstring."""
    grok = [r for r in runs if r.groks and r.samples]
    if len(grok) < 3:
        raise UsageError(f"calibration needs at least three runs that fit and then grok; these {len(runs)} have {len(grok)}")
    X = np.array([config_features(r.cfg) for r in grok])
    delay = np.array([math.log(r.out.grok_step - r.out.fit_step) for r in grok])
    ones = np.ones(len(grok))
    prior = fit_ridge(X, delay, ones, CONFIG_FEATURES, alpha=1e-2)
    v_star = fit_ridge(X, np.array([r.log_norm_at_grok - r.samples[0].log_norm_init for r in grok]), ones,
                       CONFIG_FEATURES, alpha=1e-2)
    gini_slopes = [r.stall[0] for r in grok if r.stall[0] > 0]
    restricted_slopes = [r.stall[1] for r in grok if r.stall[1] < 0]
    return Calibration(
        gini_star=float(np.median([r.gini_at_grok for r in grok])),
        log_restricted_star=float(np.clip(np.median([r.log_restricted_at_grok for r in grok]), -60, 5)),
        log_ratio_star=float(np.clip(np.nanmedian([r.log_ratio_at_grok for r in grok]), -30, 10)),
        prior_coef=_raw_coef(prior), v_star_coef=_raw_coef(v_star),
        fit_loss=float(np.median([r.fit_loss for r in runs if math.isfinite(r.fit_loss)])),
        stall_gini_slope=0.5 * min(gini_slopes) if gini_slopes else Calibration.stall_gini_slope,
        stall_restricted_slope=0.5 * max(restricted_slopes) if restricted_slopes else Calibration.stall_restricted_slope)


def _raw_coef(model) -> np.ndarray:
    """A ridge model on standardised features as coefficients on the raw features (x · c)."""
    c = model.coef / model.scale
    c[0] = model.coef[0] - float((model.coef[1:] * model.centre[1:] / model.scale[1:]).sum())
    return c


def _delay_data(runs: list[RunSamples], cal: Calibration):
    """(stage, design row, log Δ, owner) for every sample of a grokking run before its grok step."""
    rows = []
    for i, r in enumerate(runs):
        if not r.groks:
            continue
        target = math.log(r.out.grok_step - r.out.fit_step)
        for ev in r.samples:
            if ev.at_step >= r.out.grok_step:
                break
            d = implied_delays(ev, cal)
            rows.append((stage_of(ev, d, cal), delay_row(ev, d), target, i))
    return rows


def _delay_model(runs: list[RunSamples], cal: Calibration) -> Calibration:
    """Step 2: the ridge delay model over every grokking sample."""
    data = _delay_data(runs, cal)
    X = np.array([d[1] for d in data])
    model = fit_ridge(X, np.array([d[2] for d in data]), _weights([d[3] for d in data]), DELAY_FEATURES, alpha=1e-2)
    return replace(cal, delay_model=model)


def _residuals(runs: list[RunSamples], cal: Calibration, folds: bool) -> Calibration:
    """Step 3: per stage, log Δ − prediction for the grokking samples, each family's from models
    fitted without it (``folds``) or from ``cal`` itself; at most `RESIDUALS_PER_RUN` per run and
    stage, evenly spaced, so that every run counts alike in the interval (a long plateau's many
    checkpoints would otherwise set it)."""
    by_run: dict[tuple[int, int], list[float]] = {}
    families = sorted({r.family for r in runs if r.groks})
    groups = [(f, [r for r in runs if r.family != f], [r for r in runs if r.family == f]) for f in families] \
        if folds and len(families) > 1 else [(None, runs, runs)]
    for _, fit_on, score_on in groups:
        try:
            fold = cal if fit_on is runs else _delay_model(fit_on, _constants(fit_on))
        except UsageError:  # too few grokking runs without this family: its residuals come from the whole fit
            fold = cal
        for stage, x, target, owner in _delay_data(score_on, fold):
            mu = float(np.clip(fold.delay_model.predict(x)[0], 0.0, math.log(DELAY_CAP)))
            by_run.setdefault((stage, id(score_on[owner])), []).append(target - mu)
    by_stage: list[list[float]] = [[] for _ in STAGES]
    for (stage, _), rs in by_run.items():
        keep = np.unique(np.linspace(0, len(rs) - 1, min(len(rs), RESIDUALS_PER_RUN)).round().astype(int))
        by_stage[stage] += [rs[k] for k in keep]
    pooled = [r for rs in by_stage for r in rs] or [0.0]
    return replace(cal, delay_residuals=tuple(tuple(rs) if len(rs) >= 10 else tuple(pooled) for rs in by_stage))


def _classifiers(runs: list[RunSamples], cal: Calibration) -> Calibration:
    """Step 4: the three logistic models."""
    gen, comp, done = [], [], []
    for i, r in enumerate(runs):
        grok = r.out.grok_step
        for ev in r.samples:
            d = implied_delays(ev, cal)
            stage = stage_of(ev, d, cal)
            if grok is None or ev.at_step < grok:
                mu = float(np.clip(cal.delay_model.predict(delay_row(ev, d))[0], 0.0, math.log(DELAY_CAP)))
                sigma = max(float(np.std(cal.delay_residuals[stage])), 0.05)
                budget = r.cfg.epochs - r.out.fit_step
                gen.append((generalise_row(ev, mu, sigma, budget), float(r.generalises), i))
                if r.generalises:
                    comp.append((comprehension_row(ev), float(r.out.kind == "comprehension"), i))
            done.append((generalised_row(ev, d), float(grok is not None and ev.at_step >= grok), i))

    def logistic(data, names, fallback):
        if len(data) < 3 or len({y for _, y, _ in data}) < 2:
            return fallback
        return fit_logistic(np.array([x for x, _, _ in data]), np.array([y for _, y, _ in data]),
                            _weights([o for _, _, o in data]), names, alpha=1e-2)

    return replace(cal, generalise_model=logistic(gen, GENERALISE_FEATURES, cal.generalise_model),
                   comprehension_model=logistic(comp, COMPREHENSION_FEATURES, cal.comprehension_model),
                   generalised_model=logistic(done, GENERALISED_FEATURES, cal.generalised_model))


def fit_from_samples(runs: Sequence[RunSamples], sources: dict | None = None, folds: bool = True) -> Calibration:
    """Every constant (module docstring) from prepared runs; a `UsageError` if fewer than three grok."""
    runs = list(runs)
    cal = _delay_model(runs, _constants(runs))
    cal = _residuals(runs, cal, folds)
    comprehension = [r.out.grok_step - r.out.fit_step for r in runs if r.out.kind == "comprehension"]
    if comprehension:
        cal = replace(cal, comprehension_delays=tuple(float(max(d, 1)) for d in comprehension))
    cal = _classifiers(runs, cal)
    families = sorted({r.family for r in runs})
    return replace(cal, fitted=datetime.now(UTC).date().isoformat(),
                   fitted_on=dict(sources or {}, runs=len(runs), grokking=sum(r.groks for r in runs),
                                  generalising=sum(r.generalises for r in runs), families=families))


def fit_calibration(runs: Sequence[store.Run], sources: dict | None = None, cache: SignalCache | None = None) -> Calibration:
    """Fit the constants (module docstring) on complete runs; a `UsageError` if fewer than three grok."""
    cache = cache or SignalCache(persist=True)
    return fit_from_samples([run_samples(run, cache) for run in runs], sources)
