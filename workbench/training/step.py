"""The training step both trainers take: M members' forward pass, float64 loss, gradient and AdamW update.

A solo run is a group of one (`workbench.training.solo` calls `workbench.training.batched`), so
there is one step. Its parts:

* the forward pass: `workbench.training.lookup.lookup_forward` for a one-layer model (attention as
  lookups in (2p + 1)-row tables, the MLP and unembedding per input), `stacked_forward` for deeper
  models (the plain forward, batched over members);
* the loss: each member's mean cross-entropy (or StableMax, `variants.training_loss`) over its own
  training inputs, in float64: late in training the loss reaches 1e-7, where float32's log-softmax
  rounds the correct class's probability to 1 and its gradient to 0 ("softmax collapse", Prieto et
  al. 2025). Only the [M, n, p] logits go to float64; everything before them is float32;
* the gradient of the members' summed losses with respect to the updated weights
  (`workbench.model.updated_names`: every trainable weight but the attention key biases, whose
  gradient is identically zero), gathered into one [M, P] tensor (`flat.FlatWeights`);
* the training variants' gradient transforms (Grokfast, ⊥Grad), per weight, then AdamW over the
  whole buffer (`flat.FlatAdamW`).

Example:
    >>> from workbench.config import load_config
    >>> from workbench.model import initial_weights
    >>> cfg = load_config("smoke")
    >>> step = GroupStep(cfg, [cfg], [initial_weights(cfg)], [{}], [{}], torch.device("cpu"))
    >>> batch = Batch([torch.tensor([[1, 2, 23], [3, 4, 23]])], [torch.tensor([3, 7])], 2)
    >>> step.logits(batch).shape
    torch.Size([1, 2, 23])
"""

from __future__ import annotations

import torch
from torch import Tensor

from workbench.config import RunConfig
from workbench.model import trainable_names, updated_names, weight_names
from workbench.training.flat import FlatAdamW, FlatWeights
from workbench.training.lookup import lookup_forward
from workbench.training.schedule import lr_at
from workbench.training.stacked import stacked_forward
from workbench.training.variants import GradFilter, orthogonal_grad, training_loss


