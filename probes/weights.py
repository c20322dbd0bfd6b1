"""Weight norms: the sum of squared weights, total and per parameter.

Weight decay drives grokking (Power et al. 2022; Nanda et al. 2023, Sec. 5.2; Omnigrok, Liu et
al. 2023): the memorising solution needs large weights, the Fourier circuit small ones, and the
"cleanup" phase shows as a sharp drop of  sum_params sum_i w_i^2.

    total = sum over every trainable tensor of sum(w^2)      (float64)

Only trainable tensors count (`CheckpointOnGrid.params`; the model seam leaves out the fixed
zero unembedding bias, and the biases of a run that freezes them: version 2).

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)
    >>> frame = probe(inp)          # rows: step, param, value; param "total" is the sum
    >>> "total" in set(frame.param)
    True
"""

from __future__ import annotations

import torch

from probes.grid import CheckpointOnGrid
from probes.table import tidy


def sum_squared_weights(params: dict[str, torch.Tensor]) -> dict[str, float]:
    """{name: sum(w^2)} for every tensor given, plus "total"."""
    out = {name: float(t.double().pow(2).sum()) for name, t in params.items()}
    out["total"] = sum(out.values())
    return out


def probe(inp: CheckpointOnGrid, key_freqs=(), settings=None):
    """Rows ``step, param, value``."""
    return tidy(inp.step, list(sum_squared_weights(inp.params).items()), ("param",))
