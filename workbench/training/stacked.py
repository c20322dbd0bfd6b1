"""The forward pass of G stacked members at once (the batched trainer's model)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.config import RunConfig
from workbench.model import (
    EMBED,
    N_CTX,
    POS_EMBED,
    UNEMBED,
    UNEMBED_BIAS,
    activation,
    block_key,
    rated_pattern,
)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member ``F.linear``: x [M, ..., in], weight [M, out, in], bias [M, out] -> [M, ..., out]."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    return torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2)).view(*x.shape[:-1], weight.shape[1])


def stacked_forward(cfg: RunConfig, w: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """`workbench.model.FastTransformer.forward` for M members at once: ``w`` maps each weight
    name to its members' tensors stacked [M, ...]; tokens [M, n, 3] (member m's inputs) ->
    logits at ``=`` [M, n, p]. The same operations in the same order, each batched over members
    (one batched matrix product per linear map; attention's small products as multiply-and-sum),
    so a member's logits equal its solo forward's to float rounding (tested)."""
    M, n, _ = tokens.shape
    H, dh = cfg.n_heads, cfg.d_head
    act = activation(cfg.act_fn)
    table = w[EMBED]  # [M, V, d]
    offsets = (torch.arange(M, device=tokens.device) * table.shape[1]).view(M, 1, 1)
    resid = F.embedding(tokens + offsets, table.reshape(-1, table.shape[-1]))  # [M, n, 3, d]
    resid = resid + w[POS_EMBED].unsqueeze(1)
    causal = torch.triu(torch.ones(N_CTX, N_CTX, dtype=torch.bool, device=tokens.device), diagonal=1)
    for layer in range(cfg.n_layers):
        last = layer == cfg.n_layers - 1

        def lin(x: torch.Tensor, name: str, layer: int = layer) -> torch.Tensor:
            return _linear(x, w[block_key(layer, name + ".weight")], w[block_key(layer, name + ".bias")])

        q = lin(resid[:, :, -1:] if last else resid, "attn.q")
        k, v = lin(resid, "attn.k"), lin(resid, "attn.v")
        if last:
            resid = resid[:, :, -1:]
        nq = q.shape[2]
        q = q.view(M, n, nq, H, dh).transpose(2, 3)  # [M, n, H, nq, dh]
        k = k.view(M, n, N_CTX, H, dh).transpose(2, 3)
        v = v.view(M, n, N_CTX, H, dh).transpose(2, 3)
        # products over d_head as multiply-and-sum, not matmul: millions of 1x16 @ 16x3 products run
        # far faster elementwise than as a batched matmul on CPU
        scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / math.sqrt(dh)  # [M, n, H, nq, 3]
        if not last:
            scores = scores.masked_fill(causal, float("-inf"))
        pattern = rated_pattern(scores.softmax(dim=-1), cfg.attn_rate)
        z = (pattern.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2).transpose(2, 3).reshape(M, n, nq, H * dh)
        resid = resid + lin(z, "attn.o")
        resid = resid + lin(act(lin(resid, "mlp.in")), "mlp.out")
    return _linear(resid[:, :, -1], w[UNEMBED], w[UNEMBED_BIAS])
