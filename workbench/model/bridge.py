"""The TransformerLens seam: the one module that imports TransformerLens (building bridges, running them, its checkpoint conversion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.config import RunConfig
from workbench.model.architecture import N_CTX, rated_pattern
from workbench.model.names import UNEMBED_BIAS, checked_weights, pattern_hook

if TYPE_CHECKING:
    from workbench.store import Run


def _tl():
    """Import TransformerLens lazily: it costs seconds, and the CLI's error paths need none of it."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.sources import native  # noqa: F401 - attaches boot_native

    return TransformerBridge, TransformerBridgeConfig


def bridge_config(cfg: RunConfig):
    """The ``TransformerBridgeConfig`` of a run: d_vocab p+1 (``=`` is token p), d_vocab_out p."""
    _, TransformerBridgeConfig = _tl()
    return TransformerBridgeConfig(
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_head=cfg.d_head,
        d_mlp=cfg.d_mlp,
        n_ctx=N_CTX,
        d_vocab=cfg.p + 1,
        d_vocab_out=cfg.p,
        act_fn=cfg.act_fn,
        normalization_type=None,
        positional_embedding_type="standard",
        seed=cfg.model_seed,
    )


def build_bridge(cfg: RunConfig, weights: dict[str, torch.Tensor] | None = None, device: str | torch.device = "cpu"):
    """A fresh ``TransformerBridge``; with ``weights`` (bridge state-dict names) loaded strictly.

    Without weights it holds TransformerLens's own seeded initialisation (``model_seed``).
    """
    TransformerBridge, _ = _tl()
    bridge = TransformerBridge.boot_native(bridge_config(cfg))
    if weights is not None:
        bridge.load_state_dict(weights, strict=True)
    if cfg.attn_rate != 1.0:  # the attention rate: a permanent hook, so run_with_cache / run_with_hooks see it too
        for layer in range(cfg.n_layers):
            bridge.blocks[layer].attn.hook_pattern.add_hook(
                lambda pattern, hook: rated_pattern(pattern, cfg.attn_rate), is_permanent=True)
    bridge.eval()
    if torch.device(device).type != "cpu":  # .to() prints a line even when nothing moves
        bridge = bridge.to(device)
    return bridge


def convert_tl2_state_dict(cfg: RunConfig, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A TransformerLens 2.x ``HookedTransformer`` state dict (``embed.W_E``, ``blocks.0.attn.W_Q``
    [heads, d_model, d_head], ...) under this module's bridge names, by TransformerLens 4.x's own
    bit-exact ``convert_tl_checkpoint`` (W_Q/W_K/W_V [h, d, e] -> [(h e), d]; W_O [h, e, d] ->
    [d, (h e)]; W_in, W_out, W_U transposed; the ``mask``/``IGNORE`` buffers dropped). A missing
    unembedding bias (saved by some scripts without it) is the zero it always was.
    Raises ``ValueError`` naming a key it cannot place or a shape that does not fit ``cfg``."""
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    converted = convert_tl_checkpoint(dict(state_dict), bridge_config(cfg))
    converted.setdefault(UNEMBED_BIAS, torch.zeros(cfg.p))
    return checked_weights(cfg, converted)


def _attr(name: str) -> str:
    return name.replace(".", "__")


def load_bridge(run: Run, step: int | None = None, device: str | torch.device = "cpu"):
    """A fresh TransformerLens ``TransformerBridge`` holding ``run``'s checkpoint at ``step``
    (default: the last)."""
    if step is None:
        step = run.steps[-1]
    return build_bridge(run.config, run.weights(step), device=device)


def bridge_attention(bridge, cfg: RunConfig, tokens: Int[Tensor, "n 3"], layer: int | None = None
                       ) -> Float[Tensor, "n heads 3 3"]:
    """Block ``layer``'s (default: the last block's) full attention pattern on ``tokens``, from the bridge's own hook."""
    hook = pattern_hook(cfg, layer)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n == hook)
    return cache[hook]


def bridge_activations(bridge, cfg: RunConfig, tokens: Int[Tensor, "n 3"]) -> dict:
    """One ``run_with_cache`` over ``tokens`` [n, 3]; what the probes read, at the ``=`` position.
    (`FastTransformer.activations` returns the same tensors in ~0.4x the time, `make bench`.)

    Returns logits [n, p], neuron_acts [n, d_mlp] (last block ``mlp.hook_post``), resid_final
    [n, d_model] (last block ``hook_resid_post``), attention
    [n, n_heads, 3] (last block ``attn.hook_pattern`` row of ``=``), and ``earlier``: the same two
    for each block before the last, in order (as `FastTransformer.activations`).
    """
    acts = [f"blocks.{layer}.mlp.hook_post" for layer in range(cfg.n_layers)]
    patterns = [f"blocks.{layer}.attn.hook_pattern" for layer in range(cfg.n_layers)]
    final = f"blocks.{cfg.n_layers - 1}.hook_resid_post"
    wanted = {*acts, *patterns, final}
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in wanted)
    # clone the "=" slices so the full [n, 3, ...] cache tensors can be freed at once
    blocks = [{"neuron_acts": cache[a][:, -1].clone(), "attention": cache[h][:, :, -1, :].clone()}
              for a, h in zip(acts, patterns, strict=True)]
    out = {"logits": logits[:, -1].clone(), **blocks[-1], "resid_final": cache[final][:, -1].clone(),
           "earlier": blocks[:-1]}
    del logits, cache
    return out
