"""AdamW over stacked members: one update of every member's weights, each with its own step count."""

from __future__ import annotations

import torch

from workbench.config import RunConfig
from workbench.training.schedule import lr_at

ADAM_EPS = 1e-8  # torch.optim.AdamW's default, as the solo trainer uses


class StackedAdamW:
    """AdamW over weights with a leading member axis, each member with its own lr schedule,
    betas and weight decay (the update in the module docstring). ``state``: per weight name,
    ``exp_avg`` and ``exp_avg_sq`` [M, ...]; ``t``: the update count (shared by the group)."""

    def __init__(self, params: dict[str, torch.Tensor], cfgs: list[RunConfig], adam: list[dict], device: torch.device):
        self.params = params
        self.cfgs = cfgs
        as_tensor = lambda values: torch.tensor(values, dtype=torch.float64, device=device)  # noqa: E731
        self.beta1 = as_tensor([c.beta1 for c in cfgs])
        self.beta2 = as_tensor([c.beta2 for c in cfgs])
        self.wd = as_tensor([c.weight_decay for c in cfgs])
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        steps = {float(a[name]["step"]) for a in adam for name in params if name in a}
        if len(steps) > 1:
            raise ValueError(f"members' AdamW step counts differ ({sorted(steps)}): they cannot share a group")
        self.t = int(steps.pop()) if steps else 0
        for name, w in params.items():
            if self.t:
                self.state[name] = {k: torch.stack([a[name][k] for a in adam]).to(device)
                                    for k in ("exp_avg", "exp_avg_sq")}
            else:
                self.state[name] = {"exp_avg": torch.zeros_like(w), "exp_avg_sq": torch.zeros_like(w)}

    def member_state(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        """Member i's moments in `torch.optim.AdamW`'s format (what `store.ResumeState` holds)."""
        if not self.t:
            return {}
        return {name: {"step": torch.tensor(float(self.t)), "exp_avg": s["exp_avg"][i].detach().cpu().clone(),
                       "exp_avg_sq": s["exp_avg_sq"][i].detach().cpu().clone()} for name, s in self.state.items()}

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the members at ``index`` (after others failed)."""
        self.beta1, self.beta2, self.wd = self.beta1[index], self.beta2[index], self.wd[index]
        self.cfgs = [self.cfgs[i] for i in index.tolist()]
        for s in self.state.values():
            for k in s:
                s[k] = s[k][index]

    @torch.no_grad()
    def step(self, step: int) -> None:
        """One update with each member's lr at ``step`` (`workbench.training.schedule.lr_at`)."""
        self.t += 1
        t = self.t
        lr = torch.tensor([lr_at(c, step) for c in self.cfgs], dtype=torch.float64, device=self.beta1.device)
        decay = (1 - lr * self.wd).float()
        step_size = (lr / (1 - self.beta1 ** t)).float()
        bc2_sqrt = torch.sqrt(1 - self.beta2 ** t).float()
        one_minus_b1 = (1 - self.beta1).float()
        b2, one_minus_b2 = self.beta2.float(), (1 - self.beta2).float()
        for name, w in self.params.items():
            g = w.grad
            shape = (-1,) + (1,) * (w.dim() - 1)
            s = self.state[name]
            w.mul_(decay.view(shape))
            s["exp_avg"].lerp_(g, one_minus_b1.view(shape).expand_as(g))
            s["exp_avg_sq"].mul_(b2.view(shape)).add_(one_minus_b2.view(shape) * g * g)
            denom = (s["exp_avg_sq"].sqrt() / bc2_sqrt.view(shape)).add_(ADAM_EPS)
            w.sub_(step_size.view(shape) * (s["exp_avg"] / denom))
            w.grad = None
