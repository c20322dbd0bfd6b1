"""The frozen input every probe reads: one checkpoint evaluated on every input of its task.

The runner (`workbench.evaluate_on_grid`) runs the checkpoint's forward pass over all p^2
sequences ``a b =`` (a-major) and packs the weights the probes read, in the orientation the
papers use, with the activations at ``=``; probes never touch files, models or state-dict names.
Inputs a task does not contain (``div`` has no b = 0) are still run through the model;
``labels`` is -1 there and both masks are False. The evaluator gives the grid in token
coordinates (a, b are the tokens); `probes.coordinates.group_view` gives the same checkpoint in
the coordinates where its operation is addition (discrete logs for × and ÷), which is what the
Fourier probes read.

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)   # smoke: p = 23, d_mlp = 64
    >>> inp.logits.shape, inp.neuron_acts.shape        # [p, p, p], [p, p, d_mlp]
    (torch.Size([23, 23, 23]), torch.Size([23, 23, 64]))
    >>> inp.logits[inp.train_mask].shape[1]            # [n_train, p]
    23
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int


@dataclass(frozen=True)
class LayerOnGrid:
    """One block of a checkpoint on the grid: neuron_acts [p, p, d_mlp] (its MLP's output
    activations at ``=``), attention [p, p, n_heads, 3] (its pattern from ``=`` to a, b, ``=``),
    W_out [d_mlp, d_model]."""

    neuron_acts: Float[torch.Tensor, "p p d_mlp"]
    attention: Float[torch.Tensor, "p p n_heads 3"]
    W_out: Float[torch.Tensor, "d_mlp d_model"]


@dataclass(frozen=True)
class CheckpointOnGrid:
    """One checkpoint, evaluated on every (a, b).

    step: training step; p: the order of the grid's axes (the modulus; p - 1 in log
    coordinates); sign: +1 if the task is a + b in these coordinates, -1 if a - b, 0 when the
    Fourier sum directions do not apply (the polynomial tasks and × mod a composite p: probes
    write NaN rows for the measures that need them, `probes.not_applicable`); operation: the task's name (`workbench.tasks.OPERATIONS`); coordinates: "token", or
    "log" (axes indexed by log_g of the token, g = ``generator``; `probes.coordinates`).
    W_E: [p, d_model], the number tokens' embeddings (the ``=`` row dropped); W_out: [d_mlp,
    d_model] of the last block; W_U: [d_model, p]; params: every trainable tensor by name (what
    the weight norms sum over). logits: [p, p, p] at ``=``; neuron_acts: [p, p, d_mlp] (the last
    block's MLP output activations at ``=``); attention: [p, p, n_heads, 3] (the last block's
    pattern from ``=`` to a, b, ``=``); labels: [p, p] int64; train_mask, test_mask: [p, p] bool. model: for probes that perturb the
    weights or differentiate the model (``llc``, ``clock_pizza``), a private copy of the trainer's
    module at this checkpoint (tokens [batch, 3] -> logits at ``=`` [batch, p]; ``embed(tokens)``
    [batch, 3, d_model] and ``from_embeddings(x)`` split that call at the token embeddings; the
    parameters the run trained have ``requires_grad``), else None. It always takes tokens, also in
    log coordinates. resid_final: [p, p, d_model], the residual stream at ``=`` after the last
    block (the features the unembedding reads; None where the evaluator did not give it).
    earlier_layers: the blocks before the last (`LayerOnGrid`, in order; empty
    for one layer); `layers` lists every block, the last one built from neuron_acts, attention and
    W_out.
    """

    step: int
    p: int
    sign: int
    W_E: Float[torch.Tensor, "p d_model"]
    W_out: Float[torch.Tensor, "d_mlp d_model"]
    W_U: Float[torch.Tensor, "d_model p"]
    params: dict[str, torch.Tensor]
    logits: Float[torch.Tensor, "p p p"]
    neuron_acts: Float[torch.Tensor, "p p d_mlp"]
    attention: Float[torch.Tensor, "p p n_heads 3"]
    labels: Int[torch.Tensor, "p p"]
    train_mask: Bool[torch.Tensor, "p p"]
    test_mask: Bool[torch.Tensor, "p p"]
    model: torch.nn.Module | None = None
    operation: str = "add"
    coordinates: str = "token"
    generator: int | None = None
    earlier_layers: tuple[LayerOnGrid, ...] = ()
    resid_final: Float[torch.Tensor, "p p d_model"] | None = None

    @property
    def layers(self) -> tuple[LayerOnGrid, ...]:
        """Every block, first to last."""
        return (*self.earlier_layers, LayerOnGrid(self.neuron_acts, self.attention, self.W_out))

    @property
    def data_mask(self) -> torch.Tensor:
        """[p, p] bool: the inputs the task has (train or test)."""
        return self.train_mask | self.test_mask
