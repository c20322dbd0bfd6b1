"""The one place that knows TransformerLens: building bridges, weight and hook names, the fast trainer.

Nothing else in the workbench imports TransformerLens or spells a state-dict or hook name (a
test enforces it): the store keeps tensors under whatever names this module gives them, the
trainer asks it for parameters, and the probes receive plain matrices (`probe_weights`).

Three views of the same weights:

* `build_bridge` — a TransformerLens 4.x ``TransformerBridge`` (``boot_native``) holding a
  checkpoint: the model that every probe, notebook and figure uses, with the usual hook names
  (``hook_embed``, ``blocks.0.attn.hook_pattern``, ``blocks.0.mlp.hook_post``, ...).
* `FastTransformer` — the training module. Its parameters *are* the bridge's state dict
  (same names, same shapes), but its forward computes only what the loss needs: the logits
  at the final (``=``) position. Keys and values are needed at every position, queries, the
  MLP and the unembedding only at the last one. It performs the bridge's own operations on
  those positions, so its activations equal the bridge's bit for bit (tested), at about half
  the cost per epoch.
* `factored_grid_activations` — the probes' view of a one-layer model over the whole (a, b)
  grid: the forward pass factored into per-token tables (equal to the bridge to float32
  rounding, tested; ~0.16x the time of the bridge's ``run_with_cache``, `make bench`).

`grid_activations` picks among them by *engine*: ``factored`` (the default: the factored
forward for one layer, `FastTransformer` for deeper models) or ``bridge`` (one
``TransformerBridge.run_with_cache``).

Architecture (Nanda et al. 2023): token + learned position embedding, ``n_layers`` blocks of
causal multi-head attention and a two-layer MLP added to the residual stream, no LayerNorm,
unembedding without bias. Attention scores are scaled by 1/sqrt(d_head). A run with an
attention rate ``attn_rate`` < 1 (Zhong et al. 2023) mixes every pattern with constant
attention (`rated_pattern`): in the trainer and the factored forward directly, in the bridge
by a permanent hook on each ``attn.hook_pattern`` (so ``run_with_cache`` records the pattern
the model used).

Example:
    >>> bridge = build_bridge(cfg, weights)          # weights: {bridge state-dict name: tensor}
    >>> logits, cache = bridge.run_with_cache(tokens)
    >>> cache["blocks.0.mlp.hook_post"].shape        # [batch, 3, d_mlp]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from workbench.config import RunConfig
from workbench.errors import UsageError

if TYPE_CHECKING:
    from workbench.store import Run

# Bridge state-dict names. Every checkpoint file uses exactly these keys.
EMBED = "embed.weight"  # [d_vocab, d_model]
POS_EMBED = "pos_embed.weight"  # [n_ctx, d_model]
UNEMBED = "unembed.weight"  # [d_vocab_out, d_model]
UNEMBED_BIAS = "unembed.bias"  # [d_vocab_out], a fixed zero buffer in the bridge
N_CTX = 3


def block_key(layer: int, name: str) -> str:
    """e.g. ``block_key(0, "attn.q.weight")`` -> ``"blocks.0.attn.q.weight"``."""
    return f"blocks.{layer}.{name}"


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
}


def activation(name: str):
    """The MLP nonlinearity ``act_fn`` names (the bridge's own function for each name)."""
    return _ACTIVATIONS[name]


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


def rated_pattern(pattern: Float[Tensor, "... q k"], rate: float) -> Float[Tensor, "... q k"]:
    """The attention pattern at attention rate ``rate`` (Zhong et al. 2023, Sec. 5):
    ``rate * pattern + (1 - rate) * J`` with J the all-ones matrix on the causal positions (their
    M' = alpha M + (1 - alpha) J, with the causal mask kept). ``pattern`` is the causal softmax
    [..., q, k]: its q rows are the last q of the k positions. At rate 0 the ``=`` row weighs
    a, b and ``=`` by 1 each (constant attention: the output is symmetric in a and b); at rate 1
    ``pattern`` itself is returned."""
    if rate == 1.0:
        return pattern
    nq, nk = pattern.shape[-2:]
    ones = torch.ones(nk, nk, dtype=pattern.dtype, device=pattern.device).tril()[nk - nq:]
    return rate * pattern + (1.0 - rate) * ones


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
        from workbench import legacy

        if cfg.init == "nanda2023":
            weights = convert_nanda2023_state_dict(cfg, legacy.nanda2023_init(cfg))
        elif cfg.init == "tl2":
            weights = convert_tl2_state_dict(cfg, legacy.tl2_init(cfg))
        else:
            raise AssertionError(cfg.init)  # RunConfig validates init
    if cfg.init_scale != 1.0:
        weights = {k: v * cfg.init_scale for k, v in weights.items()}
    return weights


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


class FastTransformer(nn.Module):
    """Training view of the bridge's weights; ``forward`` returns the final-position logits.

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
        logits [n, p], neuron_acts [n, d_mlp] (last block ``mlp.hook_post``), attention
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


def _attr(name: str) -> str:
    return name.replace(".", "__")


def load_bridge(run: Run, step: int | None = None, device: str | torch.device = "cpu"):
    """A fresh TransformerLens ``TransformerBridge`` holding ``run``'s checkpoint at ``step``
    (default: the last)."""
    if step is None:
        step = run.steps[-1]
    return build_bridge(run.config, run.weights(step), device=device)


def pattern_hook(cfg: RunConfig, layer: int | None = None) -> str:
    """The hook holding block ``layer``'s attention pattern [batch, heads, query, key] (default: the last block's)."""
    return f"blocks.{cfg.n_layers - 1 if layer is None else layer}.attn.hook_pattern"


def attention_patterns(bridge, cfg: RunConfig, tokens: Int[Tensor, "n 3"], layer: int | None = None
                       ) -> Float[Tensor, "n heads 3 3"]:
    """Block ``layer``'s (default: the last block's) full attention pattern on ``tokens``, from the bridge's own hook."""
    hook = pattern_hook(cfg, layer)
    with torch.no_grad():
        _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n == hook)
    return cache[hook]


