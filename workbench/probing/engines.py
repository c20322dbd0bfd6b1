"""The probes' engines: which forward pass computes what the probes read over the grid."""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.config import RunConfig
from workbench.errors import UsageError
from workbench.model import FastTransformer, bridge_activations, build_bridge, factored_grid_activations

ENGINES = ("factored", "bridge")

DEFAULT_ENGINE = "factored"


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    return engine


def grid_activations(
    cfg: RunConfig,
    weights: dict[str, torch.Tensor],
    tokens: Int[Tensor, "n 3"],
    engine: str = DEFAULT_ENGINE,
    workspace: dict | None = None,
    bridge=None,
) -> dict:
    """What the probes read on ``tokens`` (the full grid, `tasks.grid_tokens`) by one engine:
    logits [n, p], neuron_acts [n, d_mlp], resid_final [n, d_model] (the residual stream the
    unembedding reads), attention [n, n_heads, 3], all at ``=`` (last block),
    and ``earlier``: a dict of neuron_acts and attention for each block before the last.

    ``factored``: `factored_grid_activations` for one layer (``workspace`` reuses its buffers),
    `FastTransformer.activations` for deeper models; ``bridge``: `bridge_activations` on
    ``bridge`` (loaded with ``weights``) or on a freshly built one.
    """
    check_engine(engine)
    if engine == "factored" and cfg.n_layers == 1:
        return factored_grid_activations(cfg, weights, workspace)
    if engine == "factored":
        return FastTransformer(cfg, weights).activations(tokens)
    if bridge is None:
        bridge = build_bridge(cfg, weights)
    else:
        bridge.load_state_dict(weights, strict=True)
    return bridge_activations(bridge, cfg, tokens)
