"""Double descent in seconds: the test error of random-feature least squares against N.

Belkin et al. 2019 (Fig. 2): n training points, N random Fourier features (`features`) swept from
far below n to far above it, least squares for N < n and the minimum-norm interpolant for N >= n
(`probes.effective.LeastSquares`, ridge 0). Each row of the table is one N:

    train_loss, test_loss   mean over points of ||y_hat(x) - e_y||^2 (squared loss on one-hot
                            labels, summed over the classes, as Belkin et al. fit them)
    train_error, test_error the fraction of points whose arg max_c y_hat(x)_c is not the label
    eff_params_train/test   Curth et al. 2023's p_hat on the training and on the test inputs
                            (`probes.effective`): exactly min(N, n) on the training inputs

The test loss peaks at N = n, where the smallest singular value of the design matrix is nearest
zero; the effective parameters on the test inputs peak there too, and against them the test
loss traces one U instead of two descents (Curth et al.'s "U-turn").

Example:
    >>> from workbench.random_features import modular_task
    >>> table = double_descent(modular_task(p=11, frac_train=0.5), counts=[10, 60, 300])
    >>> table.eff_params_train.round(6).tolist()       # min(N, n), n = 60
    [10.0, 60.0, 60.0]
"""

from __future__ import annotations

import torch

from probes.effective import least_squares
from workbench.errors import UsageError
from workbench.random_features.datasets import ClassificationTask
from workbench.random_features.features import draw_features, median_distance

COLUMNS = ("n_features", "n_train", "train_loss", "test_loss", "train_error", "test_error",
           "eff_params_train", "eff_params_test")
MAX_FEATURES = 100_000  # a design matrix past this many columns is more memory than the experiment is worth


def feature_counts(n_train: int, lowest: float = 0.05, highest: float = 10.0, points: int = 25) -> list[int]:
    """N from ``lowest`` n to ``highest`` n, log-spaced, plus n itself and its near neighbours
    (0.9n, 0.95n, 1.05n, 1.1n), where the peak is."""
    import numpy as np

    grid = np.geomspace(max(1.0, lowest * n_train), highest * n_train, points)
    near = [0.9, 0.95, 1.0, 1.05, 1.1]
    return sorted({int(round(v)) for v in [*grid, *(f * n_train for f in near)]} - {0})


def _losses(predictions: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean ||y_hat - e_y||^2, classification error)."""
    target = torch.nn.functional.one_hot(labels, predictions.shape[1]).double()
    loss = float((predictions - target).pow(2).sum(1).mean())
    error = float((predictions.argmax(1) != labels).double().mean())
    return loss, error


def double_descent(task: ClassificationTask, counts: list[int] | None = None, bandwidth: float | None = None,
                   seed: int = 0, ridge: float = 0.0):
    """The table of the module docstring, one row per N in ``counts`` (default `feature_counts`).
    ``bandwidth``: the kernel width sigma (default: the median distance between training inputs);
    ``seed``: the feature draw. Columns `COLUMNS`, then the dataset, bandwidth, ridge and seed."""
    import pandas as pd

    counts = sorted(set(counts if counts is not None else feature_counts(task.n_train)))
    if not counts or counts[0] < 1 or counts[-1] > MAX_FEATURES:
        raise UsageError(f"feature counts must lie in 1..{MAX_FEATURES:,}, got {counts[:1]}..{counts[-1:]}")
    sigma = median_distance(task.x_train) if bandwidth is None else bandwidth
    rff = draw_features(task.x_train.shape[1], counts[-1], sigma, seed)
    targets = torch.nn.functional.one_hot(task.y_train, task.n_classes).double()
    rows = []
    for n_features in counts:
        phi_train, phi_test = rff(task.x_train, n_features), rff(task.x_test, n_features)
        fit = least_squares(phi_train, ridge)
        beta = fit.coefficients(targets)
        train_loss, train_error = _losses(phi_train @ beta, task.y_train)
        test_loss, test_error = _losses(phi_test @ beta, task.y_test)
        rows.append({"n_features": n_features, "n_train": task.n_train, "train_loss": train_loss,
                     "test_loss": test_loss, "train_error": train_error, "test_error": test_error,
                     "eff_params_train": fit.effective_parameters(phi_train),
                     "eff_params_test": fit.effective_parameters(phi_test)})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.assign(dataset=task.name, bandwidth=sigma, ridge=ridge, seed=seed)
