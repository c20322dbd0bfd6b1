"""Effective parameters of a linear smoother (Curth, Jeffares and van der Schaar 2023).

"A U-turn on double descent: rethinking parameter counting in statistical learning" (NeurIPS
2023) argues that the second descent of a double-descent curve is an artefact of the x-axis:
against the raw parameter count the test error falls, peaks and falls again, but against an
*effective* number of parameters the curves fold back into the classical U. For any smoother
whose prediction is linear in the training labels,

    y_hat(x) = s_hat(x)^T y,           s_hat(x) in R^n (one weight per training point)

the effective number of parameters used on a set of inputs I is (their Eq. 3)

    p_hat(I) = (n / |I|) * sum_{j in I} ||s_hat(x_j)||^2

On the training inputs this is the classical degrees of freedom tr(H^T H) of the hat matrix H.
For least squares on features phi (design matrix Phi, n x N) with the minimum-norm solution,
s_hat(x)^T = phi(x)^T Phi^+, and with the thin SVD Phi = U S V^T of rank r

    s_hat(x)^T = phi(x)^T V S^-1 U^T,       ||s_hat(x)||^2 = ||phi(x)^T V S^-1||^2

so on the training inputs ||s_hat(x_j)||^2 = ||U_j||^2 (H = U U^T is a projection) and
p_hat(train) = r exactly: N when N < n, n when N >= n (full rank). On test inputs p_hat(test)
is where the parameter count and the effective count part: it peaks where S has singular values
near zero, at N = n, and falls as N grows past it. Ridge (lambda > 0) replaces S^-1 by
S / (S^2 + lambda). Rank follows numpy's rule: singular values <= max(n, N) * eps * S_max are
dropped.

For a transformer checkpoint, `probe` does the same for a minimum-norm least-squares readout
fitted on the checkpoint's frozen final features (the residual stream the unembedding reads): it
measures the readout given the features, not the whole network.

Example:
    >>> phi = torch.randn(50, 10, dtype=torch.float64)
    >>> round(effective_parameters(phi, phi), 6)        # N = 10 < n = 50: the hat matrix has rank 10
    10.0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from probes.grid import CheckpointOnGrid
from probes.table import tidy


@dataclass(frozen=True)
class LeastSquares:
    """Least squares on a design matrix Phi [n, N], held as its thin SVD U S V^T (float64, the
    numerically zero directions dropped), so that the fit, its smoother weights and their norms
    all come from one decomposition. ridge 0: the minimum-norm solution Phi^+ Y."""

    U: Float[torch.Tensor, "n r"]
    S: Float[torch.Tensor, " r"]
    Vh: Float[torch.Tensor, "r N"]
    ridge: float = 0.0

    @property
    def n_train(self) -> int:
        return int(self.U.shape[0])

    @property
    def rank(self) -> int:
        return int(self.S.shape[0])

    @property
    def _inverse(self) -> torch.Tensor:  # S^-1, or S / (S^2 + ridge)
        return 1.0 / self.S if self.ridge == 0.0 else self.S / (self.S**2 + self.ridge)

    def coefficients(self, targets: Float[torch.Tensor, "n k"]) -> Float[torch.Tensor, "N k"]:
        """beta = Phi^+ Y (Belkin et al. 2019's minimum-norm interpolant once N >= n), or the
        ridge solution (Phi^T Phi + ridge I)^-1 Phi^T Y."""
        return self.Vh.T @ ((self.U.T @ targets.double()) * self._inverse[:, None])

    def weights(self, features: Float[torch.Tensor, "m N"]) -> Float[torch.Tensor, "m n"]:
        """The rows s_hat(x)^T = phi(x)^T Phi^+ for each row of ``features``."""
        return (features.double() @ self.Vh.T * self._inverse) @ self.U.T

    def leverages(self, features: Float[torch.Tensor, "m N"]) -> Float[torch.Tensor, " m"]:
        """||s_hat(x)||^2 for each row of ``features``, without forming the [m, n] weights
        (||phi^T V S^-1 U^T|| = ||phi^T V S^-1||: U has orthonormal columns)."""
        return ((features.double() @ self.Vh.T) * self._inverse).pow(2).sum(1)

    def effective_parameters(self, features: Float[torch.Tensor, "m N"]) -> float:
        """p_hat(I) = (n / |I|) sum_{j in I} ||s_hat(x_j)||^2 over the rows of ``features``."""
        m = features.shape[0]
        return float(self.n_train / m * self.leverages(features).sum()) if m else float("nan")


def least_squares(train_features: Float[torch.Tensor, "n N"], ridge: float = 0.0) -> LeastSquares:
    """Decompose Phi = ``train_features`` once (module docstring: the rank rule)."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    phi = train_features.double()
    U, S, Vh = torch.linalg.svd(phi, full_matrices=False)
    if S.numel() == 0 or S[0] == 0:
        return LeastSquares(U[:, :0], S[:0], Vh[:0], ridge)
    keep = S > max(phi.shape) * torch.finfo(torch.float64).eps * S[0]
    return LeastSquares(U[:, keep], S[keep], Vh[keep], ridge)


def effective_parameters(train_features: Float[torch.Tensor, "n N"], features: Float[torch.Tensor, "m N"],
                         ridge: float = 0.0) -> float:
    """p_hat(I) over the rows of ``features`` (the inputs I) for least squares on
    ``train_features`` (n rows): `least_squares` then `LeastSquares.effective_parameters`."""
    return least_squares(train_features, ridge).effective_parameters(features)


def smoother_effective_parameters(weights: Float[torch.Tensor, "m n"]) -> float:
    """p_hat(I) from a smoother's weights themselves (rows s_hat(x_j)^T, n = the number of
    columns): for a smoother that is not least squares, e.g. k-nearest-neighbour averaging,
    whose rows are 1/k on k points, so p_hat = n / k on the training inputs."""
    m, n = weights.shape
    return float(n / m * weights.double().pow(2).sum()) if m else float("nan")


MEASURES = ("eff_params_train", "eff_params_test", "n_features", "rank")


def probe(inp: CheckpointOnGrid, key_freqs=(), settings=None):
    """Rows ``step, measure, value``: p_hat on the training and on the test inputs of the
    minimum-norm least-squares readout from the checkpoint's frozen final features
    (``inp.resid_final``: the residual stream at ``=`` after the last block, the d_model numbers
    the unembedding reads; no intercept column), its number of features and the rank of the
    training design matrix.

    This measures the readout *given* the features, not the whole network: the smoother is
    linear in the labels only once the features are frozen, so p_hat here says how many
    effective parameters a linear head fitted on what the network computes would use, on the
    training inputs (= the rank, at most d_model) and on the test inputs (large where test
    features point along directions the training features barely span)."""
    if inp.resid_final is None:
        raise ValueError("the effective-parameters probe needs the final residual stream (CheckpointOnGrid.resid_final)")
    features = inp.resid_final
    train, test = features[inp.train_mask], features[inp.test_mask]
    fit = least_squares(train)
    values = {"eff_params_train": fit.effective_parameters(train), "eff_params_test": fit.effective_parameters(test),
              "n_features": float(features.shape[-1]), "rank": float(fit.rank)}
    return tidy(inp.step, [(m, values[m]) for m in MEASURES], ("measure",))
