"""The model: one architecture (Nanda et al. 2023) in three views of the same weights, and the
foreign formats published runs were saved in.

* `build_bridge` / `load_bridge` — a TransformerLens 4.x ``TransformerBridge`` (``boot_native``)
  holding a checkpoint: the model every notebook and figure uses, with the usual hook names.
  ``bridge`` is the one module in the workbench that imports TransformerLens (a test enforces it).
* `FastTransformer` — the plain forward of one run. Its parameters *are* the bridge's state dict
  (same names, same shapes); its forward computes only the logits at ``=``, with the bridge's own
  operations on those positions (equal to the bridge bit for bit, tested). The training step's
  forwards (`workbench.training.lookup`, `workbench.training.stacked`) are tested against it.
* `factored_grid_activations` — a one-layer model's forward over the whole (a, b) grid, factored
  into per-token tables (equal to the bridge to float32 rounding, tested; its speed is in
  ``docs/results/bench.md``, measured by ``make bench``).

Architecture: token + learned position embedding, ``n_layers`` blocks of causal multi-head
attention and a two-layer MLP added to the residual stream, no LayerNorm, unembedding without
bias, attention scores scaled by 1/sqrt(d_head). An attention rate ``attn_rate`` < 1 (Zhong et
al. 2023) mixes every pattern with constant attention (`rated_pattern`).

Modules: ``names`` (state-dict and hook names, shapes), ``architecture`` (context length,
activations, the attention rate), ``bridge`` (TransformerLens), ``transformer`` (the plain
forward), ``factored`` (the factored grid forward), ``initialisation`` (step-0 weights by `init`
rule), ``foreign`` (Nanda et al. 2023's and TransformerLens 2.x's formats: inits, reference
forwards, conversions).
"""

from __future__ import annotations

from workbench.model.architecture import N_CTX, activation, rated_pattern
from workbench.model.bridge import (
    bridge_activations,
    bridge_attention,
    build_bridge,
    convert_tl2_state_dict,
    load_bridge,
)
from workbench.model.factored import factored_grid_activations
from workbench.model.foreign import (
    convert_nanda2023_state_dict,
    model_sizes,
    nanda2023_init,
    nanda2023_logits,
    tl2_init,
    tl2_logits,
)
from workbench.model.initialisation import initial_weights
from workbench.model.names import (
    EMBED,
    POS_EMBED,
    UNEMBED,
    UNEMBED_BIAS,
    W_out,
    block_key,
    initial_shapes,
    misfit_weights,
    probe_weights,
    trainable_names,
    updated_names,
    weight_names,
)
from workbench.model.transformer import FastTransformer, trainable_module

__all__ = ["EMBED", "FastTransformer", "N_CTX", "POS_EMBED", "UNEMBED", "UNEMBED_BIAS", "W_out", "activation", "bridge_attention", "block_key", "bridge_activations", "build_bridge", "convert_nanda2023_state_dict", "convert_tl2_state_dict", "factored_grid_activations", "initial_shapes", "initial_weights", "load_bridge", "misfit_weights", "model_sizes", "nanda2023_init", "nanda2023_logits", "probe_weights", "rated_pattern", "tl2_init", "tl2_logits", "trainable_module", "trainable_names", "updated_names", "weight_names"]
