"""Algorithmic tasks: binary operations modulo p, and the train/test split.

Every example is the token sequence ``a b =`` with ``=`` encoded as token ``p``; the label is
``op(a, b) mod p``. This is the setting of Power et al. 2022 ("Grokking") and Nanda et al.
2023 ("Progress measures for grokking via mechanistic interpretability").

Operations (name -> c):
    add        a + b
    sub        a - b
    mul        a * b
    div        a * b^(p-2)   (b != 0; p must be prime so b has an inverse)
    x2+y2      a^2 + b^2
    x2+xy+y2   a^2 + ab + b^2
    x3+xy      a^3 + ab
    random     table[a, b], a fixed random lookup table: no algorithm exists, so the only
               way to fit it is to memorise it (the null control for every probe)

Example:
    >>> ds = make_dataset("add", p=113)
    >>> split = make_split(ds.n_examples, frac_train=0.3, seed=0)
    >>> ds.tokens[split.train].shape
    torch.Size([3830, 3])
    >>> grid = make_grid(ds, split)         # every (a, b) as [p, p] labels and split masks
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probes import not_applicable
from probes.coordinates import in_log_coordinates, primitive_root
from workbench.errors import UsageError

OPERATIONS: dict[str, str] = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b  (b != 0, p prime)",
    "x2+y2": "a^2 + b^2",
    "x2+xy+y2": "a^2 + ab + b^2",
    "x3+xy": "a^3 + ab",
    "random": "a fixed random table (memorisation control)",
}


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


@dataclass(frozen=True)
class Dataset:
    """All inputs of a task.

    tokens: [n, 3] int64, rows ``(a, b, p)``; labels: [n] int64.
    """

    operation: str
    p: int
    tokens: torch.Tensor
    labels: torch.Tensor

    @property
    def n_examples(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True)
class Split:
    """Indices into a `Dataset`: train: [n_train], test: [n_test], disjoint, covering all.
    train_labels: [n_train] int64, the labels training fits when the run has label noise
    (`add_label_noise`), else None (the task's own labels)."""

    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None

    def train_targets(self, dataset: Dataset) -> torch.Tensor:
        """The labels training fits, [n_train]: the noisy ones if the split has them."""
        return dataset.labels[self.train] if self.train_labels is None else self.train_labels


# label noise draws from its own generator, seeded from split_seed + this offset, so the same
# split_seed gives the same split with and without noise
NOISE_SEED_OFFSET = 7_919


def add_label_noise(split: Split, dataset: Dataset, fraction: float, seed: int, p: int) -> Split:
    """The split with ``round(fraction * n_train)`` training labels replaced by a fixed random
    wrong label (label + k mod p, k uniform in 1..p-1), as in the label-noise experiments of
    Nakkiran et al. 2019 ("Deep double descent"). The test set keeps its true labels. Seeded by
    ``seed + NOISE_SEED_OFFSET``; ``fraction`` 0 returns ``split`` unchanged."""
    if fraction == 0:
        return split
    labels = dataset.labels[split.train].clone()
    gen = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
    flipped = torch.randperm(len(labels), generator=gen)[: round(fraction * len(labels))]
    shift = torch.randint(1, p, (len(flipped),), generator=gen)
    labels[flipped] = (labels[flipped] + shift) % p
    return Split(train=split.train, test=split.test, train_labels=labels)


def check_task(operation: str, p: int) -> None:
    """Raise `UsageError` for an unknown operation or a modulus the operation cannot use."""
    if operation not in OPERATIONS:
        raise UsageError(
            f"unknown operation {operation!r}; valid operations: {', '.join(OPERATIONS)}"
        )
    if p < 3:
        raise UsageError(f"p must be at least 3, got {p}")
    if operation == "div" and not is_prime(p):
        raise UsageError(f"operation 'div' needs a prime p (b must be invertible), got p={p}")


def _labels(operation: str, a: torch.Tensor, b: torch.Tensor, p: int, table_seed: int) -> torch.Tensor:
    if operation == "add":
        return (a + b) % p
    if operation == "sub":
        return (a - b) % p
    if operation == "mul":
        return (a * b) % p
    if operation == "div":
        inverse = torch.tensor([pow(int(x), p - 2, p) for x in range(p)], dtype=torch.int64)
        return (a * inverse[b]) % p
    if operation == "x2+y2":
        return (a * a + b * b) % p
    if operation == "x2+xy+y2":
        return (a * a + a * b + b * b) % p
    if operation == "x3+xy":
        return (a * a * a + a * b) % p
    if operation == "random":
        gen = torch.Generator().manual_seed(table_seed)
        table = torch.randint(0, p, (p, p), generator=gen)
        return table[a, b]
    raise AssertionError(operation)  # check_task rejects unknown names first


def grid_tokens(p: int) -> torch.Tensor:
    """[p^2, 3]: every sequence ``a b =`` in a-major order (row ``a * p + b``), ``=`` being token p."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    return torch.stack([a, b, torch.full_like(a, p)], dim=1)


def make_dataset(operation: str, p: int, table_seed: int = 0) -> Dataset:
    """Every input ``(a, b)`` of the task, a-major (row ``a * p + b`` for all but div)."""
    check_task(operation, p)
    tokens = grid_tokens(p)
    if operation == "div":
        tokens = tokens[tokens[:, 1] != 0]
    labels = _labels(operation, tokens[:, 0], tokens[:, 1], p, table_seed)
    return Dataset(operation=operation, p=p, tokens=tokens, labels=labels)


SPLIT_RULES: dict[str, str] = {
    "randperm": "torch.randperm(n) on a torch.Generator seeded with split_seed; the first int(frac n) train "
                "(the TransformerLens grokking demo)",
    "nanda2023": "random.seed(split_seed); random.shuffle of the inputs in a-major order; the first int(frac n) "
                 "train (Nanda et al. 2023's code)",
}


def make_split(n_examples: int, frac_train: float, seed: int, rule: str = "randperm") -> Split:
    """A seeded random split of ``n_examples`` inputs (a-major order): the first
    ``int(n * frac_train)`` of a seeded shuffle are train, the rest test.

    ``rule`` names the shuffle (`SPLIT_RULES`):
    * ``randperm``: ``torch.randperm(n)`` on a ``torch.Generator`` seeded with ``seed``. This is the
      split of the TransformerLens grokking demo (``DATA_SEED = 598``, frac 0.3) for ``add``.
    * ``nanda2023``: Python's ``random.seed(seed)`` then ``random.shuffle`` of the list of inputs,
      as the code of Nanda et al. 2023 ("Progress measures for grokking") does with its pairs
      ``(i, j, p)`` for i, then j, in ``range(p)``: for add mod 113, frac 0.3, seed 0 that is 3,830
      train of 12,769. Shuffling indices ``0..n-1`` draws the same permutation as shuffling the
      pairs (``random.shuffle`` only swaps positions), so the train set is the same.
    """
    import random

    if not 0.0 < frac_train < 1.0:
        raise UsageError(f"frac_train must lie strictly between 0 and 1, got {frac_train}")
    if rule not in SPLIT_RULES:
        raise UsageError(f"unknown split rule {rule!r}; valid: {', '.join(SPLIT_RULES)}")
    cut = int(n_examples * frac_train)
    if cut == 0 or cut == n_examples:
        raise UsageError(
            f"frac_train={frac_train} leaves an empty train or test set for {n_examples} examples"
        )
    if rule == "randperm":
        perm = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed))
    else:
        order = list(range(n_examples))
        random.Random(seed).shuffle(order)  # a private generator: the same stream as random.seed(seed)
        perm = torch.tensor(order, dtype=torch.int64)
    return Split(train=perm[:cut].sort().values, test=perm[cut:].sort().values)


def group_order(operation: str, p: int) -> int:
    """The order of the group in whose coordinates the probes read the task: p, or p - 1 for
    ``mul`` and ``div`` mod a prime (the non-zero residues, in discrete-log coordinates;
    `probes.coordinates.in_log_coordinates` decides, as it does for the probes' view)."""

    return p - 1 if in_log_coordinates(operation, p) else p


def has_sum_direction(operation: str, p: int) -> bool:
    """Whether the Fourier algorithm's a ± b direction exists for this task: add, sub and the
    random table (probed as addition, the hypothesis it must fail) in token coordinates, × and ÷
    mod a prime in discrete-log coordinates. The measures of `probes.not_applicable` need it."""

    return operation in SUM_SIGN or in_log_coordinates(operation, p)


def coordinates_note(operation: str, p: int) -> str:
    """One line saying in which coordinates the Fourier probes read this task and what does not
    apply to it ("" for add, sub and the random table, which need no note)."""

    if in_log_coordinates(operation, p):
        g = primitive_root(p)
        op = "+" if operation == "mul" else "-"
        zeros = 2 * p - 1 if operation == "mul" else p - 1  # div has no b = 0
        return (f"Fourier probes read {operation} in discrete-log coordinates: log_{g} a {op} log_{g} b over "
                f"Z_{p - 1} (generator {g}; frequency {(p - 1) // 2} is the Nyquist cosine); the {zeros} "
                f"inputs with a zero and the class 0 are left out of them")
    if SUM_SIGN.get(operation) is None:
        what = f"{operation} mod {p} (not prime)" if operation == "mul" else operation
        measures = "; ".join(f"{probe} {', '.join(names)}" for probe, names in not_applicable().items())
        return (f"{what} is no group's addition, so it has no a ± b direction for the Fourier algorithm to "
                f"compute along: not applicable (NaN in the tables): {measures}; nor the phases circuit "
                f"formation and cleanup, which need the restricted and excluded losses. Fourier norms, key "
                f"frequencies and neuron clusters (token basis), weights, attention, gradient symmetricity "
                f"and complexity apply")
    return ""


# The direction a + sign*b along which the Fourier algorithm of Nanda et al. 2023 computes.
# `random` is probed as if it were addition: that is the hypothesis it must fail.
SUM_SIGN = {"add": 1, "sub": -1, "random": 1}


@dataclass(frozen=True)
class Grid:
    """Every (a, b) of a task laid out as a [p, p] grid (a down, b across), which is how the
    probes see a run.

    tokens: [p^2, 3] (`grid_tokens`); labels: [p, p] int64, -1 where the task has no such input
    (``div`` has no b = 0); train, test: [p, p] bool masks of the split; sign: +1 for a + b,
    -1 for a - b, 0 when the Fourier sum directions do not apply to the operation.
    """

    p: int
    sign: int
    tokens: torch.Tensor
    labels: torch.Tensor
    train: torch.Tensor
    test: torch.Tensor


def make_grid(dataset: Dataset, split: Split) -> Grid:
    """The `Grid` of a task's dataset and split."""
    p = dataset.p
    flat = dataset.tokens[:, 0] * p + dataset.tokens[:, 1]
    labels = torch.full((p * p,), -1, dtype=torch.int64)
    labels[flat] = dataset.labels
    train = torch.zeros(p * p, dtype=torch.bool)
    test = torch.zeros(p * p, dtype=torch.bool)
    train[flat[split.train]] = True
    test[flat[split.test]] = True
    return Grid(p=p, sign=SUM_SIGN.get(dataset.operation, 0), tokens=grid_tokens(p), labels=labels.view(p, p),
                train=train.view(p, p), test=test.view(p, p))
