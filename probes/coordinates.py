"""The coordinates in which a task is addition: × and ÷ mod p become + and − over Z_{p-1}.

The non-zero residues mod a prime p form a cyclic group Z_p^* of order n = p − 1: with g a
primitive root (a generator), every x ≠ 0 is g^i for exactly one i = log_g x in Z_n, and

    a · b = g^(log a + log b),        a / b = g^(log a − log b)        (exponents mod n).

So in the coordinates i = log_g a, j = log_g b, k = log_g c, multiplication is addition mod n
and division is subtraction mod n, and the Fourier algorithm of Nanda et al. 2023 applies
unchanged over Z_n, with frequencies w_k = 2πk/n (their appendix on other group operations;
Chughtai et al. 2023, "A toy model of universality", representations of Z_p^*). n is even, so
Z_n has a Nyquist frequency n/2 with a cosine and no sine: `probes.fourier` counts it as
frequency n/2 (for × it is the Legendre symbol, the quadratic-residue character).

Zero is not in the group. `group_view` leaves out every input with a = 0 or b = 0 (2p − 1 of
the p² inputs: their answer is 0 by a rule no group representation carries) and the logit of
the class 0 (for the group's inputs the answer is never 0), so the probes that read it see the
(p − 1)² group inputs, p − 1 classes and an (p − 1)-way softmax. The run's own train and test
losses (``metrics.jsonl``) still cover every input.

For every other operation the view is the checkpoint itself: add, sub and the random table
(probed as if it were addition: that is the hypothesis it must fail) are already in their
group's coordinates, and the polynomial tasks have no such coordinates (``sign`` 0).

Example:
    >>> primitive_root(59)
    2
    >>> discrete_logs(7, 3)
    tensor([-1,  0,  2,  1,  4,  5,  3])
    >>> view = group_view(workbench.evaluate_on_grid(workbench.open_run("demo"), 300))  # add: the same grid
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from probes.grid import CheckpointOnGrid

# operation -> sign of the second coordinate in the discrete-log group (a * b -> i + j, a / b -> i - j)
LOG_SIGN = {"mul": 1, "div": -1}


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        if n % d == 0:
            out.append(d)
            while n % d == 0:
                n //= d
        d += 1
    return out + ([n] if n > 1 else [])


def in_log_coordinates(operation: str, p: int) -> bool:
    """Whether `group_view` reads this task in discrete-log coordinates: × and ÷ mod a prime. (× mod
    a composite p has no cyclic group of units: it is read in tokens, with sign 0.)"""
    return operation in LOG_SIGN and _is_prime(p)


@functools.lru_cache(maxsize=32)
def primitive_root(p: int) -> int:
    """The smallest generator g of Z_p^* (p prime): g^((p-1)/q) != 1 mod p for every prime q | p - 1."""
    if not _is_prime(p):
        raise ValueError(f"discrete-log coordinates need a prime modulus, got p={p}")
    n = p - 1
    for g in range(1, p):
        if all(pow(g, n // q, p) != 1 for q in _prime_factors(n)):
            return g
    raise AssertionError(p)  # every prime has a primitive root


@functools.lru_cache(maxsize=32)
def powers(p: int, g: int) -> torch.Tensor:
    """[p - 1] int64: g^i mod p for i = 0 .. p - 2, the token at each log coordinate (cached; do not modify)."""
    out, x = [], 1
    for _ in range(p - 1):
        out.append(x)
        x = x * g % p
    table = torch.tensor(out, dtype=torch.int64)
    if len(set(out)) != p - 1:
        raise ValueError(f"{g} does not generate the non-zero residues mod {p}")
    return table


def discrete_logs(p: int, g: int) -> torch.Tensor:
    """[p] int64: log_g x for x = 1 .. p - 1, and -1 at x = 0 (not in the group)."""
    logs = torch.full((p,), -1, dtype=torch.int64)
    logs[powers(p, g)] = torch.arange(p - 1)
    return logs


def group_view(inp: CheckpointOnGrid) -> CheckpointOnGrid:
    """The checkpoint in the coordinates where its operation is addition (or subtraction).

    For ``mul`` and ``div`` (p prime, g = `primitive_root`): every grid axis is re-indexed by
    log coordinates, position i holding token g^i, and the tokens and class 0 are dropped:
    W_E [p-1, d] (row i = the embedding of g^i), W_U [d, p-1] (column k = the logit of g^k),
    logits [n, n, n], neuron_acts [n, n, d_mlp], resid_final [n, n, d] and attention [n, n, H, 3] over (i, j) (those of
    every block), labels (log_g of the answer, in Z_n), the split masks restricted to the group's
    inputs, p = n = p − 1, sign +1 (mul) or −1 (div), coordinates "log" and generator g. W_out,
    params and the model are unchanged. Any other operation, or ``mul`` mod a composite p: ``inp`` itself.
    """
    if inp.coordinates == "log" or not in_log_coordinates(inp.operation, inp.p):
        return inp
    p = inp.p
    g = primitive_root(p)
    idx = powers(p, g)  # [n]: token at log coordinate i
    logs = discrete_logs(p, g)

    def on_grid(x: torch.Tensor) -> torch.Tensor:  # [p, p, ...] -> [n, n, ...]
        return x.index_select(0, idx).index_select(1, idx)

    labels = on_grid(inp.labels)  # answers g^(i +- j), never 0 on the group's inputs
    return dataclasses.replace(
        inp, p=p - 1, sign=LOG_SIGN[inp.operation], coordinates="log", generator=g,
        W_E=inp.W_E.index_select(0, idx), W_U=inp.W_U.index_select(1, idx),
        logits=on_grid(inp.logits).index_select(2, idx), neuron_acts=on_grid(inp.neuron_acts),
        attention=on_grid(inp.attention),
        resid_final=None if inp.resid_final is None else on_grid(inp.resid_final), labels=logs[labels.clamp_min(0)].masked_fill(labels < 0, -1),
        train_mask=on_grid(inp.train_mask), test_mask=on_grid(inp.test_mask),
        earlier_layers=tuple(dataclasses.replace(layer, neuron_acts=on_grid(layer.neuron_acts),
                                                 attention=on_grid(layer.attention))
                             for layer in inp.earlier_layers),
    )
