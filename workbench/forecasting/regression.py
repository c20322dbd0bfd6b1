"""The two small models the forecaster is fitted with: weighted ridge least squares and L2 logistic regression.

Both take a design matrix X [n, k] whose first column is the constant 1 (never penalised) and
per-sample weights w (each calibration run gets weight 1 in total, however many checkpoints it
gives), and return a `Linear`: coefficients on standardised features, the centres and scales
used, and the feature names, so a fitted model is a small JSON record.

    ridge       b = argmin Σ w_i (y_i − x̃_i b)² + α Σ_{j>0} b_j²,  x̃ = (x − centre) / scale
    logistic    b = argmin −Σ w_i [y_i log σ(x̃_i b) + (1 − y_i) log(1 − σ(x̃_i b))] + α/2 Σ_{j>0} b_j²
                by Newton's method (iteratively reweighted least squares)

Example:
    >>> X = np.c_[np.ones(4), [0.0, 1.0, 2.0, 3.0]]
    >>> model = fit_ridge(X, np.array([1.0, 3.0, 5.0, 7.0]), np.ones(4), ["1", "x"], alpha=0.0)
    >>> round(float(model.predict(np.array([[1.0, 4.0]]))[0]), 6)
    9.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Linear:
    """x ↦ ((x − centre) / scale) · coef, with the constant column left as it is."""

    names: tuple[str, ...]
    coef: np.ndarray
    centre: np.ndarray
    scale: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The linear predictor for rows X [n, k] (for a logistic model: the log-odds)."""
        return _standardise(np.atleast_2d(X), self.centre, self.scale) @ self.coef

    def probability(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.predict(X), -50, 50)))

    def to_dict(self) -> dict:
        return {"names": list(self.names), "coef": [float(c) for c in self.coef], "centre": [float(c) for c in self.centre],
                "scale": [float(c) for c in self.scale]}

    @classmethod
    def from_dict(cls, d: dict) -> Linear:
        return cls(tuple(d["names"]), np.asarray(d["coef"], float), np.asarray(d["centre"], float),
                   np.asarray(d["scale"], float))


def _standardise(X: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (X - centre) / scale


def _centre_scale(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = w / w.sum()
    centre = w @ X
    scale = np.sqrt(w @ (X - centre) ** 2)
    scale = np.where(scale > 1e-12, scale, 1.0)
    centre[0], scale[0] = 0.0, 1.0  # the constant stays 1
    return centre, scale


def fit_ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, names, alpha: float = 1e-2) -> Linear:
    """Weighted ridge least squares (module docstring)."""
    centre, scale = _centre_scale(X, w)
    Z = _standardise(X, centre, scale)
    P = alpha * w.sum() * np.eye(Z.shape[1])
    P[0, 0] = 0.0
    A = Z.T @ (w[:, None] * Z) + P
    coef = np.linalg.solve(A + 1e-12 * np.eye(len(A)), Z.T @ (w * y))
    return Linear(tuple(names), coef, centre, scale)


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, names, alpha: float = 1e-1, steps: int = 50) -> Linear:
    """Weighted L2 logistic regression by Newton's method (module docstring)."""
    centre, scale = _centre_scale(X, w)
    Z = _standardise(X, centre, scale)
    k = Z.shape[1]
    P = alpha * w.sum() * np.eye(k)
    P[0, 0] = 0.0
    coef = np.zeros(k)
    mean = float(np.clip(w @ y / w.sum(), 1e-6, 1 - 1e-6))
    coef[0] = np.log(mean / (1 - mean))
    for _ in range(steps):
        prob = 1.0 / (1.0 + np.exp(-np.clip(Z @ coef, -50, 50)))
        grad = Z.T @ (w * (prob - y)) + P @ coef
        H = Z.T @ ((w * prob * (1 - prob))[:, None] * Z) + P + 1e-9 * np.eye(k)
        delta = np.linalg.solve(H, grad)
        coef = coef - delta
        if np.max(np.abs(delta)) < 1e-8:
            break
    return Linear(tuple(names), coef, centre, scale)
