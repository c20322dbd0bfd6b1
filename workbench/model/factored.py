"""The factored forward pass of a one-layer model over the whole (a, b) grid (the probes' default engine)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.config import RunConfig
from workbench.model.architecture import _ACTIVATIONS, rated_pattern
from workbench.model.names import EMBED, POS_EMBED, UNEMBED, UNEMBED_BIAS, block_key


def _buffer(workspace: dict | None, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 tensor, reused from ``workspace`` when one of that shape is there."""
    if workspace is None:
        return torch.empty(shape)
    buf = workspace.get(name)
    if buf is None or buf.shape != shape:
        buf = workspace[name] = torch.empty(shape)
    return buf


def factored_grid_activations(
    cfg: RunConfig, weights: dict[str, torch.Tensor], workspace: dict | None = None
) -> dict:
    """What the probes read over the whole (a, b) grid of a one-layer model, computed by
    factoring the forward pass instead of running it p^2 times.

    In a one-layer model the residual stream at position i is ``x_i = W_E[t_i] + W_pos[i]``, so
    the query of ``=`` is one vector per head, and keys and values depend on one token each:
    scores ``s_0(a), s_1(b), s_2``; pattern ``A(a, b) = softmax(s_0(a), s_1(b), s_2)`` per head.
    Everything after the softmax is linear until the MLP nonlinearity, so with
    ``o_i(t) = (x_i W_V + b_V) W_O`` per head,

        resid_mid(a, b) = x_2 + b_O + sum_h A_0 o_0(a) + A_1 o_1(b) + A_2 o_2
                        = x_2 + b_O + sum_h o_2 + A_0 (o_0(a) - o_2) + A_1 (o_1(b) - o_2)
        pre(a, b)       = resid_mid(a, b) W_in + b_in   (the same sum with o W_in in place of o)
        logits(a, b)    = act(pre) W_out W_U + (resid_mid + b_out) W_U + b_U

    which costs p^2 (3 n_heads d_mlp + d_mlp d_vocab_out) multiply-adds instead of
    p^2 (6 d_model^2 + 2 d_model d_mlp + ...): at the nanda2023 size ~0.4x the time of
    `FastTransformer.activations` and ~0.16x the bridge's (`make bench`). The values equal the bridge's ``run_with_cache`` to float32 rounding
    (summation order differs; tested to 1e-5 relative), not bit for bit as `FastTransformer`.

    Returns logits [p^2, p], neuron_acts [p^2, d_mlp], resid_final [p^2, d_model] (the residual
    stream after the block, what W_U reads), attention [p^2, n_heads, 3], rows in
    (a, b) row-major order (index a * p + b), and ``earlier`` [] (one block: none before it).

    ``workspace``: a dict the caller keeps between calls; the large outputs and temporaries are
    written into tensors kept there instead of fresh allocations (a checkpoint loop then touches
    no new memory per step). The returned tensors are then overwritten by the next call with
    the same workspace.
    """
    if cfg.n_layers != 1:
        raise ValueError("factored_grid_activations needs a one-layer model; use FastTransformer.activations")
    p, H, dh = cfg.p, cfg.n_heads, cfg.d_head
    w = {k: v.detach().float() for k, v in weights.items()}
    blk = lambda name: w[block_key(0, name)]  # noqa: E731
    E, P = w[EMBED], w[POS_EMBED]
    x0, x1, x2 = E[:p] + P[0], E[:p] + P[1], E[p] + P[2]  # [p, d], [p, d], [d]
    with torch.no_grad():
        q = F.linear(x2, blk("attn.q.weight"), blk("attn.q.bias")).view(H, dh)
        keys = [F.linear(x, blk("attn.k.weight"), blk("attn.k.bias")).view(-1, H, dh) for x in (x0, x1, x2[None])]
        s0, s1, s2 = ((k * q).sum(-1) / math.sqrt(dh) for k in keys)  # [p, H], [p, H], [1, H]
        scores = torch.stack(torch.broadcast_tensors(s0[:, None], s1[None, :], s2[None]), dim=-1)  # [p, p, H, 3]
        pattern = scores.softmax(dim=-1)
        W_O = blk("attn.o.weight").view(cfg.d_model, H, dh)  # [d, H, dh]
        outs = [torch.einsum("thk,dhk->thd", F.linear(x, blk("attn.v.weight"), blk("attn.v.bias")).view(-1, H, dh), W_O)
                for x in (x0, x1, x2[None])]  # o_i(t): [p | 1, H, d]
        const = x2 + blk("attn.o.bias")  # [d]

        rate = cfg.attn_rate  # A' = rate A + (1 - rate) (1, 1, 1) (`rated_pattern`): the o_2 terms still sum to o_2
        P0 = pattern[..., 0].contiguous()  # [p (a), p (b), H]; the "=" weight is 1 - P0 - P1
        P1_by_b = pattern[..., 1].transpose(0, 1).contiguous()  # [p (b), p (a), H]
        if rate != 1.0:
            P0, P1_by_b = rate * P0, rate * P1_by_b

        def mix(o0, o1, o2, c, name):  # sum_h A'_0 o_0(a) + A'_1 o_1(b) + A'_2 o_2 + c over the grid: [p, p, m]
            shape = (p, p, o0.shape[-1])
            out = torch.bmm(P0, o0 - o2, out=_buffer(workspace, name, shape))  # batched over a
            by_b = torch.bmm(P1_by_b, o1 - o2, out=_buffer(workspace, name + "_by_b", shape))  # batched over b
            out += by_b.transpose(0, 1)
            out += c + o2[0].sum(0)
            if rate != 1.0:  # the constant part of the pattern: (1 - rate) (o_0(a) + o_1(b)) summed over heads
                out += (1.0 - rate) * (o0.sum(1)[:, None] + o1.sum(1)[None, :])
            return out

        resid_mid = mix(*outs, const, "resid_mid")
        W_in, b_in = blk("mlp.in.weight"), blk("mlp.in.bias")
        pre = mix(*(o @ W_in.T for o in outs), const @ W_in.T + b_in, "neuron_acts")
        acts = (pre.relu_() if cfg.act_fn == "relu" else _ACTIVATIONS[cfg.act_fn](pre)).reshape(p * p, -1)
        W_U = w[UNEMBED]
        logits = torch.mm(acts, (W_U @ blk("mlp.out.weight")).T, out=_buffer(workspace, "logits", (p * p, p)))
        logits += (resid_mid.reshape(p * p, -1) + blk("mlp.out.bias")) @ W_U.T + w[UNEMBED_BIAS]
    resid_final = torch.addmm(resid_mid.reshape(p * p, -1) + blk("mlp.out.bias"), acts, blk("mlp.out.weight").T)
    return {"logits": logits, "neuron_acts": acts, "resid_final": resid_final, "attention": rated_pattern(pattern[..., None, :], rate).reshape(p * p, H, 3),
            "earlier": []}
