"""Curth et al.'s effective parameters: known answers by construction, and the readout probe."""

from __future__ import annotations

import pytest
import torch

from probes import effective
from probes.effective import effective_parameters, least_squares, smoother_effective_parameters
from probes.grid import CheckpointOnGrid
from workbench.random_features import double_descent, draw_features, modular_task
from workbench.random_features.datasets import one_hot_operands
from workbench.tasks import make_dataset, make_split


def _features(n: int, big_n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, big_n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("big_n", [1, 7, 39])
def test_training_p_hat_is_the_rank_below_the_threshold(big_n):
    """N < n: the hat matrix Phi Phi^+ is a projection of rank N, so p_hat(train) = tr(H^T H) = N."""
    phi = _features(40, big_n)
    assert effective_parameters(phi, phi) == pytest.approx(big_n, abs=1e-9)


@pytest.mark.parametrize("big_n", [40, 41, 400])
def test_training_p_hat_is_n_past_the_threshold(big_n):
    """N >= n: the minimum-norm interpolant's hat matrix is the identity: p_hat(train) = n."""
    phi = _features(40, big_n)
    assert effective_parameters(phi, phi) == pytest.approx(40, abs=1e-8)


def test_hat_matrix_is_a_projection_and_leverages_are_its_row_norms():
    phi, test = _features(30, 12), _features(9, 12, seed=1)
    fit = least_squares(phi)
    H = fit.weights(phi)
    assert torch.allclose(H @ H, H, atol=1e-10) and torch.allclose(H, H.T, atol=1e-10)
    assert torch.allclose(fit.leverages(test), fit.weights(test).pow(2).sum(1), atol=1e-10)
    assert torch.allclose(fit.weights(test), test @ torch.linalg.pinv(phi), atol=1e-9)


def test_k_nearest_neighbour_average_has_n_over_k_parameters():
    """A smoother that averages k points puts 1/k on each of k training points: ||s||^2 = 1/k,
    so p_hat(train) = n / k (Curth et al. 2023's example of a smoother with known complexity)."""
    n, k = 60, 4
    x = torch.rand(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    nearest = torch.cdist(x, x).topk(k, largest=False).indices  # each point and its k - 1 neighbours
    weights = torch.zeros(n, n, dtype=torch.float64).scatter_(1, nearest, 1.0 / k)
    assert smoother_effective_parameters(weights) == pytest.approx(n / k)


def test_ridge_shrinks_p_hat_and_tends_to_min_norm():
    phi = _features(30, 50)
    p0 = effective_parameters(phi, phi)
    assert effective_parameters(phi, phi, ridge=1e-12) == pytest.approx(p0, rel=1e-6)
    assert effective_parameters(phi, phi, ridge=10.0) < p0 - 1


def test_rank_deficient_design_counts_only_its_rank():
    phi = _features(30, 5)
    phi = torch.cat([phi, phi[:, :2] * 3.0], dim=1)  # 7 columns of rank 5
    assert least_squares(phi).rank == 5
    assert effective_parameters(phi, phi) == pytest.approx(5, abs=1e-9)


def _grid_with_features(p: int, frac: float, features: torch.Tensor) -> CheckpointOnGrid:
    """A checkpoint on the grid whose final features are given (all the readout probe reads)."""
    data = make_dataset("add", p)
    split = make_split(data.n_examples, frac, 0)
    train = torch.zeros(p * p, dtype=torch.bool)
    train[split.train] = True
    zeros, d = torch.zeros, features.shape[-1]
    return CheckpointOnGrid(
        step=0, p=p, sign=1, W_E=zeros(p, d), W_out=zeros(4, d), W_U=zeros(d, p), params={},
        logits=zeros(p, p, p), neuron_acts=zeros(p, p, 4), attention=zeros(p, p, 1, 3),
        labels=data.labels.view(p, p), train_mask=train.view(p, p), test_mask=~train.view(p, p),
        resid_final=features.view(p, p, -1))


@pytest.mark.parametrize("big_n", [20, 60, 150])
def test_readout_probe_agrees_with_random_feature_code(big_n):
    """A 'model' whose final features are random Fourier features of the one-hot operands: the
    readout probe gives the random-feature experiment's p_hat on train and test inputs."""
    p, frac = 11, 0.5
    task = modular_task(p=p, frac_train=frac)
    table = double_descent(task, counts=[big_n], bandwidth=2.0, seed=5)
    rff = draw_features(2 * p, big_n, 2.0, seed=5)
    features = rff(one_hot_operands(make_dataset("add", p).tokens, p))
    rows = effective.probe(_grid_with_features(p, frac, features)).set_index("measure").value
    assert rows["eff_params_train"] == pytest.approx(table.eff_params_train.iloc[0], rel=1e-9)
    assert rows["eff_params_test"] == pytest.approx(table.eff_params_test.iloc[0], rel=1e-9)
    assert rows["rank"] == min(big_n, task.n_train) and rows["n_features"] == big_n


def test_readout_probe_on_a_trained_checkpoint(smoke_run):
    """On a real checkpoint: p_hat(train) is the rank of the final features (<= d_model < n), and
    the test inputs' p_hat is at least as large (a test point has no leverage bound)."""
    from workbench.probing import evaluate_on_grid

    inp = evaluate_on_grid(smoke_run, smoke_run.steps[-1], coordinates="token")
    rows = effective.probe(inp).set_index("measure").value
    assert rows["n_features"] == smoke_run.config.d_model
    assert rows["eff_params_train"] == pytest.approx(rows["rank"], abs=1e-6)
    assert rows["eff_params_test"] >= rows["rank"] * 0.5
