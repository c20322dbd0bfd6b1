"""Training variants that claim to change grokking: Grokfast's gradient filters, StableMax
cross-entropy and the ⊥Grad optimizer. Config fields select them (``grokfast``, ``loss``,
``optimizer``); both trainers (`workbench.training.solo`, `workbench.training.batched`) call these functions, on
one run's tensors or on a group's stacked ones (a leading member axis, ``batch_dims=1``).

Grokfast (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients"): the
gradient g_t is replaced by g_t + λ · (its slow part) before the optimiser sees it:

    ema   h_t = α h_{t-1} + (1 - α) g_t   (h_1 = g_1),   g_t <- g_t + λ h_t     paper: α 0.98, λ 2
    ma    h_t = mean(g_{t-w+1}, ..., g_t),               g_t <- g_t + λ h_t     paper: w 100, λ 5
          (applied only once w gradients are held: the paper's warm-up)

StableMax (Prieto et al. 2025, "Grokking at the edge of numerical stability", Sec. 4): softmax's
exp replaced by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, so that a logit that grows
without bound no longer drives the loss of a correct answer to exactly 0 in floating point
("softmax collapse"):

    StableMax(x)_i = s(x_i) / sum_j s(x_j),    loss = -log StableMax(x)_y

⊥Grad (same paper, Sec. 5): the gradient's component along the weights w (the direction that
only scales the logits, "naive loss minimisation") is removed per weight tensor, and the rest
rescaled to the gradient's norm, before AdamW:

    g_perp = g - (w·g / w·w) w,    g <- g_perp · |g| / |g_perp|

Metrics stay the softmax cross-entropy whatever the training loss, so runs of different variants
are compared on one scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.config import GROKFAST, LOSSES, OPTIMIZERS  # noqa: F401 - the valid names, with the fields

EPS = 1e-30


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): positive, monotone, linear growth."""
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp(max=0)))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log StableMax(logits)_label over the last axis (computed in float64): logits [..., p],
    labels [...] -> mean (or [...] with reduction "none")."""
    s = stablemax_s(logits.double())
    logp = s.gather(-1, labels.unsqueeze(-1)).squeeze(-1).log() - s.sum(-1).log()
    return -logp.mean() if reduction == "mean" else -logp


def training_loss(loss: str, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The objective the optimiser minimises (float64): softmax or StableMax cross-entropy."""
    if loss == "stablemax":
        return stablemax_cross_entropy(logits, labels, reduction)
    ce = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction=reduction)
    return ce.view(labels.shape) if reduction == "none" else ce


def orthogonal_grad(w: torch.Tensor, g: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """⊥Grad: g without its component along w, rescaled to |g|; per tensor, or per member when
    the first ``batch_dims`` axes index members. (w·result = 0 up to rounding.)"""
    dims = tuple(range(batch_dims, g.dim()))
    shape = g.shape[:batch_dims] + (1,) * (g.dim() - batch_dims)
    wf, gf = w.double(), g.double()
    proj = (wf * gf).sum(dims) / ((wf * wf).sum(dims) + EPS)
    perp = gf - proj.view(shape) * wf
    scale = gf.norm(dim=dims) / (perp.norm(dim=dims) + EPS)
    return (perp * scale.view(shape)).to(g.dtype)


class GradFilter:
    """Grokfast's filter over named gradients, with its state (what resuming needs: `state_dict`)."""

    def __init__(self, kind: str, alpha: float, lamb: float, window: int, state: dict[str, torch.Tensor] | None = None):
        self.kind, self.alpha, self.lamb, self.window = kind, alpha, lamb, window
        self.state: dict[str, torch.Tensor] = dict(state or {})  # ema: h [...]; ma: the last grads [k, ...]

    def __call__(self, grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.kind == "none":
            return grads
        out = {}
        for name, g in grads.items():
            g = g.detach()
            if self.kind == "ema":
                h = self.state.get(name)
                h = g.clone() if h is None else h * self.alpha + g * (1 - self.alpha)
                self.state[name] = h
                out[name] = g + self.lamb * h
            else:
                held = self.state.get(name)
                held = g.unsqueeze(0) if held is None else torch.cat([held, g.unsqueeze(0)])[-self.window:]
                self.state[name] = held
                out[name] = g + self.lamb * held.mean(0) if len(held) == self.window else g
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.state.items()}

    def select(self, index: torch.Tensor) -> None:
        """Keep only the members at ``index`` (stacked state: member axis first; ma: second)."""
        for k, v in self.state.items():
            self.state[k] = v[:, index] if self.kind == "ma" else v[index]
