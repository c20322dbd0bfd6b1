"""The plain forward of one run: the bridge's parameters, a forward that computes only the ``=`` position's logits.

The probes' engine for deeper models and the llc probe's module; the training step's one-layer forward
(`workbench.training.lookup`) and its stacked forward of deeper models (`workbench.training.stacked`)
are tested against it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from workbench.config import RunConfig
from workbench.model.architecture import _ACTIVATIONS, N_CTX, rated_pattern
from workbench.model.bridge import _attr
from workbench.model.names import EMBED, POS_EMBED, UNEMBED, UNEMBED_BIAS, block_key, trainable_names, weight_names


class FastTransformer(nn.Module):
    """A module view of the bridge's weights; ``forward`` returns the final-position logits.

    Parameters are stored under the bridge state-dict names (dots replaced by ``__`` since
    ``nn.Module`` forbids dots); `bridge_weights` converts back. The unembedding bias is a
    buffer, as in the bridge, so it stays zero.
    """

    def __init__(self, cfg: RunConfig, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.cfg = cfg
        self.act = _ACTIVATIONS[cfg.act_fn]
        for name in weight_names(cfg):
            tensor = weights[name].detach().clone()
            if name == UNEMBED_BIAS:
                self.register_buffer(_attr(name), tensor)
            else:
                self.register_parameter(_attr(name), nn.Parameter(tensor))
        causal = torch.triu(torch.ones(N_CTX, N_CTX, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def w(self, name: str) -> torch.Tensor:
        return getattr(self, _attr(name))

    def bridge_weights(self) -> dict[str, torch.Tensor]:
        """Detached copies under bridge state-dict names, ready for `build_bridge` or saving."""
        return {name: self.w(name).detach().clone() for name in weight_names(self.cfg)}

    def named_weights(self) -> dict[str, nn.Parameter]:
        """Trainable parameters under bridge state-dict names."""
        return {n: self.w(n) for n in weight_names(self.cfg) if n != UNEMBED_BIAS}

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        # F.linear, as nn.Linear in the bridge: same kernel, so the same rounding
        return F.linear(x, self.w(name + ".weight"), self.w(name + ".bias"))

    def _attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, last_only: bool,
                record: dict | None = None) -> torch.Tensor:
        """q: [batch, nq, d_attn], k, v: [batch, 3, d_attn] -> attention output [batch, nq, d_model]."""
        H, dh = self.cfg.n_heads, self.cfg.d_head
        batch, nq = q.shape[0], q.shape[1]
        q = q.view(batch, nq, H, dh).transpose(1, 2)
        k = k.view(batch, N_CTX, H, dh).transpose(1, 2)
        v = v.view(batch, N_CTX, H, dh).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(dh)  # [batch, H, nq, 3]
        if not last_only:  # the last query sees every position: no mask needed there
            scores = scores.masked_fill(self.causal_mask, float("-inf"))
        pattern = rated_pattern(scores.softmax(dim=-1), self.cfg.attn_rate)
        if record is not None:
            # contiguous: an earlier block's row of "=" is copied out (not a view holding all 3 rows)
            record["attention"] = pattern[:, :, -1, :].contiguous()
        z = (pattern @ v).transpose(1, 2).reshape(batch, nq, H * dh)
        return self._linear(z, block_key(layer, "attn.o"))

    def _mlp(self, layer: int, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        hidden = self.act(self._linear(x, block_key(layer, "mlp.in")))
        if record is not None:
            record["neuron_acts"] = hidden[:, -1].contiguous()  # as above: a copy for earlier blocks
        return self._linear(hidden, block_key(layer, "mlp.out"))

    def activations(self, tokens: Int[Tensor, "n 3"]) -> dict:
        """What the probes read, at the ``=`` position, computed with the same operations as the
        bridge (equal to its ``run_with_cache`` values; tested) but only where they are needed:
        logits [n, p], neuron_acts [n, d_mlp] (last block ``mlp.hook_post``), resid_final [n,
        d_model] (last block ``hook_resid_post``: what the unembedding reads), attention
        [n, n_heads, 3] (last block ``attn.hook_pattern`` row of ``=``), and ``earlier``: for each
        block before the last, in order, a dict of its own neuron_acts and attention."""
        record: dict = {}
        with torch.no_grad():
            record["logits"] = self.forward(tokens, record)
        record.setdefault("earlier", [])
        return record

    def forward(self, tokens: Int[Tensor, "batch 3"], record: dict | None = None) -> Float[Tensor, "batch p"]:
        """tokens: [batch, 3] -> logits at the ``=`` position: [batch, p]."""
        return self.from_embeddings(self.embed(tokens), record)

    def embed(self, tokens: Int[Tensor, "batch 3"]) -> Float[Tensor, "batch 3 d_model"]:
        """The token embeddings W_E[t] at each position (the bridge's ``hook_embed``; no position embedding)."""
        # F.embedding, not W[tokens]: its CPU backward sums each row in a fixed order (deterministic)
        return F.embedding(tokens, self.w(EMBED))

    def from_embeddings(self, embedded: Float[Tensor, "batch 3 d_model"], record: dict | None = None
                        ) -> Float[Tensor, "batch p"]:
        """The rest of the forward pass from the token embeddings (`embed`): logits at ``=`` [batch, p].
        Differentiable in ``embedded`` (what gradient symmetricity, `probes.clock_pizza`, reads)."""
        resid = embedded + self.w(POS_EMBED)  # [batch, 3, d_model]
        n_layers = self.cfg.n_layers
        for layer in range(n_layers):
            last = layer == n_layers - 1
            if last:
                q = self._linear(resid[:, -1:], block_key(layer, "attn.q"))
            else:
                q = self._linear(resid, block_key(layer, "attn.q"))
            k = self._linear(resid, block_key(layer, "attn.k"))
            v = self._linear(resid, block_key(layer, "attn.v"))
            if last:
                resid = resid[:, -1:]
            rec = record
            if record is not None and not last:  # earlier blocks: their own record, at "=" as the last's
                rec = {}
                record.setdefault("earlier", []).append(rec)
            resid = resid + self._attend(layer, q, k, v, last_only=last, record=rec)
            resid = resid + self._mlp(layer, resid, record=rec)
        if record is not None:
            record["resid_final"] = resid[:, -1]
        return F.linear(resid[:, -1], self.w(UNEMBED), self.w(UNEMBED_BIAS))


def trainable_module(cfg: RunConfig, weights: dict[str, torch.Tensor]) -> FastTransformer:
    """A `FastTransformer` holding a copy of ``weights`` in which exactly the weights the run's
    optimiser updates (`trainable_names`, honouring ``freeze_biases`` and ``attn_bias``) have
    ``requires_grad``."""
    module = FastTransformer(cfg, weights)
    names = set(trainable_names(cfg))
    for name, param in module.named_weights().items():
        param.requires_grad_(name in names)
    return module
