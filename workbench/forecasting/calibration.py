"""The forecaster's constants, fitted on runs whose outcome is known, and the shipped fit.

Fitted by `workbench.forecasting.fitting.fit_calibration` (``make forecast-fit``) on the members of sweeps (shipped:
``forecast-fit`` and ``seeds``), from each run's full metrics (the answers) and its training
signals (`workbench.forecasting.signals`):

    gini_star      g★, the median Fourier Gini of the embedding at the grok step (interpolated
                   between checkpoints): the value hidden progress is heading for
    prior_coef     (a, b, c, d, e) of the config prior
                   log Δ = a + b log η + c log λ + d log f + e log p   (f the training fraction),
                   least squares over the members that grok (Δ = grok step − fit step): the
                   log-space form of the weight-norm law Δ ∝ log(V_mem / V★) / (η λ) (arXiv
                   2605.18845), with the training fraction (Power et al. 2022: fewer data, later
                   generalisation) and the prime. A field the fitting runs do not vary gets 0
                   (the intercept absorbs it) and is listed in ``fitted_on["not_varied"]``
    sigma_prior    residual standard deviation of log Δ under the prior alone
    sigma_trend    residual standard deviation of log Δ of the combined forecast at 25%, 50% and 75%
                   of the way from fit to grok (after g_t and β are fitted)
    stall_slope    the Gini slope (per step) below which a fitted run counts as stalled: half the
                   smallest slope any grokking member had in the 300 steps before it grokked
    fit_loss       the median train loss at the fit step (a not-yet-fitted run is extrapolated to it)
    trend_target,  g_t and β of the trend forecast T₁ = s + β (g_t − g(s)) / ġ(s): the Gini grows
    trend_scale    faster as the circuit forms, so a straight line toward g★ comes too late; the pair
                   that minimises the median |log error| of Δ at 25%, 50% and 75% of the way from
                   fit to grok, over a grid (g_t from 0.35 to g★, β from 0.2 to 1.5)

and where it came from (``fitted_on``: sweep and member counts; ``fitted``: the date). The
shipped calibration is ``workbench/forecasting/calibration.json``, written by `save_calibration`.

Example:
    >>> cal = shipped_calibration()
    >>> 0 < cal.gini_star < 1
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench import store
from workbench.errors import UsageError

SHIPPED = Path(__file__).parent / "calibration.json"


@dataclass(frozen=True)
class Calibration:
    gini_star: float = 0.6
    prior_coef: tuple[float, float, float, float, float] = (-2.2, -2.1, -1.7, 0.0, 0.0)
    sigma_prior: float = 0.5
    sigma_trend: float = 0.3
    stall_slope: float = 5e-5
    trend_target: float = 0.6
    trend_scale: float = 1.0
    fit_loss: float = 0.05
    fitted_on: dict = field(default_factory=dict)
    fitted: str = ""

    def prior_log_delay(self, cfg) -> float:
        """log Δ under the config prior for a `RunConfig`; inf without weight decay (no decay, no norm law)."""
        if cfg.weight_decay <= 0:
            return math.inf
        return float(sum(c * x for c, x in zip(self.prior_coef, prior_features(cfg), strict=True)))


PRIOR_FIELDS = ("lr", "weight_decay", "frac_train", "p")


def prior_features(cfg) -> tuple[float, ...]:
    """(1, log η, log λ, log f, log p): the config prior's regressors."""
    return (1.0, *(math.log(getattr(cfg, name)) for name in PRIOR_FIELDS))


def load_calibration(path: Path) -> Calibration:
    try:
        values = json.loads(Path(path).read_text())
        values["prior_coef"] = tuple(float(c) for c in values["prior_coef"])
        if len(values["prior_coef"]) != 1 + len(PRIOR_FIELDS):
            raise ValueError(f"prior_coef has {len(values['prior_coef'])} terms, expected {1 + len(PRIOR_FIELDS)}")
        cal = Calibration(**values)
        numbers = [*cal.prior_coef, cal.gini_star, cal.sigma_prior, cal.sigma_trend, cal.stall_slope, cal.fit_loss,
                   cal.trend_target, cal.trend_scale]
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in numbers):
            raise ValueError("a constant is not a finite number")
        if min(cal.sigma_prior, cal.sigma_trend, cal.fit_loss, cal.trend_scale) <= 0 or not 0 < cal.gini_star < 1:
            raise ValueError("sigmas, fit_loss and trend_scale must be positive and gini_star in (0, 1)")
        return cal
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"calibration {path} is unreadable ({exc}); refit it with make forecast-fit") from None


def shipped_calibration() -> Calibration:
    return load_calibration(SHIPPED) if SHIPPED.is_file() else Calibration()


def save_calibration(cal: Calibration, path: Path) -> None:
    store.write_json(Path(path), asdict(cal))
