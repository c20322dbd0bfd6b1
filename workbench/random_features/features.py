"""Random Fourier features (Rahimi and Recht 2007), the model family of Belkin et al. 2019.

Belkin, Hsu, Ma and Mandal 2019 ("Reconciling modern machine-learning practice and the classical
bias-variance trade-off", PNAS, Fig. 2) show double descent in its plainest form: least squares
on N random Fourier features of n training points, with the minimum-norm solution once N >= n.
The test error falls, rises to a peak at the interpolation threshold N = n and falls again as N
grows past it. The features approximate the Gaussian kernel k(x, y) = exp(-||x - y||^2 / (2 sigma^2)):

    phi(x)_k = sqrt(2 / N) cos(v_k . x + b_k),   v_k ~ N(0, sigma^-2 I_d),  b_k ~ U[0, 2 pi)

The features of a sweep over N are nested (the first N columns of one draw), so that N is the only
thing that changes between its points; the sqrt(2/N) scale does not change a least-squares fit
(the hat matrix of c Phi is that of Phi).

Example:
    >>> x = torch.eye(4, dtype=torch.float64)
    >>> rff = draw_features(dim=4, n_features=8, bandwidth=1.0, seed=0)
    >>> rff(x, 3).shape          # the first 3 of the 8 features: [m, N]
    torch.Size([4, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float


@dataclass(frozen=True)
class RandomFourierFeatures:
    """frequencies: [d, N_max] (the v_k as columns); phases: [N_max] (the b_k)."""

    frequencies: Float[torch.Tensor, "d N"]
    phases: Float[torch.Tensor, " N"]

    @property
    def max_features(self) -> int:
        return int(self.phases.shape[0])

    def __call__(self, x: Float[torch.Tensor, "m d"], n_features: int | None = None) -> Float[torch.Tensor, "m N"]:
        """phi(x) with the first ``n_features`` features (all by default), in float64."""
        n = self.max_features if n_features is None else n_features
        if not 1 <= n <= self.max_features:
            raise ValueError(f"n_features must lie in 1..{self.max_features}, got {n}")
        return math.sqrt(2.0 / n) * torch.cos(x.double() @ self.frequencies[:, :n] + self.phases[:n])


def draw_features(dim: int, n_features: int, bandwidth: float, seed: int = 0) -> RandomFourierFeatures:
    """N = ``n_features`` random Fourier features of inputs in R^dim for the Gaussian kernel of
    width ``bandwidth`` (sigma), from a generator seeded with ``seed``."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    gen = torch.Generator().manual_seed(seed)
    frequencies = torch.randn(dim, n_features, generator=gen, dtype=torch.float64) / bandwidth
    phases = 2 * math.pi * torch.rand(n_features, generator=gen, dtype=torch.float64)
    return RandomFourierFeatures(frequencies, phases)


def median_distance(x: Float[torch.Tensor, "n d"], limit: int = 2000) -> float:
    """The median Euclidean distance between distinct points of ``x`` (its first ``limit`` rows):
    the usual default for a Gaussian kernel's width."""
    x = x[:limit].double()
    d = torch.cdist(x, x)
    off = d[~torch.eye(len(x), dtype=torch.bool)]
    return float(off.median()) if off.numel() else 1.0