def _pad(parts: list[Tensor], fill: Tensor | int, n_max: int) -> Tensor:
    """Stack [n_m, ...] tensors into [M, n_max, ...], padding with ``fill`` rows."""
    out = []
    for t in parts:
        extra = n_max - len(t)
        if extra:
            pad = fill.expand(extra, *t.shape[1:]) if isinstance(fill, Tensor) else torch.full(
                (extra, *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
            t = torch.cat([t, pad.to(t.device)])
        out.append(t)
    return torch.stack(out)


class Batch:
    """A padded set per member: tokens [M, n_max, 3], labels [M, n_max], valid [M, n_max] bool.
    ``n_max`` is the group's, not the sub-group's: the matrix shapes, and so the rounding of every
    member, do not depend on which members train together (a resumed sub-group stays bit-identical)."""

    def __init__(self, tokens: list[Tensor], labels: list[Tensor], n_max: int):
        self.tokens = _pad(tokens, tokens[0][:1], n_max)  # pad with a real input: no special token needed
        self.labels = _pad(labels, 0, n_max)
        self.valid = _pad([torch.ones(len(t), dtype=torch.bool, device=t.device) for t in tokens], 0, n_max).bool()
        self._split()

    def _split(self) -> None:
        self.a, self.b = self.tokens[..., 0].contiguous(), self.tokens[..., 1].contiguous()
        self.count = self.valid.sum(1)
        self.weight = self.valid.double() / self.count.unsqueeze(1)  # each input's share of its member's mean

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index``."""
        self.tokens, self.labels, self.valid = self.tokens[index], self.labels[index], self.valid[index]
        self._split()

    def losses(self, logits: Tensor, loss: str = "cross_entropy") -> Tensor:
        """Each member's mean float64 loss (`variants.training_loss`) over its own inputs: [M]."""
        if loss == "cross_entropy":
            return MeanCrossEntropy.apply(logits, self.labels, self.weight)
        per_input = training_loss(loss, logits, self.labels, reduction="none")  # [M, n]
        # where, not a product: a padding row's inf must not turn the member's loss into NaN
        return torch.where(self.valid, per_input, 0.0).sum(1) / self.count

    def accuracies(self, logits: Tensor) -> Tensor:
        hits = (logits.argmax(-1) == self.labels) & self.valid
        return hits.double().sum(1) / self.count


class MeanCrossEntropy(torch.autograd.Function):
    """Each member's weighted cross-entropy from float32 logits, in float64, with its gradient
    written out: logits [M, n, p], labels [M, n], weight [M, n] (1/count on a member's own inputs,
    0 on padding) -> [M], ``sum_i weight_i (logsumexp(x_i) - x_i[y_i])``;

        d loss_m / d x_i = weight_i (softmax(x_i) - onehot(y_i))

    taken in float64 and rounded to float32 once. (Late in training the correct class's
    probability is 1 - 1e-7: in float32 it rounds to 1 and the gradient of the correct logit to 0.)
    Equal to autograd through ``F.cross_entropy`` of the float64 logits (tested), without its
    intermediate float64 tensors in the backward pass."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, weight: Tensor) -> Tensor:
        logp = logits.double().log_softmax(-1)
        nll = -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # [M, n]
        ctx.save_for_backward(logp, labels, weight)
        # where, not a product: a padding row's inf must not turn the member's loss into NaN
        return torch.where(weight > 0, nll * weight, 0.0).sum(1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        logp, labels, weight = ctx.saved_tensors
        g = logp.softmax(-1)  # = exp(logp), by a row-wise kernel: a member's bits do not depend on the group's size
        g.scatter_add_(-1, labels.unsqueeze(-1), torch.full_like(labels, -1.0, dtype=g.dtype).unsqueeze(-1))
        g.mul_((weight * grad.unsqueeze(1)).unsqueeze(-1))
        return g.float(), None, None


class GroupStep:
    """The members' weights, optimiser and filter state, and the step that updates them.

    ``cfg``: the group's shared config (shapes, variants); ``cfgs``: each member's (lr schedule,
    betas, weight decay); ``weights``, ``adam``, ``filters``: each member's resume state parts."""

    def __init__(self, cfg: RunConfig, cfgs: list[RunConfig], weights: list[dict[str, Tensor]],
                 adam: list[dict[str, dict[str, Tensor]]], filters: list[dict[str, Tensor]], device: torch.device):
        self.cfg, self.cfgs = cfg, list(cfgs)
        names = updated_names(cfg)
        self.flat = FlatWeights(names, weights, device)
        self.fixed = {n: torch.stack([w[n] for w in weights]).to(device) for n in weight_names(cfg) if n not in names}
        self.optimizer = FlatAdamW(self.flat, [c.beta1 for c in cfgs], [c.beta2 for c in cfgs],
                                   [c.weight_decay for c in cfgs], adam)
        self.grad_filter = GradFilter(cfg.grokfast, cfg.grokfast_alpha, cfg.grokfast_lamb, cfg.grokfast_window,
                                      _stack_filter_states(cfg, filters, device))
        self.lookup = cfg.n_layers == 1

    def weights(self) -> dict[str, Tensor]:
        """Every weight by name, [M, ...] (the updated ones are views of the flat buffer)."""
        return {**self.flat.views, **self.fixed}

    def logits(self, batch: Batch) -> Tensor:
        """The members' logits at ``=`` on their own inputs: [M, n, p]."""
        w = self.weights()
        if self.lookup:
            return lookup_forward(self.cfg, w, batch.a, batch.b)
        return stacked_forward(self.cfg, w, batch.tokens)

    def update(self, losses: Tensor, step: int) -> None:
        """Backpropagate the members' summed ``losses`` [M] and take one AdamW step with each
        member's lr at ``step`` (each member's weights get exactly the gradient of its own loss)."""
        grad = self.flat.grad(losses.sum())
        if self.cfg.grokfast != "none" or self.cfg.optimizer != "adamw":
            self._transform(grad)
        self.optimizer.step(grad, [lr_at(c, step) for c in self.cfgs])

    def _transform(self, grad: Tensor) -> None:
        """Grokfast's filter, then ⊥Grad, per weight and member, written back into ``grad``."""
        flat = self.flat
        filtered = self.grad_filter({n: flat.columns(grad, n) for n in flat.names})
        for n in flat.names:
            g = filtered[n]
            if self.cfg.optimizer == "orthograd":
                g = orthogonal_grad(flat.views[n].detach(), g, batch_dims=1)
            flat.columns(grad, n).copy_(g)

    def weight_norms(self) -> list[float]:
        """Each member's sum of squared trainable weights (`trainable_names`), in float64, weight by weight."""
        w = self.weights()
        names = trainable_names(self.cfg)
        with torch.no_grad():
            return [sum(float(w[n][j].double().pow(2).sum()) for n in names) for j in range(self.flat.members)]

    def member_weights(self, j: int) -> dict[str, Tensor]:
        """Member j's whole state dict, in the checkpoint's key order (detached CPU copies)."""
        mine = self.flat.member(j)
        return {n: mine[n] if n in mine else self.fixed[n][j].detach().cpu().clone() for n in weight_names(self.cfg)}

    def member_adam(self, j: int) -> dict[str, dict[str, Tensor]]:
        return self.optimizer.member_state(j)

    def filter_state(self) -> dict[str, Tensor]:
        """The stacked Grokfast state (one copy; `member_filter_state` takes a member's part)."""
        return self.grad_filter.state_dict()

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (after others failed)."""
        self.flat.keep(index)
        self.optimizer.keep(index)
        self.fixed = {n: t[index] for n, t in self.fixed.items()}
        self.grad_filter.select(index)
        self.cfgs = [self.cfgs[i] for i in index.tolist()]


def _stack_filter_states(cfg: RunConfig, states: list[dict[str, Tensor]], device: torch.device) -> dict:
    """Members' Grokfast states stacked on a member axis (ema: first axis; ma: second, after the
    window's). Members of one group share their step, so their states have the same keys and sizes."""
    if not states[0]:
        return {}
    axis = 1 if cfg.grokfast == "ma" else 0
    return {k: torch.stack([s[k] for s in states], dim=axis).to(device) for k in states[0]}


def member_filter_state(cfg: RunConfig, state: dict[str, Tensor], j: int) -> dict[str, Tensor]:
    """Member j's part of the stacked Grokfast state (`GradFilter.state_dict`), in a solo run's shape."""
    return {k: (v[:, j] if cfg.grokfast == "ma" else v[j]).clone() for k, v in state.items()}
