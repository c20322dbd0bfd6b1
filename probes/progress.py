"""Progress measures: restricted and excluded loss (Nanda et al. 2023, Sec. 5.1).

Let S be the key frequencies and, over the (a, b) grid (p^2 inputs, a-major), let
u_k^cos = cos(w_k(a + b)) / |.|, u_k^sin = sin(w_k(a + b)) / |.| (a - b for subtraction): unit
vectors, orthonormal to each other and to the constant. For a matrix X [p^2, n] (one column per
logit or per neuron) write P_S X = sum_{k in S} u u^T X for the projection onto those directions
and mean(X) for the per-column mean over inputs.

Two variants, named after their sources:

Logit level (Nanda et al. 2023): L = logits [p^2, p]
    restricted_loss        = CE(P_S L + mean(L))   on every input of the task
    restricted_loss_train  = the same on the train split
    restricted_acc         = accuracy of P_S L + mean(L) on every input
    excluded_loss          = CE(L - P_S L)         on the train split
    excluded_loss_k        = CE(L - P_{k} L)       on train, for each key k alone
Neuron level (TransformerLens grokking demo): A = MLP activations at "=" [p^2, d_mlp]
    neuron_restricted_loss = CE(R) on the test split, R = (P_S A + mean(A)) W_out W_U, shifted
                             so that mean(R) = mean(L) (the demo's bias correction)
    neuron_excluded_loss   = CE(L + ((A - P_S A) - A) W_out W_U) on train: exactly the logits
                             of the model with hook_post replaced by A - P_S A
Also: train_loss, test_loss (of L itself) and test_restricted_ratio = test_loss / restricted_loss
(inf when the restricted loss underflows to exactly 0).
A task with no a +/- b direction (``sign`` 0: the polynomial tasks) has train and test loss only;
every other measure (`SUM_MEASURES`) is one row with value NaN: not applicable.
All losses are float64 cross-entropy. With S empty, P_S = 0: restricted logits are the mean
alone and excluded loss equals train loss.

Reading: during circuit formation the excluded loss rises (the memorising solution comes to lean
on the key frequencies) while the restricted loss falls (the Fourier circuit alone gets better),
all before the test loss drops.

Example:
    >>> from probes import ProbeSettings
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)
    >>> frame = probe(inp, (4, 7), ProbeSettings())
    >>> len(frame[frame.measure == "restricted_loss"])
    1
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from probes.fourier import frequency_rows, sum_direction_basis
from probes.grid import CheckpointOnGrid
from probes.table import tidy

# The measures that project on the a +/- b directions: for a task that has none (sign 0, the
# polynomial tasks) the probe writes each as one row with value NaN, "not applicable".
SUM_MEASURES = ("restricted_loss", "restricted_loss_train", "restricted_acc", "excluded_loss", "excluded_loss_k",
                "test_restricted_ratio", "neuron_restricted_loss", "neuron_excluded_loss")


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if labels.numel() == 0:
        return float("nan")
    return float(F.cross_entropy(logits.double(), labels))


def _acc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).double().mean()) if labels.numel() else float("nan")


@functools.lru_cache(maxsize=64)
def key_directions(p: int, sign: int, key_freqs: tuple[int, ...]) -> torch.Tensor:
    """[m, p^2] orthonormal rows: cos and sin of w_k(a + sign b) for k in S, in S's order (m = 2|S|,
    less one if S holds the Nyquist frequency p/2 of an even p, which has no sine; cached, do not
    modify)."""
    basis = sum_direction_basis(p, sign)
    rows = [i for k in key_freqs for i in frequency_rows(p, k)]
    return basis[rows] if rows else basis[:0]


@functools.lru_cache(maxsize=16)
def _directions_by_input(p: int, sign: int, key_freqs: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """U^T as [p^2, 2|S|] float64 (rows gather cheaply per split) and U as float32 (cached)."""
    U = key_directions(p, sign, key_freqs)
    return U.T.contiguous(), U.float()


def project(X: Float[Tensor, "n_inputs n"], U: Float[Tensor, "m n_inputs"]) -> Float[Tensor, "n_inputs n"]:  # used by tests and notebooks
    """P X = U^T (U X): X [p^2, n], U [m, p^2] orthonormal rows."""
    return U.T @ (U @ X)


def _ratio(test_loss: float, restricted_loss: float) -> float:
    """test / restricted loss; inf when the restricted loss underflows to exactly 0 (a circuit
    so confident that float64 cross-entropy rounds to 0, seen with ⊥Grad) and the test loss does
    not, NaN when both are 0."""
    if restricted_loss == 0:
        return math.nan if test_loss == 0 else math.inf
    return test_loss / restricted_loss


def probe(inp: CheckpointOnGrid, key_freqs: tuple[int, ...], settings=None):
    """Rows ``step, measure, frequency, value``; frequency is k for excluded_loss_k, else empty."""

    p = inp.p
    L = inp.logits.double().reshape(p * p, p)
    y = inp.labels.reshape(-1)
    data, train, test = (m.reshape(-1).nonzero().squeeze(1) for m in (inp.data_mask, inp.train_mask, inp.test_mask))
    L_train, L_test = L[train], L[test]
    y_data, y_train, y_test = y[data], y[train], y[test]
    rows: list[tuple[str, int | None, float]] = [
        ("train_loss", None, _ce(L_train, y_train)),
        ("test_loss", None, _ce(L_test, y_test)),
    ]
    if inp.sign == 0:  # the a +/- b directions mean nothing for this operation: NaN rows, "not applicable"
        return _frame(inp.step, rows + [(m, None, float("nan")) for m in SUM_MEASURES])
    key_freqs = tuple(key_freqs)
    U = key_directions(p, inp.sign, key_freqs)
    Ut, U32 = _directions_by_input(p, inp.sign, key_freqs)
    Ut_train = Ut[train]
    # Every projected matrix is U^T (U X); only the rows a loss needs are ever formed.
    UL = U @ L  # [2|S|, p]
    mean_L = L.mean(0, keepdim=True)
    proj_train = Ut_train @ UL
    restricted_data = Ut[data] @ UL + mean_L
    rows += [
        ("restricted_loss", None, _ce(restricted_data, y_data)),
        ("restricted_loss_train", None, _ce(proj_train + mean_L, y_train)),
        ("restricted_acc", None, _acc(restricted_data, y_data)),
        ("excluded_loss", None, _ce(L_train - proj_train, y_train)),
    ]
    start = 0
    for k in key_freqs:  # P_{k} uses k's rows of U (two, or one for a Nyquist frequency)
        part = slice(start, start + len(frequency_rows(p, k)))
        start = part.stop
        rows.append(("excluded_loss_k", k, _ce(L_train - Ut_train[:, part] @ UL[part], y_train)))
    rows.append(("test_restricted_ratio", None, _ratio(rows[1][2], rows[2][2])))

    A = inp.neuron_acts.reshape(p * p, -1)  # float32: only small products of it are taken
    W = inp.W_out.double() @ inp.W_U.double()  # [d_mlp, p]
    UAW = (U32 @ A).double() @ W  # (P_S A) W = U^T (U A W)
    mean_AW = A.mean(0, keepdim=True).double() @ W
    # R = P_S(A) W + mean(A) W, shifted so that mean(R) = mean(L)
    shift = mean_L - (Ut.mean(0, keepdim=True) @ UAW + mean_AW)
    R_test = Ut[test] @ UAW + mean_AW + shift
    rows += [
        ("neuron_restricted_loss", None, _ce(R_test, y_test)),
        ("neuron_excluded_loss", None, _ce(L_train - Ut_train @ UAW, y_train)),  # hook_post := A - P_S A
    ]
    return _frame(inp.step, rows)


def _frame(step: int, rows):
    return tidy(step, rows, ("measure", "frequency"))
