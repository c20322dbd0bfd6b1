"""The random-feature experiment: its table, its known answers, the command that writes it."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.cli import main
from workbench.errors import UsageError
from workbench.random_features import COLUMNS, digits_task, double_descent, draw_features, feature_counts, modular_task
from workbench.random_features.datasets import one_hot_operands


def test_features_are_nested_and_approximate_the_gaussian_kernel():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rff = draw_features(3, 20_000, bandwidth=1.5, seed=1)
    phi = rff(x)
    kernel = torch.exp(-torch.cdist(x, x) ** 2 / (2 * 1.5**2))
    assert torch.allclose(phi @ phi.T, kernel, atol=0.03)  # Rahimi and Recht: E[phi phi^T] = k
    # the first N features of the big draw are the N-feature map, up to the sqrt(2/N) scale
    assert torch.allclose(rff(x, 10) * math.sqrt(10), phi[:, :10] * math.sqrt(20_000))


def test_one_hot_operands():
    x = one_hot_operands(torch.tensor([[2, 0, 5], [4, 3, 5]]), 5)
    assert x.tolist()[0] == [0, 0, 1, 0, 0, 1, 0, 0, 0, 0] and x.sum(1).tolist() == [2.0, 2.0]


def test_table_has_the_issue_columns_and_known_training_p_hat():
    task = modular_task(p=13, frac_train=0.4)
    n = task.n_train
    table = double_descent(task, counts=[5, n // 2, n, 3 * n])
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert table.eff_params_train.round(6).tolist() == [5, n // 2, n, n]  # min(N, n), exactly
    over = table[table.n_features >= n]
    assert (over.train_loss < 1e-12).all() and (over.train_error == 0).all()  # interpolation


def test_the_test_loss_peaks_at_the_interpolation_threshold():
    task = digits_task(n_train=200)
    counts = feature_counts(task.n_train, points=12)
    table = double_descent(task, counts)
    peak = int(table.loc[table.test_loss.idxmax()].n_features)
    assert abs(peak - task.n_train) <= 0.05 * task.n_train
    assert int(table.loc[table.eff_params_test.idxmax()].n_features) == peak
    # the second descent: far past n the test error is below its value at the peak and at 0.5 n
    far = table[table.n_features == table.n_features.max()].test_error.iloc[0]
    assert far < table.test_error.max() and far < table[table.n_features <= task.n_train // 2].test_error.iloc[-1]


def test_counts_and_task_are_validated():
    with pytest.raises(UsageError, match="feature counts"):
        double_descent(modular_task(p=11, frac_train=0.5), counts=[0, 10])
    with pytest.raises(UsageError, match="n_train"):
        digits_task(n_train=5000)
    with pytest.raises(UsageError, match="label_noise"):
        modular_task(p=11, label_noise=1.5)
    assert feature_counts(100)[0] >= 1 and 100 in feature_counts(100)


def test_label_noise_changes_only_training_labels():
    clean, noisy = modular_task(p=11, frac_train=0.5), modular_task(p=11, frac_train=0.5, label_noise=0.2)
    assert torch.equal(clean.y_test, noisy.y_test)
    assert (clean.y_train != noisy.y_train).sum() == round(0.2 * clean.n_train)


def test_command_writes_table_page_and_says_where_the_peak_is(tmp_path, capsys):
    out = tmp_path / "rff"
    assert main(["rff", "--dataset", "modular", "--p", "11", "--frac-train", "0.5", "--features", "10,60,240",
                 "--out", str(out), "--no-images"]) == 0
    import pandas as pd

    table = pd.read_csv(out / "rff.csv")
    assert table.n_features.tolist() == [10, 60, 240] and (out / "index.html").is_file()
    assert "peaks at N = 60" in capsys.readouterr().out


def test_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["rff", "--out", str(tmp_path / "afile"), "--features", "5", "--p", "11", "--no-images"]) == 2
    assert main(["rff", "--out", str(tmp_path / "o"), "--features", "5,x", "--no-images"]) == 2
    assert main(["rff", "--out", str(tmp_path / "o"), "--ridge", "-1", "--no-images"]) == 2
    assert main(["rff", "--out", str(tmp_path / "o"), "--p", "1000003", "--no-images"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "is a file" in err[0] and "whole numbers" in err[1]
    assert "--ridge must be" in err[2] and "--p must lie in 2..127" in err[3]
