"""The frozen input every probe reads: one checkpoint's weights and activations over the full grid.

The runner (``workbench.probe``) builds it from a TransformerLens ``run_with_cache`` over all p^2
inputs ``a b =`` (a-major), so probes never touch files or models. Inputs a task does not
contain (``div`` has no b = 0) are still run through the model; ``labels`` is -1 there and
both masks are False.

Weights use the bridge's (``nn.Linear``) layout; `W_out` and `W_U` give the TransformerLens
orientation used in the papers: W_out [d_mlp, d_model], W_U [d_model, p].

Example:
    >>> ckpt.logits.shape, ckpt.neuron_acts.shape        # [p, p, p], [p, p, d_mlp]
    >>> ckpt.logits[ckpt.train_mask].shape               # [n_train, p]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ProbeSettings:
    """Thresholds of the key-frequency rules (Nanda et al. 2023 use 0.85 for neurons)."""

    neuron_threshold: float = 0.85  # a neuron belongs to frequency k if k explains >= this of its variance
    min_cluster_frac: float = 0.02  # ...and k is key if its cluster holds >= this fraction of all neurons
    norm_rel_threshold: float = 0.1  # embed / W_L rule: |F_k|^2 >= this x the largest ...
    norm_min_share: float = 1.5  # ... and >= this x the uniform share 1/K (a flat spectrum claims none)
    key_rule: str = "neurons"  # which rule's set drives the progress measures: neurons, embed, wl

    def __post_init__(self) -> None:
        if self.key_rule not in KEY_RULES:
            raise ValueError(f"unknown key_rule {self.key_rule!r}; valid: {', '.join(KEY_RULES)}")
        for name in ("neuron_threshold", "min_cluster_frac", "norm_rel_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.norm_min_share < 0:
            raise ValueError(f"norm_min_share must be >= 0, got {self.norm_min_share}")


KEY_RULES = ("neurons", "embed", "wl")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint, evaluated on every (a, b).

    step: training step; p: modulus; sign: +1 if the task is a + b, -1 if a - b, 0 when the
    Fourier sum directions do not apply (other operations: probes that need them report none).
    weights: bridge state dict; logits: [p, p, p] at ``=``; neuron_acts: [p, p, d_mlp] (last
    block's ``mlp.hook_post`` at ``=``); resid_mid: [p, p, d_model] (last block, at ``=``);
    attention: [p, p, n_heads, 3] (``hook_pattern`` from ``=`` to a, b, ``=``);
    labels: [p, p] int64 (-1 where the task has no such input); train_mask, test_mask: [p, p] bool.
    """

    step: int
    p: int
    sign: int
    weights: dict[str, torch.Tensor]
    logits: torch.Tensor
    neuron_acts: torch.Tensor
    resid_mid: torch.Tensor
    attention: torch.Tensor
    labels: torch.Tensor
    train_mask: torch.Tensor
    test_mask: torch.Tensor
    last_block: int = 0

    @property
    def data_mask(self) -> torch.Tensor:
        return self.train_mask | self.test_mask

    @property
    def W_E(self) -> torch.Tensor:
        """[p, d_model]: the number tokens' embeddings (the ``=`` row is dropped)."""
        return self.weights["embed.weight"][: self.p]

    @property
    def W_out(self) -> torch.Tensor:
        """[d_mlp, d_model]."""
        return self.weights[f"blocks.{self.last_block}.mlp.out.weight"].T

    @property
    def b_out(self) -> torch.Tensor:
        return self.weights[f"blocks.{self.last_block}.mlp.out.bias"]

    @property
    def W_U(self) -> torch.Tensor:
        """[d_model, p]."""
        return self.weights["unembed.weight"].T

    @property
    def b_U(self) -> torch.Tensor:
        return self.weights["unembed.bias"]
