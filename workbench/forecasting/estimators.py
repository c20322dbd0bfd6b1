"""The forecaster's estimators: pure functions of training-set numbers, each with its formula and paper.

Nothing here reads a file or a test number; `workbench.forecasting.signals` feeds them from a
`TrainingView`. Which of them carries the forecast is decided by measurement
(`docs/forecast.md`; the evaluation writes `docs/results/forecast-eval.md`).

Weight-norm law (arXiv 2605.18845; arXiv 2603.13331): with V = Σ w² the sum of squared weights,
η the learning rate and λ the decoupled weight decay, the delay from memorisation to
generalisation is

    T_grok − T_mem ≈ log(V_mem / V★) / (2 κ η λ)                               `norm_law_delay`

with V★ the norm of the generalising solution and κ ≈ 0.24 for a one-layer transformer
(2605.18845). Fitted in log space over a sweep, it is the config prior
log Δ = a + b log η + c log λ of `workbench.forecasting.calibration`.

Fourier sparsity of the embedding (Nanda et al. 2023, Sec. 5 and Fig. 7: the embedding becomes
sparse in the Fourier basis during circuit formation, before the test loss falls): the Gini
coefficient of the squared frequency norms n_k² of W_E over k = 1..K (`probes.fourier`), in the
task's group coordinates (discrete logs for × and ÷)                          `fourier_gini`

Its trend toward the value it has at generalisation, g★, is the forecaster's hidden-progress
clock: T ≈ s + (g★ − g(s)) / ġ(s)                                              `time_to_reach`

Early-loss energy (Notsawo et al. 2023, "Predicting grokking long before it happens"): the
energy of the training loss over its first T steps, E = ∫₀^T L(t)² dt (trapezoid rule over the
evaluations)                                                                   `early_loss_energy`

Logit scale (arXiv 2606.18465): the effective scale of the trained logits on the training
inputs, the RMS over inputs and classes of the logits centred per input,
σ_z = sqrt(mean_i mean_c (z_ic − mean_c z_ic)²)                                `logit_scale`

Trends (`trend`): the least-squares slope of y against t over the last ``window`` steps, with
its standard error; for the LLC (Lau et al. 2023) and the log weight norm.

Example:
    >>> round(early_loss_energy([0, 10, 20], [1.0, 1.0, 1.0], upto=20), 6)
    20.0
    >>> time_to_reach(0.5, 0.001, 0.7, at_step=1000)
    1200.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from torch import Tensor

from probes.coordinates import in_log_coordinates, powers, primitive_root
from probes.fourier import frequency_norms, gini


def norm_law_delay(v_mem: float, v_star: float, lr: float, weight_decay: float, kappa: float = 0.24) -> float:
    """log(V_mem / V★) / (2 κ η λ): the weight-norm law's delay from memorisation to grokking
    (arXiv 2605.18845); inf without weight decay, 0 when V_mem <= V★ already."""
    if weight_decay <= 0 or lr <= 0:
        return math.inf
    return max(math.log(v_mem / v_star), 0.0) / (2 * kappa * lr * weight_decay)


def fourier_gini(embed: Float[Tensor, "d_vocab d_model"], operation: str, p: int) -> float:
    """Gini of the embedding's squared Fourier frequency norms over k >= 1 (the constant left out),
    in the coordinates where the task is addition: rows W_E[g^i] for × and ÷ (i = 0..p-2)."""
    rows = embed[:p].double()
    if in_log_coordinates(operation, p):
        rows = rows[powers(p, primitive_root(p))]
    return gini(frequency_norms(rows)[1:].pow(2))


def logit_scale(logits: Float[Tensor, "n p"]) -> float:
    """RMS of the logits centred per input: sqrt(mean (z − mean_c z)²)."""
    z = logits.double()
    return float((z - z.mean(-1, keepdim=True)).pow(2).mean().sqrt())


def early_loss_energy(steps: Sequence[float], loss: Sequence[float], upto: float) -> float:
    """∫₀^upto L(t)² dt by the trapezoid rule over the evaluations at or before ``upto``."""
    t, y = np.asarray(steps, float), np.asarray(loss, float)
    keep = t <= upto
    t, y = t[keep], y[keep]
    if t.size < 2:
        return float("nan")
    return float(np.trapezoid(y**2, t))


def trend(steps: Sequence[float], values: Sequence[float], window: float) -> tuple[float, float]:
    """(slope, standard error) of the least-squares line through the points in the last ``window``
    steps; (nan, nan) with fewer than three points."""
    t, y = np.asarray(steps, float), np.asarray(values, float)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    if t.size == 0:
        return math.nan, math.nan
    keep = t >= t[-1] - window
    t, y = t[keep], y[keep]
    if t.size < 3 or np.ptp(t) == 0:
        return math.nan, math.nan
    tc = t - t.mean()
    slope = float((tc * (y - y.mean())).sum() / (tc**2).sum())
    resid = y - y.mean() - slope * tc
    se = float(math.sqrt((resid**2).sum() / (t.size - 2) / (tc**2).sum()))
    return slope, se


def time_to_reach(value: float, slope: float, target: float, at_step: float) -> float:
    """The step at which a quantity at ``value`` now, moving at ``slope`` per step, reaches
    ``target``: at_step + (target − value) / slope; at_step if it is there; inf if it moves away."""
    if value >= target:
        return float(at_step)
    if not slope > 0:
        return math.inf
    return float(at_step + (target - value) / slope)
