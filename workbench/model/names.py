"""Bridge state-dict and hook names, and the weight shapes a config implies: the names every checkpoint file uses."""

from __future__ import annotations

import torch

from workbench.config import RunConfig
from workbench.model.architecture import N_CTX

# Bridge state-dict names. Every checkpoint file uses exactly these keys.
EMBED = "embed.weight"  # [d_vocab, d_model]

POS_EMBED = "pos_embed.weight"  # [n_ctx, d_model]

UNEMBED = "unembed.weight"  # [d_vocab_out, d_model]

UNEMBED_BIAS = "unembed.bias"  # [d_vocab_out], a fixed zero buffer in the bridge


def block_key(layer: int, name: str) -> str:
    """e.g. ``block_key(0, "attn.q.weight")`` -> ``"blocks.0.attn.q.weight"``."""
    return f"blocks.{layer}.{name}"


def checked_weights(cfg: RunConfig, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` in this config's state-dict order; ``ValueError`` if a name or shape does not fit."""
    problem = misfit_weights(cfg, weights)
    extra = sorted(set(weights) - set(initial_shapes(cfg)))
    if problem or extra:
        raise ValueError(problem or f"unexpected key(s) {', '.join(extra)}")
    return {k: weights[k] for k in initial_shapes(cfg)}


def initial_shapes(cfg: RunConfig) -> dict[str, torch.Size]:
    """Shape of every bridge weight of this config (no TransformerLens needed)."""
    d_attn = cfg.n_heads * cfg.d_head
    shapes = {EMBED: (cfg.p + 1, cfg.d_model), POS_EMBED: (N_CTX, cfg.d_model)}
    per_block = {"attn.q.weight": (d_attn, cfg.d_model), "attn.q.bias": (d_attn,),
                 "attn.k.weight": (d_attn, cfg.d_model), "attn.k.bias": (d_attn,),
                 "attn.v.weight": (d_attn, cfg.d_model), "attn.v.bias": (d_attn,),
                 "attn.o.weight": (cfg.d_model, d_attn), "attn.o.bias": (cfg.d_model,),
                 "mlp.in.weight": (cfg.d_mlp, cfg.d_model), "mlp.in.bias": (cfg.d_mlp,),
                 "mlp.out.weight": (cfg.d_model, cfg.d_mlp), "mlp.out.bias": (cfg.d_model,)}
    for layer in range(cfg.n_layers):
        shapes.update({block_key(layer, k): v for k, v in per_block.items()})
    shapes.update({UNEMBED: (cfg.p, cfg.d_model), UNEMBED_BIAS: (cfg.p,)})
    return {k: torch.Size(v) for k, v in shapes.items()}


def weight_names(cfg: RunConfig) -> list[str]:
    return list(initial_shapes(cfg))


def misfit_weights(cfg: RunConfig, weights: dict[str, torch.Tensor]) -> str | None:
    """None if ``weights`` is a full state dict of this config's model, else what is wrong."""
    shapes = initial_shapes(cfg)
    missing = sorted(set(shapes) - set(weights))
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [f"{k} {tuple(weights[k].shape)} (expected {tuple(v)})" for k, v in shapes.items() if weights[k].shape != v]
    return f"misshapen {', '.join(wrong)}" if wrong else None


def probe_weights(cfg: RunConfig, weights: dict[str, torch.Tensor]) -> dict:
    """The matrices the probes read, in the papers' (TransformerLens) orientation:
    W_E [p, d_model] (number tokens only), W_out [d_mlp, d_model] of the last block (`W_out`
    gives any block's), W_U [d_model, p], and params: every tensor the run trains, by name (`trainable_names`: not the fixed
    zero unembedding bias, nor the biases of a run that freezes them)."""
    last = cfg.n_layers - 1
    return {
        "W_E": weights[EMBED][: cfg.p],
        "W_out": W_out(weights, last),
        "W_U": weights[UNEMBED].T,
        "params": {k: weights[k] for k in trainable_names(cfg)},
    }


def W_out(weights: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """[d_mlp, d_model]: block ``layer``'s MLP output matrix in the papers' orientation."""
    return weights[block_key(layer, "mlp.out.weight")].T


def trainable_names(cfg: RunConfig) -> list[str]:
    """The weights the optimiser updates: all but the fixed unembedding bias, every bias when
    ``freeze_biases``, and the attention's q/k/v/o biases when ``attn_bias`` is off (a model
    that has none, as Nanda et al. 2023's; they stay at their initial 0)."""
    def fixed(name: str) -> bool:
        is_bias = name.endswith("bias")
        return (name == UNEMBED_BIAS or (cfg.freeze_biases and is_bias)
                or (not cfg.attn_bias and is_bias and ".attn." in name))
    return [n for n in weight_names(cfg) if not fixed(n)]


def updated_names(cfg: RunConfig) -> list[str]:
    """The weights the training step updates: `trainable_names` less every block's attention key
    bias. That bias adds ``q · b_K`` to all of a query's scores alike, which the softmax cancels,
    so its true gradient is identically zero (`workbench.training.lookup`); updating it would only
    feed Adam rounding noise. It keeps its initial value (0 under every init rule)."""
    return [n for n in trainable_names(cfg) if not n.endswith(".attn.k.bias")]


def pattern_hook(cfg: RunConfig, layer: int | None = None) -> str:
    """The hook holding block ``layer``'s attention pattern [batch, heads, query, key] (default: the last block's)."""
    return f"blocks.{cfg.n_layers - 1 if layer is None else layer}.attn.hook_pattern"
