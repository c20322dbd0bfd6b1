"""Attention from the "=" token: where each head looks, and how Fourier-shaped that is.

Nanda et al. 2023 (Sec. 4.2) find the heads at "=" attend to a and b with a weight that is
itself a periodic function of a and b at the key frequencies. For each head h of each block
(``layer``; in a deeper model the ``=`` row of every block, read from its own ``hook_pattern``):

    to_a, to_b, to_eq  = mean over the task's inputs of pattern[h, "=", a | b | "="]
    key_explained      = fraction of the centred variance of the grid g(a, b) = pattern[h, "=", a]
                         held by 2-D Fourier terms of the key frequencies:
                         sum_{k in S} sum_{x, y in {0, cos k, sin k}} G[x, y]^2 / sum G^2
                         (G = F g F^T, the same grouping as `fourier.neuron_frequency_fractions`)

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)
    >>> frame = probe(inp, key_freqs=(4, 7))   # rows: step, measure, layer, head, value
"""

from __future__ import annotations

from probes.fourier import neuron_frequency_fractions
from probes.grid import CheckpointOnGrid
from probes.table import tidy

KEYS = ("a", "b", "eq")


def probe(inp: CheckpointOnGrid, key_freqs: tuple[int, ...] = (), settings=None):
    """Rows ``step, measure, layer, head, value``: measure is to_a, to_b, to_eq or key_explained,
    for every head of every block (layer 0 the first)."""
    data = inp.data_mask
    rows = []
    for layer, block in enumerate(inp.layers):
        pattern = block.attention.double()  # [p, p, H, 3]
        mean = pattern[data].mean(0)  # [H, 3]
        fractions = neuron_frequency_fractions(pattern[..., 0])  # [K, H]: the grid of attention to a
        for h in range(pattern.shape[2]):
            for j, key in enumerate(KEYS):
                rows.append((f"to_{key}", layer, h, float(mean[h, j])))
            explained = sum(float(fractions[k - 1, h]) for k in key_freqs) if key_freqs else 0.0
            rows.append(("key_explained", layer, h, explained))
    return tidy(inp.step, rows, ("measure", "layer", "head"))
