"""The model formats of the code that published grokking runs: Nanda et al. 2023's own transformer
and TransformerLens 2.x's ``HookedTransformer`` (the TransformerLens Grokking demo).

This module speaks those codebases' parameter names and shapes; ``convert_nanda2023_state_dict`` (here) and ``workbench.model.bridge.convert_tl2_state_dict`` map them onto
the bridge's. It holds two things:

* **their initialisations** (`nanda2023_init`, `tl2_init`), drawn in their names, shapes and order
  with a generator seeded by ``model_seed``, for runs whose ``init`` is ``nanda2023`` or ``tl2``;
* **their forward passes** (`nanda2023_logits`, `tl2_logits`), written from the sources' formulas
  in plain torch, independently of TransformerLens: an imported checkpoint is accepted only when
  the bridge's logits equal these on every input (`workbench.importer`).

Nanda et al. 2023 (progress-measures-paper, ``transformers.py``); h heads, e = d_head, d = d_model,
m = d_mlp, V = p + 1 tokens (``=`` is token p), one example ``x = (a, b, =)``::

    embed.W_E [d, V]      x_i = W_E[:, t_i] + W_pos[i]
    pos_embed.W_pos [3, d]
    blocks.L.attn.W_K, W_Q, W_V [h, e, d]   k = W_K x, q = W_Q x, v = W_V x (no biases)
    blocks.L.attn.W_O [d, h e]              scores = q·k masked causally, softmax(scores / sqrt(e));
                                            z = A v; out = W_O z (heads concatenated head-major)
    blocks.L.mlp.W_in [m, d], b_in [m]      ReLU(W_in x + b_in)
    blocks.L.mlp.W_out [d, m], b_out [d]    W_out . + b_out
    unembed.W_U [d, V]                      logits = x W_U  (V logits: ``=`` included)

TransformerLens 2.x ``HookedTransformer`` (no LayerNorm, as in the demo)::

    embed.W_E [V, d], pos_embed.W_pos [3, d]
    blocks.L.attn.W_Q, W_K, W_V [h, d, e], b_Q, b_K, b_V [h, e], W_O [h, e, d], b_O [d]
    blocks.L.mlp.W_in [d, m], b_in [m], W_out [m, d], b_out [d]
    unembed.W_U [d, p], b_U [p]

Example:
    >>> from workbench.config import load_config
    >>> from workbench.tasks import make_dataset
    >>> cfg = load_config("smoke", {"init": "nanda2023"})
    >>> source = nanda2023_init(cfg)                     # their names: {"embed.W_E": [d, p+1], ...}
    >>> nanda2023_logits(cfg, source, make_dataset("add", cfg.p).tokens).shape      # [n, p + 1]
    torch.Size([529, 24])
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.config import RunConfig
from workbench.model.architecture import N_CTX, activation
from workbench.model.names import EMBED, POS_EMBED, UNEMBED, UNEMBED_BIAS, block_key, checked_weights


def nanda2023_init(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """Nanda et al. 2023's initialisation, in their names and shapes (formulas: module docstring of
    `workbench.model.initial_weights`): ``randn(...) / sqrt(d_model)`` for every matrix but W_U,
    ``randn(d_model, p+1) / sqrt(p+1)`` for W_U, zero MLP biases, drawn in the order their modules
    are built, from a generator seeded with ``model_seed``."""
    return _nanda_family_init(cfg, w_in_scale=cfg.d_model, w_u_scale=cfg.p + 1, unembed_first=False)


def zhong2023_init(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """Zhong et al. 2023's initialisation ("The clock and the pizza", their ``code/train-main.py``),
    in Nanda et al.'s names and shapes (their model is Nanda et al.'s, rescaled): drawn in the order
    their modules are built, from a generator seeded with ``model_seed``:
    ``W_E = randn(d_model, vocab) / sqrt(d_model)``, ``W_pos = randn(n_ctx, d_model) / sqrt(d_model)``,
    then the unembedding ``W_U = randn(d_model, vocab) / sqrt(p)`` (built before the blocks; their
    vocabulary is the p numbers), then per block ``W_K, W_Q, W_V = randn(heads, d_head, d_model) /
    sqrt(d_model)``, ``W_O = randn(d_model, heads d_head) / sqrt(d_model)``, ``W_in = randn(d_mlp,
    d_model) / sqrt(d_mlp)`` (not sqrt(d_model) as Nanda et al.'s), ``b_in = 0``, ``W_out =
    randn(d_model, d_mlp) / sqrt(d_model)``, ``b_out = 0``. Their inputs are the two tokens a b (no
    ``=``); here the vocabulary keeps the ``=`` token's row and column, drawn at the same scales."""
    return _nanda_family_init(cfg, w_in_scale=cfg.d_mlp, w_u_scale=cfg.p, unembed_first=True)


def _nanda_family_init(cfg: RunConfig, w_in_scale: int, w_u_scale: int, unembed_first: bool) -> dict[str, torch.Tensor]:
    """The draws both inits share, in their order: W_E, W_pos, (W_U if ``unembed_first``), per block
    W_K, W_Q, W_V, W_O, W_in (/ sqrt(``w_in_scale``)), b_in = 0, W_out, b_out = 0, (else W_U), every
    matrix / sqrt(d_model) but W_in and W_U (/ sqrt(``w_u_scale``))."""
    gen = torch.Generator().manual_seed(cfg.model_seed)
    d, H, dh, p = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.p

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    source = {"embed.W_E": randn(d, p + 1) / math.sqrt(d), "pos_embed.W_pos": randn(N_CTX, d) / math.sqrt(d)}
    if unembed_first:
        source["unembed.W_U"] = randn(d, p + 1) / math.sqrt(w_u_scale)
    for layer in range(cfg.n_layers):
        attn, mlp = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        for name in ("W_K", "W_Q", "W_V"):
            source[attn + name] = randn(H, dh, d) / math.sqrt(d)
        source[attn + "W_O"] = randn(d, H * dh) / math.sqrt(d)
        source[mlp + "W_in"] = randn(cfg.d_mlp, d) / math.sqrt(w_in_scale)
        source[mlp + "b_in"] = torch.zeros(cfg.d_mlp)
        source[mlp + "W_out"] = randn(d, cfg.d_mlp) / math.sqrt(d)
        source[mlp + "b_out"] = torch.zeros(d)
    if not unembed_first:
        source["unembed.W_U"] = randn(d, p + 1) / math.sqrt(w_u_scale)
    return source


def tl2_shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of a TL 2.x ``HookedTransformer`` of this config, in ``named_parameters`` order."""
    d, H, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    shapes: dict[str, tuple[int, ...]] = {"embed.W_E": (cfg.p + 1, d), "pos_embed.W_pos": (N_CTX, d)}
    for layer in range(cfg.n_layers):
        attn, mlp = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        shapes.update({attn + "W_Q": (H, d, dh), attn + "W_O": (H, dh, d), attn + "b_Q": (H, dh), attn + "b_O": (d,),
                       attn + "W_K": (H, d, dh), attn + "W_V": (H, d, dh), attn + "b_K": (H, dh), attn + "b_V": (H, dh),
                       mlp + "W_in": (d, cfg.d_mlp), mlp + "b_in": (cfg.d_mlp,),
                       mlp + "W_out": (cfg.d_mlp, d), mlp + "b_out": (d,)})
    shapes.update({"unembed.W_U": (d, cfg.p), "unembed.b_U": (cfg.p,)})
    return shapes


def tl2_init(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """TransformerLens 2.x's ``init_mode="gpt2"`` initialisation, in its names and shapes: every
    ``W_*`` parameter, in ``named_parameters`` order, ``normal_(0, 0.8 / sqrt(d_model))`` from a
    generator seeded with ``model_seed``; every bias 0."""
    gen = torch.Generator().manual_seed(cfg.model_seed)
    std = 0.8 / math.sqrt(cfg.d_model)
    source = {}
    for name, shape in tl2_shapes(cfg).items():
        tensor = torch.zeros(shape)
        if name.rsplit(".", 1)[1].startswith("W_"):
            tensor.normal_(0.0, std, generator=gen)
        source[name] = tensor
    return source


# Where each format keeps the sizes: (key, shape letters) for W_E, one attention matrix, W_in.
_SIZE_LAYOUT = {
    "nanda2023": (("embed.W_E", "dv"), ("blocks.0.attn.W_K", "hed"), ("blocks.0.mlp.W_in", "md")),
    "tl2": (("embed.W_E", "vd"), ("blocks.0.attn.W_Q", "hde"), ("blocks.0.mlp.W_in", "dm")),
}


def model_sizes(fmt: str, sd: dict[str, Tensor]) -> dict[str, int]:
    """p, d_model, n_heads, d_head, d_mlp and n_layers read off a ``nanda2023`` or ``tl2`` state dict
    (v = p + 1 tokens, d = d_model, h heads, e = d_head, m = d_mlp)."""
    sizes: dict[str, int] = {}
    layout = _SIZE_LAYOUT[fmt]
    for key, letters in layout:
        shape = tuple(sd[key].shape) if key in sd else ()
        if len(shape) != len(letters):
            described = ", ".join(f"{k} [{', '.join(ls)}]" for k, ls in layout)
            raise ValueError(f"not a {fmt} state dict: expected {described}")
        sizes.update(zip(letters, map(int, shape), strict=True))
    layers = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    return {"p": sizes["v"] - 1, "d_model": sizes["d"], "n_heads": sizes["h"], "d_head": sizes["e"],
            "d_mlp": sizes["m"], "n_layers": layers}


def _causal_attention(q: Tensor, k: Tensor, v: Tensor, d_head: int) -> Tensor:
    """q, k, v: [batch, heads, 3, e] -> z [batch, heads, 3, e], causal softmax(q k^T / sqrt(e))."""
    scores = q @ k.transpose(-1, -2)
    mask = torch.tril(torch.ones(N_CTX, N_CTX, dtype=torch.bool))
    scores = scores.masked_fill(~mask, float("-inf")) / math.sqrt(d_head)
    return scores.softmax(-1) @ v


def nanda2023_logits(cfg: RunConfig, source: dict[str, Tensor], tokens: Int[Tensor, "n 3"]) -> Tensor:
    """Nanda et al. 2023's forward pass on ``tokens`` [n, 3] in float64: logits at ``=``, [n, p + 1]."""
    w = {k: v.detach().double() for k, v in source.items()}
    x = w["embed.W_E"][:, tokens].permute(1, 2, 0) + w["pos_embed.W_pos"]  # [n, 3, d]
    H, dh = cfg.n_heads, cfg.d_head
    for layer in range(cfg.n_layers):
        attn, mlp = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        q, k, v = (torch.einsum("ied,npd->nipe", w[attn + name], x) for name in ("W_Q", "W_K", "W_V"))
        z = _causal_attention(q, k, v, dh)  # [n, h, 3, e]
        z = z.permute(0, 2, 1, 3).reshape(x.shape[0], N_CTX, H * dh)  # heads concatenated, head-major
        x = x + z @ w[attn + "W_O"].T
        hidden = activation(cfg.act_fn)(x @ w[mlp + "W_in"].T + w[mlp + "b_in"])
        x = x + hidden @ w[mlp + "W_out"].T + w[mlp + "b_out"]
    return x[:, -1] @ w["unembed.W_U"]


def tl2_logits(cfg: RunConfig, source: dict[str, Tensor], tokens: Int[Tensor, "n 3"]) -> Tensor:
    """TransformerLens 2.x ``HookedTransformer``'s forward pass (no LayerNorm) on ``tokens`` [n, 3]
    in float64: logits at ``=``, [n, p]."""
    w = {k: v.detach().double() for k, v in source.items()}
    x = w["embed.W_E"][tokens] + w["pos_embed.W_pos"]  # [n, 3, d]
    act = activation(cfg.act_fn)
    for layer in range(cfg.n_layers):
        attn, mlp = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        q, k, v = (torch.einsum("npd,hde->nhpe", x, w[attn + "W_" + c]) + w[attn + "b_" + c][:, None]
                   for c in "QKV")
        z = _causal_attention(q, k, v, cfg.d_head)  # [n, h, 3, e]
        x = x + torch.einsum("nhpe,hed->npd", z, w[attn + "W_O"]) + w[attn + "b_O"]
        x = x + act(x @ w[mlp + "W_in"] + w[mlp + "b_in"]) @ w[mlp + "W_out"] + w[mlp + "b_out"]
    return x[:, -1] @ w["unembed.W_U"] + w.get("unembed.b_U", torch.zeros(cfg.p, dtype=torch.float64))


def convert_nanda2023_state_dict(cfg: RunConfig, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The transformer of Nanda et al. 2023's code under this module's bridge names.

    Their names and shapes, and what each becomes (h heads, e = d_head, d = d_model, m = d_mlp):

        embed.W_E          [d, p+1]     -> embed.weight [p+1, d]          transposed
        pos_embed.W_pos    [3, d]       -> pos_embed.weight [3, d]        as is
        blocks.L.attn.W_Q  [h, e, d]    -> blocks.L.attn.q.weight [h e, d]  reshaped (head-major rows,
                                           the order their ``(i h)`` rearrange of z uses); bias 0
        blocks.L.attn.W_K, W_V          -> k.weight, v.weight             likewise; bias 0
        blocks.L.attn.W_O  [d, h e]     -> blocks.L.attn.o.weight [d, h e]  as is; bias 0
        blocks.L.mlp.W_in  [m, d], b_in -> mlp.in.weight [m, d], bias      as is
        blocks.L.mlp.W_out [d, m], b_out-> mlp.out.weight [d, m], bias     as is
        unembed.W_U        [d, p+1]     -> unembed.weight [p, d]           transposed, the row of
                                           ``=`` (never a label) dropped; unembed.bias 0

    Their attention divides scores by sqrt(d_head) after masking, as the bridge does; the
    ``blocks.L.attn.mask`` buffer is dropped. ``ValueError`` names a key or shape that does not fit.
    """
    d, H, dh, p = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.p
    expected = {"embed.W_E": (d, p + 1), "pos_embed.W_pos": (N_CTX, d), "unembed.W_U": (d, p + 1)}
    for layer in range(cfg.n_layers):
        expected.update({f"blocks.{layer}.attn.W_{x}": (H, dh, d) for x in "KQV"})
        expected.update({f"blocks.{layer}.attn.W_O": (d, H * dh), f"blocks.{layer}.mlp.W_in": (cfg.d_mlp, d),
                         f"blocks.{layer}.mlp.b_in": (cfg.d_mlp,), f"blocks.{layer}.mlp.W_out": (d, cfg.d_mlp),
                         f"blocks.{layer}.mlp.b_out": (d,)})
    sd = {k: v for k, v in state_dict.items() if not k.endswith(".attn.mask")}
    unknown = sorted(set(sd) - set(expected))
    if unknown:
        raise ValueError(f"unexpected key(s) {', '.join(unknown)} for this config's model (n_layers={cfg.n_layers})")
    for key, shape in expected.items():
        if key not in sd:
            raise ValueError(f"missing key {key}")
        if tuple(sd[key].shape) != shape:
            raise ValueError(f"{key} has shape {tuple(sd[key].shape)}, expected {shape} for p={p}, d_model={d}, "
                             f"n_heads={H}, d_head={dh}, d_mlp={cfg.d_mlp}")
    f32 = {k: v.detach().to(torch.float32) for k, v in sd.items()}
    out = {EMBED: f32["embed.W_E"].T.contiguous(), POS_EMBED: f32["pos_embed.W_pos"].clone()}
    for layer in range(cfg.n_layers):
        src = lambda name: f32[f"blocks.{layer}.{name}"]  # noqa: E731, B023
        for x, ours in (("Q", "q"), ("K", "k"), ("V", "v")):
            out[block_key(layer, f"attn.{ours}.weight")] = src(f"attn.W_{x}").reshape(H * dh, d).clone()
            out[block_key(layer, f"attn.{ours}.bias")] = torch.zeros(H * dh)
        out[block_key(layer, "attn.o.weight")] = src("attn.W_O").clone()
        out[block_key(layer, "attn.o.bias")] = torch.zeros(d)
        out[block_key(layer, "mlp.in.weight")] = src("mlp.W_in").clone()
        out[block_key(layer, "mlp.in.bias")] = src("mlp.b_in").clone()
        out[block_key(layer, "mlp.out.weight")] = src("mlp.W_out").clone()
        out[block_key(layer, "mlp.out.bias")] = src("mlp.b_out").clone()
    out[UNEMBED] = f32["unembed.W_U"][:, :p].T.contiguous()
    out[UNEMBED_BIAS] = torch.zeros(p)
    return checked_weights(cfg, out)
