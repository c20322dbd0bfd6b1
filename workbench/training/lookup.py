"""The one-layer forward pass as table lookups: what the training step computes per input, and what it computes once.

In a one-layer model the residual stream entering the block at position i is
``x_i(t) = W_E[t] + W_pos[i]``: it depends on one token and its position only. Every input is
``a b =``, so there are just 2p + 1 distinct rows (a at position 0, b at position 1, and ``=`` at
position 2), and everything attention computes from them is a table of 2p + 1 rows, built once
per step instead of once per input:

    q          = x_2 W_Q + b_Q                        (one vector: the query of "=" is the same for every input)
    s_i(t)     = q · (x_i(t) W_K) / sqrt(d_head)       per head       [2p+1, H]
    v_i(t)     = x_i(t) W_V + b_V                                     [2p+1, d_attn]

Per input (a, b), only lookups and a softmax over the three positions remain:

    A          = rate · softmax(s_0(a), s_1(b), s_2) + (1 - rate) · (1, 1, 1)     per head
    z          = A_0 v_0(a) + A_1 v_1(b) + A_2 v_2                                 [d_attn]
    resid      = x_2 + z W_O + b_O
    logits     = (resid + act(resid W_in + b_in) W_out + b_out) W_U + b_U

so the per-input work is the output projection, the MLP and the unembedding:
``d_attn d_model + 2 d_model d_mlp + d_model p`` multiply-adds instead of the plain forward's
``d_model d_attn (1 + 6) + ...`` (the query of ``=`` and keys and values of all three positions,
per input): 0.55x the multiply-adds at the ``fast`` preset's sizes (`step_macs`).

The key bias b_K is left out: it adds ``q · b_K`` to every score of a query alike, which the
softmax cancels exactly, so it changes no output and its true gradient is identically zero. (A
trainer that gives it one anyway feeds Adam pure rounding noise, which Adam scales up to steps
of size lr: the bias drifts without changing anything but the weight norm. The training step
does not update it: a run that starts with b_K = 0, as every init rule here does, keeps it at
exactly 0.) The forward pass equals `workbench.model.FastTransformer.forward` to float32
rounding (the sums are taken in another order; tested on every input of the task).

Example:
    >>> from workbench.config import load_config
    >>> from workbench.model import initial_weights
    >>> cfg = load_config("smoke")
    >>> w = {k: v.unsqueeze(0) for k, v in initial_weights(cfg).items()}   # one member
    >>> a, b = torch.tensor([[1, 2]]), torch.tensor([[3, 4]])
    >>> lookup_forward(cfg, w, a, b).shape
    torch.Size([1, 2, 23])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from workbench.config import RunConfig
from workbench.model import EMBED, POS_EMBED, UNEMBED, UNEMBED_BIAS, activation, block_key


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Per-member ``F.linear``: x [M, n, in], weight [M, out, in], bias [M, out] -> [M, n, out]."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def lookup_forward(cfg: RunConfig, w: dict[str, Tensor], a: Int[Tensor, "M n"], b: Int[Tensor, "M n"]
                   ) -> Float[Tensor, "M n p"]:
    """Logits at ``=`` of a one-layer model for M members at once: ``w`` maps each weight name to
    its members' tensors stacked [M, ...]; ``a``, ``b`` the operands of each member's inputs
    [M, n]. The module docstring gives the identities; ``attn.k.bias`` is not read."""
    if cfg.n_layers != 1:
        raise ValueError("lookup_forward needs a one-layer model; deeper models train with stacked_forward")
    M, n = a.shape
    p, H, dh = cfg.p, cfg.n_heads, cfg.d_head
    blk = lambda name: w[block_key(0, name)]  # noqa: E731
    E, P = w[EMBED], w[POS_EMBED]
    # the 2p + 1 distinct residual rows: a at position 0, b at position 1, "=" (token p) at position 2
    X = torch.cat([E[:, :p] + P[:, 0:1], E[:, :p] + P[:, 1:2], E[:, p:p + 1] + P[:, 2:3]], dim=1)  # [M, 2p+1, d]
    rows = 2 * p + 1
    x2 = X[:, -1:]  # [M, 1, d]
    q = _affine(x2, blk("attn.q.weight"), blk("attn.q.bias")).view(M, 1, H, dh)
    keys = _affine(X, blk("attn.k.weight"), None).view(M, rows, H, dh)
    scores = (keys * q).sum(-1) / math.sqrt(dh)  # [M, 2p+1, H]
    values = _affine(X, blk("attn.v.weight"), blk("attn.v.bias"))  # [M, 2p+1, d_attn]
    # lookups: rows offset per member; F.embedding has a deterministic CPU backward
    ia = a + (torch.arange(M, device=a.device) * rows).view(M, 1)
    ib = ia - a + b + p
    by_row = lambda table: table.reshape(M * rows, -1)  # noqa: E731
    # the three positions on the last axis: softmax's kernel then takes every row alike, so a member's
    # bits do not depend on how many members share the group (over a leading axis they do)
    s = torch.stack(torch.broadcast_tensors(F.embedding(ia, by_row(scores)), F.embedding(ib, by_row(scores)),
                                            scores[:, -1:]), dim=-1)  # [M, n, H, 3]
    pattern = s.softmax(dim=-1)
    if cfg.attn_rate != 1.0:  # `rated_pattern` for the row of "=": every position weighs 1 - rate more
        pattern = cfg.attn_rate * pattern + (1.0 - cfg.attn_rate)
    v_a = F.embedding(ia, by_row(values)).view(M, n, H, dh)
    v_b = F.embedding(ib, by_row(values)).view(M, n, H, dh)
    v_eq = values[:, -1:].view(M, 1, H, dh)
    z = pattern[..., 0:1] * v_a + pattern[..., 1:2] * v_b + pattern[..., 2:3] * v_eq  # [M, n, H, dh]
    resid = _affine(z.reshape(M, n, H * dh), blk("attn.o.weight"), blk("attn.o.bias")) + x2
    pre = _affine(resid, blk("mlp.in.weight"), blk("mlp.in.bias"))
    hidden = pre.relu_() if cfg.act_fn == "relu" else activation(cfg.act_fn)(pre)
    resid = resid + _affine(hidden, blk("mlp.out.weight"), blk("mlp.out.bias"))
    return _affine(resid, w[UNEMBED], w[UNEMBED_BIAS])


def step_macs(cfg: RunConfig, n: int, lookup: bool) -> int:
    """Multiply-adds of one forward pass over ``n`` inputs of one member: the table-lookup forward
    (``lookup``) or the plain one (`workbench.model.FastTransformer.forward`: the query of ``=``
    and the keys and values of all three positions computed per input). Products of vectors of
    length 3 (the softmax, the pattern) are counted; additions of biases are not. The backward
    pass costs twice the matrix products (gradients of inputs and of weights), so a training step
    is ~3x this (`step_flops`)."""
    d, d_attn, m, p = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_mlp, cfg.p
    per_input_tail = d_attn * d + 2 * d * m + d * p  # W_O, the MLP, the unembedding
    if lookup:
        rows = 2 * p + 1
        tables = d * d_attn + 2 * rows * d * d_attn + rows * d_attn  # q; keys and values; scores
        return tables + n * (per_input_tail + 3 * d_attn)  # + the pattern-weighted sum of values
    attention = d * d_attn + 2 * 3 * d * d_attn + 2 * 3 * d_attn  # q of "="; k, v at 3 positions; scores and z
    return n * (attention + per_input_tail)


def step_flops(cfg: RunConfig, n: int, lookup: bool) -> int:
    """Floating-point operations of one training step (forward and backward) over ``n`` inputs:
    2 FLOPs per multiply-add, the backward twice the forward (`step_macs`)."""
    return 2 * 3 * step_macs(cfg, n, lookup)
