"""Cheap measures of complexity that are not the parameter count.

Golechha 2024 ("Progress measures for grokking on real-world tasks") tracks, beside the weight
norm, how many neurons an input uses (activation sparsity) and how spread out the weights'
magnitudes are (absolute weight entropy) as progress measures of grokking. Both move when the
general solution replaces memorisation: on the ``fast`` run, from just before cleanup (step
1,080) to step 2,000, the active fraction rises from 0.50 to 0.60 (the Fourier neurons fire on
more inputs than the memorising ones) and the normalised weight entropy falls from 0.97 to
0.92 (the weights concentrate; 0.94 at the end). The
parameter count is reported too, as the flat reference line: it never moves (Curth et al.
2023's point about double descent).

    active_fraction  = mean over the task's inputs of  #{neurons i : act_i(a, b) > 0} / N_mlp
                       (the MLP output activations at "=" of every block, N_mlp = n_layers d_mlp
                       neurons in all; for ReLU exactly the neurons that fire; 1 - active_fraction
                       is the activation sparsity)
    dead_fraction    = #{neurons i : act_i(a, b) <= 0 on every input} / N_mlp
    weight_entropy   = H(q) = -sum_i q_i log q_i,  q_i = |w_i| / sum_j |w_j|
                       over every trainable weight (natural log, nats)
    weight_entropy_norm = H(q) / log N   (1: all N magnitudes equal; 0: one weight holds all)
    param_count      = N, the number of trainable weights

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)
    >>> frame = probe(inp)            # rows: step, measure, value
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float

from probes.grid import CheckpointOnGrid
from probes.table import tidy

MEASURES = ("active_fraction", "dead_fraction", "weight_entropy", "weight_entropy_norm", "param_count")


def active_fractions(neuron_acts: Float[torch.Tensor, "n d_mlp"]) -> tuple[float, float]:
    """(mean fraction of neurons with activation > 0 per input, fraction never active) over the
    n inputs given."""
    on = neuron_acts > 0
    return float(on.double().mean()), float((~on.any(0)).double().mean())


def weight_entropy(params: dict[str, torch.Tensor]) -> tuple[float, int]:
    """(entropy in nats of the absolute weights normalised to sum 1, number of weights)."""
    flat = torch.cat([t.detach().double().abs().flatten() for t in params.values()])
    total = flat.sum()
    if total == 0:
        return 0.0, flat.numel()
    q = flat / total
    return float(-(q * torch.log(q.clamp_min(1e-300))).sum()), flat.numel()


def probe(inp: CheckpointOnGrid, key_freqs=(), settings=None):
    """Rows ``step, measure, value`` for each measure in `MEASURES`."""
    acts = torch.cat([block.neuron_acts[inp.data_mask] for block in inp.layers], dim=1)  # [inputs, N_mlp]
    active, dead = active_fractions(acts)
    entropy, count = weight_entropy(inp.params)
    values = {"active_fraction": active, "dead_fraction": dead, "weight_entropy": entropy,
              "weight_entropy_norm": entropy / math.log(count) if count > 1 else 0.0, "param_count": float(count)}
    return tidy(inp.step, [(m, values[m]) for m in MEASURES], ("measure",))
