"""A one-layer model built by hand whose logits are ~ sum_{w in S} cos(w(a + b - c)).

Residual blocks (all through the real TransformerBridge): T (token), A, B (each 2|S| dims:
cos w x, sin w x for w in S), POS (3 one-hot position dims), R (read-out).
  * W_E[x] = (cos w x, sin w x)_w in T; "=" embeds to zero; position i embeds to POS_i.
  * Head 0 attends from "=" to position 0 only, head 1 to position 1 only (query from POS_2,
    keys from POS_0 / POS_1, scores of 40 against 0: leakage e^-40); they copy T into A and B.
    So at "=" the stream holds e(a) in A and e(b) in B.
  * Neuron (w, phi, psi), phases on a G x G grid, reads cos(w a - phi) + cos(w b - psi); ReLU.
    Summed against e^{i(phi + psi)} such neurons give e^{iw(a+b)} exactly (up to aliasing of
    higher phase harmonics), so a linear read-out can produce cos(w(a + b - c)).
  * W_out W_U is the least-squares fit of the target logits from the neurons, factored by SVD
    into R, which the embedding and attention never touch.
Known answer: the key frequencies are exactly S, and the logits are nearly all target.

``operation="mul"`` (or ``"div"``: i - j) builds the same circuit in discrete-log coordinates (`probes.coordinates`):
token x = g^i embeds as (cos w i, sin w i) with w = 2 pi k / (p - 1), token 0 embeds to zero, the
target logit of class g^k is cos(w(i + j - k)) and class 0 sits at -scale |S| below it; the
read-out is fitted on the (p - 1)^2 inputs without a zero. Known answer: in log coordinates the
key frequencies are exactly S (frequencies of Z_{p-1}); in token coordinates there is no such
structure.
"""

from __future__ import annotations

import math

import torch

from workbench.config import RunConfig


def constructed_config(p: int, freqs: tuple[int, ...], grid: int = 6, operation: str = "add") -> RunConfig:
    e = 2 * len(freqs)
    return RunConfig(p=p, d_model=3 * e + 3 + (e + 2), n_heads=2, d_head=e, d_mlp=grid * grid * len(freqs),
                     epochs=1, ckpt_every=0, frac_train=0.3, operation=operation)


