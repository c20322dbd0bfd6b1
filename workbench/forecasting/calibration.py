"""The forecaster's constants, fitted on runs whose outcome is known, and the file they are kept in.

Fitted by `workbench.forecasting.fitting.fit_calibration` (``make forecast-fit``) across families
(a family: one (p, operation) pair; shipped: the ``forecast-families`` and ``forecast-decay``
sweeps and the fast preset's own sweeps). Every constant, what it is and how it is fitted:

    gini_star            g★: the median Fourier Gini of the embedding at the grok step
    log_restricted_star  log R★: the median log restricted loss (training inputs) at the grok step
    log_ratio_star       log ρ★: the median log memorisation ratio (training inputs) at the grok step
    prior_coef           c of the config prior log Δ = c · x(config) (`features.CONFIG_FEATURES`),
                         ridge least squares over the runs that grok
    v_star_coef          c★ of log(V★ / V₀) = c★ · x(config): the weight norm at the grok step
                         relative to the run's own initial norm, ridge over the runs that grok
    fit_loss             the median train loss at the fit step (a run not yet fitted is extrapolated to it)
    stall_gini_slope,    below both (the Gini not rising and the restricted loss not falling) a
    stall_restricted_slope   fitted run's hidden progress counts as stalled: half the slowest
                         progress any grokking run made in the 300 steps before it grokked
    delay_model          a `regression.Linear`: log Δ from the five delay estimates
                         (`features.ESTIMATORS`), log e and the raw clocks (`DELAY_FEATURES`),
                         ridge over the checkpoints of grokking runs between fitting and grokking
                         (one model for every stage: split by stage, each part had too few runs and
                         scored worse out of family)
    delay_residuals      per stage (`STAGES`), the out-of-family residuals log Δ − prediction (each
                         family's from the model fitted without it): the 80% interval's quantiles
    comprehension_delays the delays of the runs that comprehend (generalise as they fit)
    generalise_model     logistic: does test accuracy reach 99% within the horizon (`fitting.GENERALISE_FEATURES`)
    comprehension_model  logistic: does the run generalise as it fits (`fitting.COMPREHENSION_FEATURES`)
    generalised_model    logistic: has it generalised already, at this checkpoint (`fitting.GENERALISED_FEATURES`)

and where it came from (``fitted_on``: sweeps, run and family counts; ``fitted``: the date).

A calibration file is a user's input (``forecast --calibration FILE``): `load_calibration` reads
at most `inputs.MAX_BYTES` of a regular file, refuses JSON nested deeper than `inputs.MAX_DEPTH` (`inputs.read_user_file`), and checks
every key, type, length and range (`check_calibration`) before any arithmetic, each refusal one
line naming the key.

Example:
    >>> cal = shipped_calibration()
    >>> 0 < cal.gini_star < 1
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import store
from workbench.errors import UsageError
from workbench.forecasting.features import CONFIG_FEATURES
from workbench.forecasting.regression import Linear
from workbench.inputs import read_user_file

SHIPPED = Path(__file__).parent / "calibration.json"
STAGES = ("at_fit", "early", "middle", "late")  # `forecaster.stage`: how far hidden progress has got
DELAY_FEATURES = ("1", "log_prior", "log_norm", "log_gini", "log_restricted", "log_cleanup", "log_elapsed", "gini", "log_ratio",
                  "ratio_slope", "gini_slope", "log_restricted_loss")
GENERALISE_FEATURES = ("1", "z_budget", "log_frac", "log_p", "op_sub", "op_mul", "no_decay", "log_eta_lambda", "gini",
                       "gini_slope", "log_restricted", "restricted_slope", "log_ratio", "ratio_slope", "norm_rate_rel", "slingshots",
                       "log_elapsed")
COMPREHENSION_FEATURES = ("1", "gini", "log_restricted", "log_ratio", "log_frac", "log_p", "op_sub", "op_mul",
                          "log_eta_lambda", "log_elapsed")
GENERALISED_FEATURES = ("1", "gini", "log_restricted", "log_excluded", "log_ratio", "gini_slope", "restricted_slope",
                        "ratio_slope", "log_elapsed", "log_frac", "log_p", "op_sub", "op_mul", "log_prior")
MODELS = {"generalise_model": GENERALISE_FEATURES, "comprehension_model": COMPREHENSION_FEATURES,
          "generalised_model": GENERALISED_FEATURES}



def _flat(names, intercept: float = 0.0) -> Linear:
    coef = np.zeros(len(names))
    coef[0] = intercept
    return Linear(tuple(names), coef, np.zeros(len(names)), np.ones(len(names)))


def prior_only_delay() -> Linear:
    coef = np.zeros(len(DELAY_FEATURES))
    coef[1] = 1.0  # log Δ = log Δ_prior
    return Linear(DELAY_FEATURES, coef, np.zeros(len(DELAY_FEATURES)), np.ones(len(DELAY_FEATURES)))


@dataclass(frozen=True)
class Calibration:
    """The fitted constants (module docstring). The defaults are an uninformed forecaster (the
    config prior alone, every probability 1/2): what tests start from, never what ships."""

    gini_star: float = 0.75
    log_restricted_star: float = -12.0
    log_ratio_star: float = -2.9
    prior_coef: np.ndarray = field(default_factory=lambda: np.array([-2.2, -2.1, -1.7, 0.0, 0.0, 0.0, 0.0, 0.0]))
    v_star_coef: np.ndarray = field(default_factory=lambda: np.array([0.5, 0, 0, 0, 0, 0, 0, 0.0]))
    fit_loss: float = 0.05
    stall_gini_slope: float = 2e-5
    stall_restricted_slope: float = -1e-3
    delay_model: Linear = field(default_factory=lambda: prior_only_delay())
    delay_residuals: tuple[tuple[float, ...], ...] = field(default_factory=lambda: tuple((-0.6, 0.0, 0.6) for _ in STAGES))
    comprehension_delays: tuple[float, ...] = (100.0, 150.0, 250.0)
    generalise_model: Linear = field(default_factory=lambda: _flat(GENERALISE_FEATURES))
    comprehension_model: Linear = field(default_factory=lambda: _flat(COMPREHENSION_FEATURES, -5.0))
    generalised_model: Linear = field(default_factory=lambda: _flat(GENERALISED_FEATURES, -5.0))
    fitted_on: dict = field(default_factory=dict)
    fitted: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"gini_star": self.gini_star, "log_restricted_star": self.log_restricted_star,
               "log_ratio_star": self.log_ratio_star,
               "prior_coef": [float(c) for c in self.prior_coef], "v_star_coef": [float(c) for c in self.v_star_coef],
               "fit_loss": self.fit_loss, "stall_gini_slope": self.stall_gini_slope,
               "stall_restricted_slope": self.stall_restricted_slope,
               "delay_model": self.delay_model.to_dict(),
               "delay_residuals": [[float(r) for r in rs] for rs in self.delay_residuals],
               "comprehension_delays": [float(d) for d in self.comprehension_delays],
               "fitted_on": self.fitted_on, "fitted": self.fitted}
        out.update({name: getattr(self, name).to_dict() for name in MODELS})
        return out


# ----------------------------------------------------------------------------- the file, checked
SCALARS = {"gini_star": (0.0, 1.0, False), "log_restricted_star": (-60.0, 5.0, True), "log_ratio_star": (-30.0, 10.0, True),
           "fit_loss": (0.0, 10.0, False),
           "stall_gini_slope": (0.0, 1.0, True), "stall_restricted_slope": (-1.0, 0.0, True)}
MAX_COEF = 1e4  # no fitted coefficient comes near this; a larger one can only be a hand-made file
KEYS = {*SCALARS, "prior_coef", "v_star_coef", "delay_model", "delay_residuals", "comprehension_delays", *MODELS,
        "fitted_on", "fitted"}


class _Bad(ValueError):
    pass


def _number(value, where: str, lo: float = -MAX_COEF, hi: float = MAX_COEF, closed: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(f"{where} must be a number, got {type(value).__name__} {value!r:.40}")
    x = float(value)
    inside = lo <= x <= hi if closed else lo < x < hi
    if not math.isfinite(x) or not inside:
        raise _Bad(f"{where} must lie in {'[' if closed else '('}{lo:g}, {hi:g}{']' if closed else ')'}, got {value!r}")
    return x


def _numbers(value, where: str, length: int | None = None, lo: float = -MAX_COEF, hi: float = MAX_COEF,
             max_length: int = 100_000) -> np.ndarray:
    if not isinstance(value, list) or not value or len(value) > max_length:
        raise _Bad(f"{where} must be a non-empty list of numbers (at most {max_length:,})")
    if length is not None and len(value) != length:
        raise _Bad(f"{where} must hold {length} numbers, got {len(value)}")
    return np.array([_number(v, f"{where}[{i}]", lo, hi) for i, v in enumerate(value)])


def _linear(value, where: str, names: tuple[str, ...]) -> Linear:
    if not isinstance(value, dict) or set(value) != {"names", "coef", "centre", "scale"}:
        raise _Bad(f"{where} must be an object with exactly names, coef, centre and scale")
    if value["names"] != list(names):
        raise _Bad(f"{where}.names must be {list(names)} (this calibration was made by another version: refit it)")
    k = len(names)
    coef = _numbers(value["coef"], f"{where}.coef", k)
    centre = _numbers(value["centre"], f"{where}.centre", k, -1e6, 1e6)
    scale = _numbers(value["scale"], f"{where}.scale", k, 1e-12, 1e6)
    return Linear(names, coef, centre, scale)


def check_calibration(values: Any) -> Calibration:
    """The `Calibration` a parsed file describes, every key checked (module docstring); `UsageError`
    naming the first wrong key."""
    try:
        if not isinstance(values, dict):
            raise _Bad("the file must hold one JSON object")
        missing, unknown = sorted(KEYS - set(values)), sorted(set(values) - KEYS)
        if missing or unknown:
            raise _Bad(("missing " + ", ".join(missing) if missing else "")
                       + ("; " if missing and unknown else "") + ("unknown " + ", ".join(unknown) if unknown else ""))
        scalars = {k: _number(values[k], k, lo, hi, closed) for k, (lo, hi, closed) in SCALARS.items()}
        k = len(CONFIG_FEATURES)
        residuals = values["delay_residuals"]
        if not isinstance(residuals, list) or len(residuals) != len(STAGES):
            raise _Bad(f"delay_residuals must be a list of {len(STAGES)} entries, one per stage ({', '.join(STAGES)})")
        if not isinstance(values["fitted_on"], dict) or not isinstance(values["fitted"], str) or len(values["fitted"]) > 100:
            raise _Bad("fitted_on must be an object and fitted a short text (the date)")
        return Calibration(
            **scalars,
            prior_coef=_numbers(values["prior_coef"], "prior_coef", k), v_star_coef=_numbers(values["v_star_coef"], "v_star_coef", k),
            delay_model=_linear(values["delay_model"], "delay_model", DELAY_FEATURES),
            delay_residuals=tuple(tuple(_numbers(r, f"delay_residuals[{i}]", None, -20.0, 20.0)) for i, r in enumerate(residuals)),
            comprehension_delays=tuple(_numbers(values["comprehension_delays"], "comprehension_delays", None, 1.0, 1e6)),
            **{name: _linear(values[name], name, names) for name, names in MODELS.items()},
            fitted_on=values["fitted_on"], fitted=values["fitted"])
    except _Bad as exc:
        raise UsageError(str(exc)) from None


def load_calibration(path: Path) -> Calibration:
    """The calibration in ``path``, read and checked (module docstring)."""
    advice = "give a file written by `make forecast-fit` (python -m workbench forecast-fit --out FILE)"
    values = read_user_file(path, "calibration", advice, kind="json")
    try:
        return check_calibration(values)
    except UsageError as exc:
        raise UsageError(f"calibration {path}: {exc}; {advice}") from None


def shipped_calibration() -> Calibration:
    return load_calibration(SHIPPED) if SHIPPED.is_file() else Calibration()


def save_calibration(cal: Calibration, path: Path) -> None:
    store.write_json(Path(path), cal.to_dict())
