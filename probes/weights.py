"""Weight norms: the sum of squared weights, total and per parameter.

Weight decay drives grokking (Power et al. 2022; Nanda et al. 2023, Sec. 5.2; Omnigrok, Liu et
al. 2023): the memorising solution needs large weights, the Fourier circuit small ones, and the
"cleanup" phase shows as a sharp drop of  sum_params sum_i w_i^2.

    total = sum over every trainable tensor of sum(w^2)      (float64)

The unembedding bias is a fixed zero buffer in the bridge and is left out.

Example:
    >>> frame = probe(ckpt)          # rows: step, param, value; param "total" is the sum
"""

from __future__ import annotations


def sum_squared_weights(weights) -> dict[str, float]:
    """{name: sum(w^2)} for every trainable tensor, plus "total"."""
    out = {name: float(t.double().pow(2).sum()) for name, t in weights.items() if name != "unembed.bias"}
    out["total"] = sum(out.values())
    return out


def probe(ckpt, key_freqs=(), settings=None):
    """Rows ``step, param, value``."""
    import pandas as pd

    sums = sum_squared_weights(ckpt.weights)
    frame = pd.DataFrame({"param": list(sums), "value": list(sums.values())})
    frame.insert(0, "step", ckpt.step)
    return frame
