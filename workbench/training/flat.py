"""The members' trained weights in one buffer, and AdamW over it in a handful of whole-buffer operations.

A group of M members (one, for a solo run) keeps every weight the optimiser updates in one
float32 buffer ``data`` [M, P], member-major: each weight is a view [M, *shape] of its columns,
so the forward pass reads it in place and AdamW touches the whole group at once. AdamW
(Loshchilov & Hutter 2019, as `torch.optim.AdamW` computes it) with each member's own lr, betas
and weight decay as [M, 1] columns, t the group's update count:

    w   *= 1 - lr wd                                       (decoupled weight decay)
    m1   = lerp(m1, g, 1 - beta1)                          (= beta1 m1 + (1 - beta1) g)
    m2   = beta2 m2 + (1 - beta2) g^2
    w   -= lr / (1 - beta1^t) * m1 / (sqrt(m2) / sqrt(1 - beta2^t) + eps)

Seven operations over [M, P] per step, where a per-tensor optimiser runs them once per weight
tensor (~100 small operations for a one-layer model). The per-member scalars are computed in
float64 and rounded to float32 once, as torch rounds its Python-float scalars; the update equals
`torch.optim.AdamW`'s to float32 rounding (tested).

Example:
    >>> weights = [{"w": torch.ones(2, 3)}, {"w": torch.zeros(2, 3)}]   # two members
    >>> flat = FlatWeights(["w"], weights, torch.device("cpu"))
    >>> flat.data.shape, flat.views["w"].shape
    (torch.Size([2, 6]), torch.Size([2, 2, 3]))
"""

from __future__ import annotations

import torch
from torch import Tensor

ADAM_EPS = 1e-8  # torch.optim.AdamW's default


class FlatWeights:
    """The updated weights ``names`` of M members in one buffer: ``data`` [M, P]; ``views`` maps
    each name to its [M, *shape] view (a leaf that requires grad, so autograd differentiates with
    respect to it); `grad` gathers a loss's gradient into one [M, P] tensor."""

    def __init__(self, names: list[str], members: list[dict[str, Tensor]], device: torch.device):
        self.names = list(names)
        self.shapes = {n: tuple(members[0][n].shape) for n in self.names}
        sizes = [members[0][n].numel() for n in self.names]
        self.offsets = dict(zip(self.names, [sum(sizes[:i]) for i in range(len(sizes))], strict=True))
        self.sizes = dict(zip(self.names, sizes, strict=True))
        self.data = torch.stack([torch.cat([m[n].reshape(-1).float() for n in self.names]) for m in members]).to(device)
        self._make_views()

    def _make_views(self) -> None:
        self.views = {n: self.columns(self.data, n).requires_grad_(True) for n in self.names}

    def columns(self, flat: Tensor, name: str) -> Tensor:
        """Weight ``name``'s [M, *shape] view of a [M, P] tensor laid out as ``data``."""
        o = self.offsets[name]
        return flat[:, o:o + self.sizes[name]].view(flat.shape[0], *self.shapes[name])

    @property
    def members(self) -> int:
        return self.data.shape[0]

    def grad(self, loss: Tensor) -> Tensor:
        """d loss / d data [M, P] (a weight the loss does not read gets zeros)."""
        views = [self.views[n] for n in self.names]
        grads = torch.autograd.grad(loss, views, allow_unused=True)
        M = self.members
        return torch.cat([(g if g is not None else torch.zeros_like(v)).reshape(M, -1) for g, v in zip(grads, views, strict=True)],
                         dim=1)

    def member(self, j: int) -> dict[str, Tensor]:
        """Member j's weights by name: detached CPU copies (what a checkpoint holds)."""
        row = self.data[j].detach().cpu()
        return {n: row[self.offsets[n]:self.offsets[n] + self.sizes[n]].view(self.shapes[n]).clone() for n in self.names}

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (the others failed)."""
        self.data = self.data[index].contiguous()
        self._make_views()


class FlatAdamW:
    """AdamW over a `FlatWeights` (the update in the module docstring). ``lr``: a function of the
    step giving each member's learning rate; ``betas``/``weight_decay``: each member's. ``t`` is
    the update count the members share; ``moments``: each member's AdamW state in
    `torch.optim.AdamW`'s format by weight name (empty before the first update)."""

    def __init__(self, flat: FlatWeights, beta1: list[float], beta2: list[float], weight_decay: list[float],
                 moments: list[dict[str, dict[str, Tensor]]]):
        self.flat = flat
        device = flat.data.device
        column = lambda values: torch.tensor(values, dtype=torch.float64, device=device).view(-1, 1)  # noqa: E731
        self.beta1, self.beta2, self.wd = column(beta1), column(beta2), column(weight_decay)
        steps = {float(m[n]["step"]) for m in moments for n in flat.names if n in m}
        if len(steps) > 1:
            raise ValueError(f"members' AdamW step counts differ ({sorted(steps)}): they cannot share a group")
        self.t = int(steps.pop()) if steps else 0
        self.exp_avg = torch.zeros_like(flat.data)
        self.exp_avg_sq = torch.zeros_like(flat.data)
        if self.t:
            for j, m in enumerate(moments):
                missing = [n for n in flat.names if n not in m]
                if missing:
                    raise ValueError(f"the resume state holds no AdamW moments for {', '.join(missing)}")
                self.exp_avg[j] = torch.cat([m[n]["exp_avg"].reshape(-1) for n in flat.names]).to(device)
                self.exp_avg_sq[j] = torch.cat([m[n]["exp_avg_sq"].reshape(-1) for n in flat.names]).to(device)

    def member_state(self, j: int) -> dict[str, dict[str, Tensor]]:
        """Member j's moments in `torch.optim.AdamW`'s format (what `store.ResumeState` holds)."""
        if not self.t:
            return {}
        flat = self.flat
        m1, m2 = self.exp_avg[j].detach().cpu(), self.exp_avg_sq[j].detach().cpu()
        part = lambda row, n: row[flat.offsets[n]:flat.offsets[n] + flat.sizes[n]].view(flat.shapes[n]).clone()  # noqa: E731
        return {n: {"step": torch.tensor(float(self.t)), "exp_avg": part(m1, n), "exp_avg_sq": part(m2, n)}
                for n in flat.names}

    def keep(self, index: Tensor) -> None:
        """Keep only the members at ``index`` (call `FlatWeights.keep` with the same index)."""
        self.beta1, self.beta2, self.wd = self.beta1[index], self.beta2[index], self.wd[index]
        self.exp_avg, self.exp_avg_sq = self.exp_avg[index].contiguous(), self.exp_avg_sq[index].contiguous()

    @torch.no_grad()
    def step(self, grad: Tensor, lr: list[float]) -> None:
        """One update with gradient ``grad`` [M, P] and each member's learning rate ``lr``."""
        self.t += 1
        t = self.t
        lr64 = torch.tensor(lr, dtype=torch.float64, device=grad.device).view(-1, 1)
        decay = (1 - lr64 * self.wd).float()
        step_size = (lr64 / (1 - self.beta1 ** t)).float()
        bc2_sqrt = torch.sqrt(1 - self.beta2 ** t).float()
        w = self.flat.data
        w.mul_(decay)
        self.exp_avg.lerp_(grad, (1 - self.beta1).float().expand_as(grad))
        self.exp_avg_sq.mul_(self.beta2.float()).addcmul_(grad, grad * (1 - self.beta2).float())
        denom = (self.exp_avg_sq.sqrt() / bc2_sqrt).add_(ADAM_EPS)
        w.sub_(step_size * (self.exp_avg / denom))
