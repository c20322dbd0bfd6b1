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

The run's own norm decay (the rate the weight-norm law predicts, measured instead of assumed):
r = −d log V / dt, the `trend` of log V over the recent window, and the law's delay from s,
(log V(s) − log V★) / r                                                     `norm_law_remaining`

Restricted and excluded loss on the training inputs (Nanda et al. 2023, Sec. 5.1, read on the
training split only): with L the logits over the whole (a, b) grid in group coordinates (the
model's outputs; no label off the training set is read), P_S the projection onto the
directions cos/sin w_k(a ± b) of the key frequencies S and m the per-class mean of L,

    restricted = CE(P_S L + m) over the training inputs     (the Fourier circuit alone)
    excluded   = CE(L − P_S L) over the training inputs     (the model without it)  `restricted_losses`

S is read from the same checkpoint's embedding, by the embed rule of the Fourier probe
(`probes.fourier.key_frequencies_by_norm`), so a forecast at s uses nothing later than s. With
G = P_S L and M = L − m − P_S L, the two circuits' share of the training logits' energy is

    memorisation ratio ρ = Σ_train |M|² / Σ_train |G|²                         `restricted_losses`

the memorising part per unit of the generalising part (Varma et al. 2023 explain grokking as the
second out-competing the first): weight decay cleans the first away, log ρ falls about linearly
on the plateau, and test accuracy reaches 99% near a common ρ★ (the calibration's).

Slingshots (Thilak et al. 2022): after fitting, the train accuracy falls back below 90% and the
loss spikes while the weight norm jumps; `slingshots` counts the falls.

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
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from probes import ProbeSettings
from probes.coordinates import in_log_coordinates, powers, primitive_root
from probes.fourier import frequency_norms, frequency_rows, gini, key_frequencies_by_norm, sum_direction_basis

KEY_REL_THRESHOLD, KEY_MIN_SHARE = ProbeSettings().norm_rel_threshold, ProbeSettings().norm_min_share  # the embed rule
SLINGSHOT_ACC = 0.9  # a fitted run whose train accuracy falls below this has slingshot


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


def norm_law_remaining(log_v: float, log_v_star: float, rate: float) -> float:
    """Steps until log V falls from ``log_v`` to ``log_v_star`` at ``rate`` = −d log V/dt per step:
    0 once it is there, inf where the norm is not falling."""
    if log_v <= log_v_star:
        return 0.0
    if not rate > 0:
        return math.inf
    return (log_v - log_v_star) / rate


def key_frequencies_of(embed_rows: Float[Tensor, "n d"]) -> tuple[int, ...]:
    """The key frequencies of an embedding in group coordinates (rows n = p, or p − 1 in discrete
    logs), by the Fourier probe's embed rule."""
    return tuple(key_frequencies_by_norm(frequency_norms(embed_rows.double()), KEY_REL_THRESHOLD, KEY_MIN_SHARE))


def restricted_losses(logits: Float[Tensor, "n n n"], train_index: Int[Tensor, " m"], train_labels: Int[Tensor, " m"],
                      sign: int, keys: tuple[int, ...]) -> tuple[float, float, float]:
    """(restricted, excluded, memorisation ratio) over the training inputs (module docstring):
    ``logits`` over the whole grid in group coordinates (a-major), ``train_index`` the training
    inputs' flat positions a * n + b in it and ``train_labels`` their classes. With no key
    frequency the restricted logits are the mean alone, the excluded loss is the train loss and
    the ratio is inf."""
    n = logits.shape[0]
    L = logits.double().reshape(n * n, n)
    rows = [i for k in keys for i in frequency_rows(n, k)]
    U = sum_direction_basis(n, sign)[rows]  # [m, n^2]
    UL = U @ L
    proj = U.T[train_index] @ UL
    mean = L.mean(0, keepdim=True)
    restricted = F.cross_entropy(proj + mean, train_labels)
    excluded = F.cross_entropy(L[train_index] - proj, train_labels)
    circuit = float(proj.pow(2).sum())
    rest = float((L[train_index] - mean - proj).pow(2).sum())
    return float(restricted), float(excluded), rest / circuit if circuit > 0 else math.inf


def slingshots(steps: Sequence[float], train_acc: Sequence[float], fit_step: float | None) -> int:
    """Falls of the train accuracy below `SLINGSHOT_ACC` after ``fit_step`` (0 before fitting)."""
    if fit_step is None:
        return 0
    t, a = np.asarray(steps, float), np.asarray(train_acc, float)
    after = a[t > fit_step]
    below = after < SLINGSHOT_ACC
    return int(np.count_nonzero(below[1:] & ~below[:-1]) + (1 if below.size and below[0] else 0))