def _coordinates(p: int, operation: str) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(coordinate of each token [p] float64, group order n, [p] bool: token in the group)."""
    if operation in ("mul", "div"):
        from probes.coordinates import discrete_logs, primitive_root

        logs = discrete_logs(p, primitive_root(p))
        return logs.clamp_min(0).double(), p - 1, logs >= 0
    return torch.arange(p, dtype=torch.float64), p, torch.ones(p, dtype=torch.bool)


def constructed_weights(cfg: RunConfig, freqs: tuple[int, ...], scale: float = 8.0,
                        class_gain: torch.Tensor | None = None, amplitudes: tuple[float, ...] | None = None,
                        neuron_gains: tuple[float, ...] | None = None) -> dict[str, torch.Tensor]:
    """The clock above; ``class_gain`` [p] multiplies each class's target logit (a per-class gain
    of the read-out, which the least-squares fit represents exactly): the correct logit is then
    scale |S| class_gain[a + b], a function of the sum alone. ``amplitudes``: each frequency's
    weight in the target logits (default 1 each). ``neuron_gains``: the neurons of frequency i
    have their input weights multiplied by gains[i] and their output weights divided by it, which
    leaves the model's function unchanged (relu(cx) = c relu(x)) but not W_L's norms."""
    p, d, e = cfg.p, cfg.d_model, 2 * len(freqs)
    T, A, B, POS, R = 0, e, 2 * e, 3 * e, 3 * e + 3
    f64 = dict(dtype=torch.float64)
    x, order, member = _coordinates(p, cfg.operation)
    W: dict[str, torch.Tensor] = {}
    E = torch.zeros(p + 1, d, **f64)
    for i, w in enumerate(freqs):
        E[:p, T + 2 * i] = torch.cos(2 * math.pi * w * x / order) * member
        E[:p, T + 2 * i + 1] = torch.sin(2 * math.pi * w * x / order) * member
    W["embed.weight"] = E
    P = torch.zeros(3, d, **f64)
    P[0, POS], P[1, POS + 1], P[2, POS + 2] = 1.0, 1.0, 1.0
    W["pos_embed.weight"] = P

    big = 40.0 * math.sqrt(e)  # the bridge divides scores by sqrt(d_head)
    Wq, Wk, Wv = (torch.zeros(2 * e, d, **f64) for _ in range(3))
    Wo = torch.zeros(d, 2 * e, **f64)
    for h, (src, dst) in enumerate(((POS, A), (POS + 1, B))):
        Wq[h * e, POS + 2] = big
        Wk[h * e, src] = 1.0
        Wv[h * e : (h + 1) * e, T : T + e] = torch.eye(e)
        Wo[dst : dst + e, h * e : (h + 1) * e] = torch.eye(e)
    W["blocks.0.attn.q.weight"], W["blocks.0.attn.k.weight"] = Wq, Wk
    W["blocks.0.attn.v.weight"], W["blocks.0.attn.o.weight"] = Wv, Wo
    for name in ("q", "k", "v"):
        W[f"blocks.0.attn.{name}.bias"] = torch.zeros(2 * e, **f64)
    W["blocks.0.attn.o.bias"] = torch.zeros(d, **f64)

    G = round(math.sqrt(cfg.d_mlp // len(freqs)))
    W_in = torch.zeros(cfg.d_mlp, d, **f64)
    n = 0
    for i in range(len(freqs)):
        for j in range(G):
            for k in range(G):
                phi, psi = 2 * math.pi * j / G, 2 * math.pi * k / G
                W_in[n, A + 2 * i], W_in[n, A + 2 * i + 1] = math.cos(phi), math.sin(phi)
                W_in[n, B + 2 * i], W_in[n, B + 2 * i + 1] = math.cos(psi), math.sin(psi)
                n += 1
    W["blocks.0.mlp.in.weight"] = W_in
    W["blocks.0.mlp.in.bias"] = torch.zeros(cfg.d_mlp, **f64)

    a, b, c = x[:, None, None], x[None, :, None], x[None, None, :]
    sign = -1 if cfg.operation in ("sub", "div") else 1
    weights = amplitudes or (1.0,) * len(freqs)
    target = scale * sum(amp * torch.cos(2 * math.pi * w * (a + sign * b - c) / order) for w, amp in zip(freqs, weights, strict=True))
    if class_gain is not None:
        target = target * class_gain.double()
    target[:, :, ~member] = -scale * len(freqs)  # class 0 (mul): never the answer on the group's inputs
    target = target.reshape(p * p, p)
    fit = (member[:, None] & member[None, :]).reshape(-1)  # the read-out is fitted on the group's inputs
    ea = E[:p, T : T + e][:, None, :].expand(p, p, e)
    eb = E[:p, T : T + e][None, :, :].expand(p, p, e)
    resid = torch.zeros(p, p, d, **f64)
    resid[..., A : A + e], resid[..., B : B + e] = ea, eb
    acts = torch.relu(resid.reshape(p * p, d) @ W_in.T)
    design = torch.cat([acts, torch.ones(p * p, 1, **f64)], dim=1)
    M = torch.linalg.lstsq(design[fit], target[fit], driver="gelsd").solution  # [d_mlp + 1, p]
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)  # the bias row too: its direction must be in W_U's span
    r = d - R
    W_out = torch.zeros(d, cfg.d_mlp, **f64)  # nn.Linear layout: [d_model, d_mlp]
    W_out[R:] = (U[:-1, :r] * S[:r]).T
    W_U = torch.zeros(p, d, **f64)  # [p, d_model]
    W_U[:, R:] = Vh[:r].T
    b_out = torch.zeros(d, **f64)
    b_out[R:] = U[-1, :r] * S[:r]
    W["blocks.0.mlp.out.weight"], W["blocks.0.mlp.out.bias"] = W_out, b_out
    W["unembed.weight"], W["unembed.bias"] = W_U, torch.zeros(p, **f64)
    if neuron_gains is not None:
        gain = torch.cat([torch.full((G * G,), float(c), **f64) for c in neuron_gains])
        W["blocks.0.mlp.in.weight"] = W["blocks.0.mlp.in.weight"] * gain[:, None]
        W["blocks.0.mlp.out.weight"] = W["blocks.0.mlp.out.weight"] / gain[None, :]
    return {k: v.float() for k, v in W.items()}


def write_constructed_run(root, name: str, p: int, freqs: tuple[int, ...], operation: str = "add"):
    """A run directory under ``root`` whose only checkpoint is the constructed model."""
    cfg = constructed_config(p, freqs, operation=operation)
    return write_run(root, name, cfg, constructed_weights(cfg, freqs))


def write_run(root, name: str, cfg: RunConfig, weights: dict[str, torch.Tensor]):
    """A run directory under ``root`` whose only checkpoint (step 0) is ``weights``."""
    from workbench import store
    from workbench.training import start_run

    run = start_run(root / name, cfg)
    store.write_checkpoint(run, 0, weights)
    (run.path / store.STATE).unlink()  # start_run's state holds the initial weights, not these: no run trained it
    return run


def pizza_config(p: int, freqs: tuple[int, ...]) -> RunConfig:
    """The pizza below: constant attention (attn_rate 0), one head, d_model 2|S| + p, d_mlp 2p|S|."""
    e = 2 * len(freqs)
    return RunConfig(p=p, d_model=e + p, n_heads=1, d_head=e, d_mlp=2 * p * len(freqs), attn_rate=0.0,
                     epochs=1, ckpt_every=0, frac_train=0.3)


def pizza_weights(cfg: RunConfig, freqs: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """A one-layer pizza (Zhong et al. 2023) built by hand, at attention rate 0.

    Residual blocks: T (cos w x, sin w x for w in S), R (one dimension per class).
      * W_E[x] = (cos w x, sin w x)_w in T; "=" and the positions embed to zero.
      * Constant attention weighs a, b and "=" by 1 each; the head copies T (OV = identity), so at
        "=" the stream holds v = E_a + E_b = 2 cos(w(a-b)/2) (cos w(a+b)/2, sin w(a+b)/2) per w.
      * Two ReLU neurons per (w, c) read +-v . u_c with u_c = (cos wc/2, sin wc/2); their sum is
        |v . u_c| = 2 |cos(w(a-b)/2)| |cos(w(a+b-c)/2)|, written to R_c and unembedded as logit c.
    Known answer: logit_c = sum_w 2 |cos(w(a-b)/2)| |cos(w(a+b-c)/2)|, maximal at c = a + b (so
    100% accuracy), and the correct logit sum_w 2 |cos(w(a-b)/2)| is a function of a - b alone:
    distance irrelevance 0; constant attention makes gradient symmetricity 1.
    """
    p, d, e = cfg.p, cfg.d_model, 2 * len(freqs)
    T, R = 0, e
    f64 = dict(dtype=torch.float64)
    x = torch.arange(p, dtype=torch.float64)
    W: dict[str, torch.Tensor] = {}
    E = torch.zeros(p + 1, d, **f64)
    for i, k in enumerate(freqs):
        E[:p, T + 2 * i] = torch.cos(2 * math.pi * k * x / p)
        E[:p, T + 2 * i + 1] = torch.sin(2 * math.pi * k * x / p)
    W["embed.weight"], W["pos_embed.weight"] = E, torch.zeros(3, d, **f64)
    W["blocks.0.attn.q.weight"], W["blocks.0.attn.k.weight"] = torch.zeros(e, d, **f64), torch.zeros(e, d, **f64)
    W["blocks.0.attn.v.weight"] = torch.eye(e, d, **f64)  # reads T
    W["blocks.0.attn.o.weight"] = torch.eye(d, e, **f64)  # writes T
    for name in ("q", "k", "v"):
        W[f"blocks.0.attn.{name}.bias"] = torch.zeros(e, **f64)
    W["blocks.0.attn.o.bias"] = torch.zeros(d, **f64)
    W_in = torch.zeros(cfg.d_mlp, d, **f64)
    W_out = torch.zeros(d, cfg.d_mlp, **f64)
    n = 0
    for i, k in enumerate(freqs):
        for c in range(p):
            half = math.pi * k * c / p  # w c / 2
            for sign in (1.0, -1.0):
                W_in[n, T + 2 * i], W_in[n, T + 2 * i + 1] = sign * math.cos(half), sign * math.sin(half)
                W_out[R + c, n] = 1.0
                n += 1
    W["blocks.0.mlp.in.weight"], W["blocks.0.mlp.in.bias"] = W_in, torch.zeros(cfg.d_mlp, **f64)
    W["blocks.0.mlp.out.weight"], W["blocks.0.mlp.out.bias"] = W_out, torch.zeros(d, **f64)
    W_U = torch.zeros(p, d, **f64)
    W_U[:, R:] = torch.eye(p, **f64)
    W["unembed.weight"], W["unembed.bias"] = W_U, torch.zeros(p, **f64)
    return {k: v.float() for k, v in W.items()}


def split_over_layers(cfg: RunConfig, weights: dict[str, torch.Tensor], freqs: tuple[int, ...],
                      layer_of: dict[int, int]) -> tuple[RunConfig, dict[str, torch.Tensor]]:
    """The constructed clock above (``cfg``, ``weights``: one layer, frequencies ``freqs``) as a
    two-layer model whose neurons of frequency k sit in block ``layer_of[k]``.

    Block 0 keeps the attention (it copies e(a), e(b) into A and B); block 1's attention weights
    are zero (uniform attention whose output is zero: a pass-through). Each block's MLP holds the
    neurons of its own frequencies (the other rows of W_in and columns of W_out zero: dead
    neurons); block 1's neurons read A and B only, which block 0's MLP (writing to R) leaves alone.
    So the logits are the one-layer model's, up to float32 rounding of a sum split in two.
    Known answer: block l's key frequencies are {k : layer_of[k] = l}, by the neurons and the W_L
    rule; the model's are all of ``freqs``; block 0's heads attend to a and b, block 1's uniformly.
    """
    import dataclasses

    deep = dataclasses.replace(cfg, n_layers=2)
    per_freq = cfg.d_mlp // len(freqs)  # constructed_weights builds its neurons frequency by frequency
    out = {k: v.clone() for k, v in weights.items() if not k.startswith("blocks.")}
    for name, value in weights.items():
        if name.startswith("blocks.0.attn."):
            out[name] = value.clone()
            out[name.replace("blocks.0.", "blocks.1.")] = torch.zeros_like(value)
    for layer in (0, 1):
        mine = torch.zeros(cfg.d_mlp, dtype=torch.bool)
        for i, k in enumerate(freqs):
            mine[i * per_freq:(i + 1) * per_freq] = layer_of[k] == layer
        out[f"blocks.{layer}.mlp.in.weight"] = weights["blocks.0.mlp.in.weight"] * mine[:, None]
        out[f"blocks.{layer}.mlp.in.bias"] = weights["blocks.0.mlp.in.bias"] * mine
        out[f"blocks.{layer}.mlp.out.weight"] = weights["blocks.0.mlp.out.weight"] * mine[None, :]
        out[f"blocks.{layer}.mlp.out.bias"] = weights["blocks.0.mlp.out.bias"] * (layer == 0)
    return deep, out
