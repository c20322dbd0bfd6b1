"""The step-0 weights of a run, by its ``init`` rule."""

from __future__ import annotations

import torch

from workbench.config import RunConfig
from workbench.model import foreign
from workbench.model.bridge import build_bridge, convert_tl2_state_dict
from workbench.model.foreign import convert_nanda2023_state_dict


def initial_weights(cfg: RunConfig) -> dict[str, torch.Tensor]:
    """The step-0 weights of a run, by its ``init`` rule (`config.INIT_RULES`), seeded with ``model_seed``.

    * ``tl4`` (the default): TransformerLens 4.x's ``TransformerBridge.boot_native`` with
      ``seed=model_seed``. Its W_O and W_out start smaller (std 0.05 at d_model 128) than either
      source below.
    * ``nanda2023``: the initialisation of the transformer in Nanda et al. 2023's code
      (progress-measures-paper, ``transformers.py``), in the order its modules are built:
      ``W_E = randn(d_model, p+1) / sqrt(d_model)``, ``W_pos = randn(3, d_model) / sqrt(d_model)``,
      per block ``W_K, W_Q, W_V = randn(heads, d_head, d_model) / sqrt(d_model)``,
      ``W_O = randn(d_model, heads d_head) / sqrt(d_model)``, ``W_in = randn(d_mlp, d_model) /
      sqrt(d_model)``, ``b_in = 0``, ``W_out = randn(d_model, d_mlp) / sqrt(d_model)``, ``b_out = 0``,
      then ``W_U = randn(d_model, p+1) / sqrt(p+1)``. Their code does not seed torch; here
      ``model_seed`` does. That model has no attention biases (here they start at 0; the preset
      keeps them there with ``attn_bias = false``) and unembeds to p+1 tokens (the column of ``=``,
      never a label, is dropped).
    * ``zhong2023``: the initialisation of Zhong et al. 2023's code (``code/train-main.py``):
      Nanda et al.'s draws at other scales and in another order (`foreign.zhong2023_init`:
      ``W_in / sqrt(d_mlp)``, ``W_U / sqrt(p)``, the unembedding drawn before the blocks).
    * ``tl2``: TransformerLens 2.x ``HookedTransformer`` with ``init_mode="gpt2"`` (the Grokking
      demo's model): ``torch.manual_seed(seed)``, then every ``W_*`` parameter in
      ``named_parameters`` order (W_E, W_pos, then per block W_Q, W_O, W_K, W_V, W_in, W_out, then
      W_U), in TL 2.x shapes, drawn ``normal_(0, 0.8 / sqrt(d_model))``; every bias 0
      (``HookedTransformer._init_weights_gpt2``; boot_native draws the same scale but shrinks W_O
      and W_out by 1/sqrt(2 n_layers)).

    The draws use a private generator, so the global random state is untouched. Then every
    tensor is multiplied by ``init_scale`` (Omnigrok, Liu et al. 2023: the initial weight norm as
    the knob that makes grokking appear or vanish); 1 leaves the rule's weights untouched.
    """
    if cfg.init == "tl4":
        bridge = build_bridge(cfg)
        # state_dict() aliases the live parameters; clone so the bridge can be dropped.
        weights = {k: v.detach().clone() for k, v in bridge.state_dict().items()}
    else:
        if cfg.init == "nanda2023":
            weights = convert_nanda2023_state_dict(cfg, foreign.nanda2023_init(cfg))
        elif cfg.init == "zhong2023":
            weights = convert_nanda2023_state_dict(cfg, foreign.zhong2023_init(cfg))
        elif cfg.init == "tl2":
            weights = convert_tl2_state_dict(cfg, foreign.tl2_init(cfg))
        else:
            raise AssertionError(cfg.init)  # RunConfig validates init
    if cfg.init_scale != 1.0:
        weights = {k: v * cfg.init_scale for k, v in weights.items()}
    return weights