ENGINES = ("factored", "bridge")
DEFAULT_ENGINE = "factored"


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    return engine


def grid_activations(
    cfg: RunConfig,
    weights: dict[str, torch.Tensor],
    tokens: Int[Tensor, "n 3"],
    engine: str = DEFAULT_ENGINE,
    workspace: dict | None = None,
    bridge=None,
) -> dict:
    """What the probes read on ``tokens`` (the full grid, `tasks.grid_tokens`) by one engine:
    logits [n, p], neuron_acts [n, d_mlp], attention [n, n_heads, 3], all at ``=`` (last block),
    and ``earlier``: a dict of neuron_acts and attention for each block before the last.

    ``factored``: `factored_grid_activations` for one layer (``workspace`` reuses its buffers),
    `FastTransformer.activations` for deeper models; ``bridge``: `bridge_activations` on
    ``bridge`` (loaded with ``weights``) or on a freshly built one.
    """
    check_engine(engine)
    if engine == "factored" and cfg.n_layers == 1:
        return factored_grid_activations(cfg, weights, workspace)
    if engine == "factored":
        return FastTransformer(cfg, weights).activations(tokens)
    if bridge is None:
        bridge = build_bridge(cfg, weights)
    else:
        bridge.load_state_dict(weights, strict=True)
    return bridge_activations(bridge, cfg, tokens)


def bridge_activations(bridge, cfg: RunConfig, tokens: Int[Tensor, "n 3"]) -> dict:
    """One ``run_with_cache`` over ``tokens`` [n, 3]; what the probes read, at the ``=`` position.
    (`FastTransformer.activations` returns the same tensors in ~0.4x the time, `make bench`.)

    Returns logits [n, p], neuron_acts [n, d_mlp] (last block ``mlp.hook_post``), attention
    [n, n_heads, 3] (last block ``attn.hook_pattern`` row of ``=``), and ``earlier``: the same two
    for each block before the last, in order (as `FastTransformer.activations`).
    """
    acts = [f"blocks.{layer}.mlp.hook_post" for layer in range(cfg.n_layers)]
    patterns = [f"blocks.{layer}.attn.hook_pattern" for layer in range(cfg.n_layers)]
    wanted = set(acts + patterns)
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in wanted)
    # clone the "=" slices so the full [n, 3, ...] cache tensors can be freed at once
    blocks = [{"neuron_acts": cache[a][:, -1].clone(), "attention": cache[h][:, :, -1, :].clone()}
              for a, h in zip(acts, patterns, strict=True)]
    out = {"logits": logits[:, -1].clone(), **blocks[-1], "earlier": blocks[:-1]}
    del logits, cache
    return out


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

    Returns logits [p^2, p], neuron_acts [p^2, d_mlp], attention [p^2, n_heads, 3], rows in
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
    return {"logits": logits, "neuron_acts": acts, "attention": rated_pattern(pattern[..., None, :], rate).reshape(p * p, H, 3),
            "earlier": []}
