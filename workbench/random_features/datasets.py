"""The classification tasks the random-feature model is fitted to, as (inputs, labels) tensors.

``modular``: one of the workbench's own tasks (`workbench.tasks`), each input (a, b) written as its
two operands one-hot, x = [e_a ; e_b] in R^(2p), label the task's answer, split as a run with the
same ``p``, ``frac_train`` and ``split_seed`` is split (the ``randperm`` rule), optionally with
label noise on the training labels (`workbench.tasks.add_label_noise`). ``digits``: scikit-learn's
bundled 8x8 handwritten digits (1,797 images, 10 classes; it ships with the package, nothing is
downloaded), pixels scaled to [0, 1], ``n_train`` drawn at random for training and the rest for
test. Targets are one-hot (Belkin et al. 2019 fit squared loss to one-hot labels).

Example:
    >>> task = modular_task(p=11, frac_train=0.5)
    >>> task.x_train.shape, task.n_classes       # 60 of the 121 inputs train; x is [e_a ; e_b]
    (torch.Size([60, 22]), 11)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from workbench.errors import UsageError
from workbench.tasks import add_label_noise, make_dataset, make_split

DATASETS = ("modular", "digits")


@dataclass(frozen=True)
class ClassificationTask:
    """x_train [n, d], y_train [n] (the labels fitted: noisy where the task has noise), x_test
    [m, d], y_test [m] (true labels), n_classes, and a line saying what it is."""

    name: str
    x_train: Float[torch.Tensor, "n d"]
    y_train: Int[torch.Tensor, " n"]
    x_test: Float[torch.Tensor, "m d"]
    y_test: Int[torch.Tensor, " m"]
    n_classes: int
    description: str

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])


def one_hot_operands(tokens: Int[torch.Tensor, "n 3"], p: int) -> Float[torch.Tensor, "n two_p"]:
    """[e_a ; e_b] for each row (a, b, =) of ``tokens``."""
    x = torch.zeros(len(tokens), 2 * p, dtype=torch.float64)
    rows = torch.arange(len(tokens))
    x[rows, tokens[:, 0]] = 1.0
    x[rows, p + tokens[:, 1]] = 1.0
    return x


def modular_task(operation: str = "add", p: int = 41, frac_train: float = 0.3, split_seed: int = 0,
                 label_noise: float = 0.0) -> ClassificationTask:
    """The workbench task ``operation`` mod ``p`` with one-hot operands (module docstring)."""
    if not 0.0 <= label_noise < 1.0:
        raise UsageError(f"label_noise must lie in [0, 1), got {label_noise}")
    data = make_dataset(operation, p)
    split = add_label_noise(make_split(data.n_examples, frac_train, split_seed), data, label_noise, split_seed, p)
    x = one_hot_operands(data.tokens, p)
    noise = f", {label_noise:.0%} of the training labels wrong" if label_noise else ""
    return ClassificationTask(
        name="modular", x_train=x[split.train], y_train=split.train_targets(data), x_test=x[split.test],
        y_test=data.labels[split.test], n_classes=p,
        description=f"{operation} mod {p}, operands one-hot, {len(split.train)} train / {len(split.test)} test{noise}")


def digits_task(n_train: int = 500, seed: int = 0, label_noise: float = 0.0) -> ClassificationTask:
    """scikit-learn's bundled digits (module docstring); ``n_train`` images train, the rest test."""
    from sklearn.datasets import load_digits  # seconds to import: only when this dataset is asked for

    images = load_digits()
    x = torch.tensor(images.data, dtype=torch.float64) / 16.0
    y = torch.tensor(images.target, dtype=torch.int64)
    if not 0 < n_train < len(y):
        raise UsageError(f"n_train must lie in 1..{len(y) - 1} for digits ({len(y)} images), got {n_train}")
    if not 0.0 <= label_noise < 1.0:
        raise UsageError(f"label_noise must lie in [0, 1), got {label_noise}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    train, test = perm[:n_train], perm[n_train:]
    y_train = y[train].clone()
    if label_noise:
        flipped = torch.randperm(n_train, generator=gen)[: round(label_noise * n_train)]
        y_train[flipped] = (y_train[flipped] + torch.randint(1, 10, (len(flipped),), generator=gen)) % 10
    noise = f", {label_noise:.0%} of the training labels wrong" if label_noise else ""
    return ClassificationTask(
        name="digits", x_train=x[train], y_train=y_train, x_test=x[test], y_test=y[test], n_classes=10,
        description=f"scikit-learn digits (8x8), {n_train} train / {len(test)} test{noise}")
