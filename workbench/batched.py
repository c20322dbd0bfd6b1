"""Batched training: runs that share every shape train together as one stacked model.

Members of a sweep that differ only in scalars (seeds, split, training fraction, learning rate,
weight decay, betas, warm-up, initial scale, label noise: `SCALAR_FIELDS`) have weights of the
same shapes and the same checkpoint schedule. They train in one process as one model whose every
weight has a leading member axis [M, ...]: the forward pass is `stacked_forward`,
`FastTransformer.forward`'s operations batched over that axis, each member sees its own training set (padded to the largest, the padding weighted 0), and the
optimiser is AdamW applied per member with that member's lr, betas and weight decay:

    for each member m, with g the gradient of m's own mean float64 cross-entropy:
        t += 1
        w   *= 1 - lr_m(t) wd_m                           # decoupled weight decay
        m1  = beta1_m m1 + (1 - beta1_m) g
        m2  = beta2_m m2 + (1 - beta2_m) g^2
        w  -= lr_m(t) / (1 - beta1_m^t) * m1 / (sqrt(m2) / sqrt(1 - beta2_m^t) + eps)

which is `torch.optim.AdamW`'s update (Loshchilov & Hutter 2019) written for a member axis. The
members' losses are summed before the backward pass: member m's weights get exactly the
gradient of m's own loss. A member trained in a group matches the same config trained alone to
float rounding (tested: 1e-4 relative after 200 steps at lr 1e-4; at lr 1e-2 Adam amplifies any
rounding difference, see the README). The training variants (`workbench.variants`: Grokfast's
filter, StableMax, ⊥Grad) apply per member on the stacked tensors; a group shares its variant
(those fields are not in `SCALAR_FIELDS`).

Each member's run directory is written exactly as `workbench.train` writes a solo run
(metrics, checkpoints, and a resume state whose AdamW moments are in torch's format), so a
member can be resumed alone or in a group. A group resumes from its members' states; members
that stopped at different steps (a kill between two members' writes) train as sub-groups from
their own steps. A member whose loss becomes NaN/inf stops there and is reported failed; the
others go on.

Example:
    >>> status = train_group([store.open_run("sweep/a"), store.open_run("sweep/b")])
    >>> status        # {"a": "complete", "b": "complete"}
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime

import torch
import torch.nn.functional as F

from workbench import store
from workbench.config import RunConfig
from workbench.model import (
    EMBED,
    N_CTX,
    POS_EMBED,
    UNEMBED,
    UNEMBED_BIAS,
    activation,
    block_key,
    rated_pattern,
    trainable_names,
    weight_names,
)
from workbench.train import checkpoint_steps, lr_at
from workbench.variants import GradFilter, orthogonal_grad, training_loss

# config fields members of one group may differ in: none changes a weight's shape, the forward
# pass's operations or the schedule of evaluations and checkpoints
SCALAR_FIELDS = ("operation", "table_seed", "split_seed", "split_rule", "frac_train", "label_noise",
                 "model_seed", "init", "init_scale", "lr", "weight_decay", "beta1", "beta2", "warmup_steps")
ADAM_EPS = 1e-8  # torch.optim.AdamW's default, as the solo trainer uses

COMPLETE = "complete"
FAILED = "failed"
STOPPED = "stopped"


def group_key(cfg: RunConfig) -> tuple:
    """What members of one group must share: every field but `SCALAR_FIELDS`."""
    return tuple((k, v) for k, v in cfg.to_dict().items() if k not in SCALAR_FIELDS)


def group_configs(configs: Sequence[RunConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by `group_key`, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(group_key(cfg), []).append(i)
    return list(groups.values())


class _Member:
    """One member's data and files inside a group."""

    def __init__(self, run: store.Run, state: store.ResumeState, device: torch.device):
        self.run = run
        self.cfg = run.config
        ds, split = run.dataset, run.split
        self.x_train = ds.tokens[split.train].to(device)
        self.y_train = split.train_targets(ds).to(device)
        self.x_test = ds.tokens[split.test].to(device)
        self.y_test = ds.labels[split.test].to(device)
        self.state = state


def _pad(parts: list[torch.Tensor], fill: torch.Tensor | int, n_max: int) -> torch.Tensor:
    """Stack [n_m, ...] tensors into [M, n_max, ...], padding with ``fill`` rows."""
    out = []
    for t in parts:
        extra = n_max - len(t)
        if extra:
            pad = fill.expand(extra, *t.shape[1:]) if isinstance(fill, torch.Tensor) else torch.full(
                (extra, *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
            t = torch.cat([t, pad.to(t.device)])
        out.append(t)
    return torch.stack(out)


class _Batch:
    """A padded set per member: tokens [M, n_max, 3], labels [M, n_max], valid [M, n_max] bool.
    ``n_max`` is the group's, not the sub-group's: the matrix shapes, and so the rounding of every
    member, do not depend on which members train together (a resumed sub-group stays bit-identical)."""

    def __init__(self, tokens: list[torch.Tensor], labels: list[torch.Tensor], n_max: int):
        self.tokens = _pad(tokens, tokens[0][:1], n_max)  # pad with a real input: no special token needed
        self.labels = _pad(labels, 0, n_max)
        self.valid = _pad([torch.ones(len(t), dtype=torch.bool, device=t.device) for t in tokens], 0, n_max).bool()
        self.count = self.valid.sum(1)

    def losses(self, logits: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
        """Each member's mean float64 loss (`variants.training_loss`) over its own inputs: [M]."""
        per_input = training_loss(loss, logits, self.labels, reduction="none")  # [M, n]
        # where, not a product: a padding row's inf must not turn the member's loss into NaN
        return torch.where(self.valid, per_input, 0.0).sum(1) / self.count

    def accuracies(self, logits: torch.Tensor) -> torch.Tensor:
        hits = (logits.argmax(-1) == self.labels) & self.valid
        return hits.double().sum(1) / self.count


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member ``F.linear``: x [M, ..., in], weight [M, out, in], bias [M, out] -> [M, ..., out]."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    return torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2)).view(*x.shape[:-1], weight.shape[1])


def stacked_forward(cfg: RunConfig, w: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """`workbench.model.FastTransformer.forward` for M members at once: ``w`` maps each weight
    name to its members' tensors stacked [M, ...]; tokens [M, n, 3] (member m's inputs) ->
    logits at ``=`` [M, n, p]. The same operations in the same order, each batched over members
    (one batched matrix product per linear map; attention's small products as multiply-and-sum),
    so a member's logits equal its solo forward's to float rounding (tested)."""
    M, n, _ = tokens.shape
    H, dh = cfg.n_heads, cfg.d_head
    act = activation(cfg.act_fn)
    table = w[EMBED]  # [M, V, d]
    offsets = (torch.arange(M, device=tokens.device) * table.shape[1]).view(M, 1, 1)
    resid = F.embedding(tokens + offsets, table.reshape(-1, table.shape[-1]))  # [M, n, 3, d]
    resid = resid + w[POS_EMBED].unsqueeze(1)
    causal = torch.triu(torch.ones(N_CTX, N_CTX, dtype=torch.bool, device=tokens.device), diagonal=1)
    for layer in range(cfg.n_layers):
        last = layer == cfg.n_layers - 1

        def lin(x: torch.Tensor, name: str, layer: int = layer) -> torch.Tensor:
            return _linear(x, w[block_key(layer, name + ".weight")], w[block_key(layer, name + ".bias")])

        q = lin(resid[:, :, -1:] if last else resid, "attn.q")
        k, v = lin(resid, "attn.k"), lin(resid, "attn.v")
        if last:
            resid = resid[:, :, -1:]
        nq = q.shape[2]
        q = q.view(M, n, nq, H, dh).transpose(2, 3)  # [M, n, H, nq, dh]
        k = k.view(M, n, N_CTX, H, dh).transpose(2, 3)
        v = v.view(M, n, N_CTX, H, dh).transpose(2, 3)
        # products over d_head as multiply-and-sum, not matmul: millions of 1x16 @ 16x3 products run
        # far faster elementwise than as a batched matmul on CPU
        scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / math.sqrt(dh)  # [M, n, H, nq, 3]
        if not last:
            scores = scores.masked_fill(causal, float("-inf"))
        pattern = rated_pattern(scores.softmax(dim=-1), cfg.attn_rate)
        z = (pattern.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2).transpose(2, 3).reshape(M, n, nq, H * dh)
        resid = resid + lin(z, "attn.o")
        resid = resid + lin(act(lin(resid, "mlp.in")), "mlp.out")
    return _linear(resid[:, :, -1], w[UNEMBED], w[UNEMBED_BIAS])


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
        """One update with each member's lr at ``step`` (`workbench.train.lr_at`)."""
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


def _stack_filter_states(cfg: RunConfig, states: list[dict[str, torch.Tensor]], device: torch.device) -> dict:
    """Members' Grokfast states stacked on a member axis (ema: first axis; ma: second, after the
    window's). Members of one group share their step, so their states have the same keys and sizes."""
    if not states[0]:
        return {}
    axis = 1 if cfg.grokfast == "ma" else 0
    return {k: torch.stack([s[k] for s in states], dim=axis).to(device) for k in states[0]}


def _member_filter_state(cfg: RunConfig, state: dict[str, torch.Tensor], j: int) -> dict[str, torch.Tensor]:
    """Member j's part of the stacked Grokfast state (`GradFilter.state_dict`), in a solo run's shape."""
    return {k: (v[:, j] if cfg.grokfast == "ma" else v[j]).clone() for k, v in state.items()}


def padding(runs: Sequence[store.Run]) -> tuple[int, int]:
    """The (train, test) set size a group pads its members to: the largest of ``runs``."""
    sizes = [(len(r.split.train), len(r.split.test)) for r in runs]
    return max(n for n, _ in sizes), max(n for _, n in sizes)


def train_group(runs: Sequence[store.Run], device: str | torch.device = "cpu", progress: bool = False,
                stop_after: int | None = None, pad: tuple[int, int] | None = None) -> dict[str, str]:
    """Train existing runs that share a `group_key` together to completion (or to ``stop_after``,
    resumably). Returns ``{run name: "complete" | "stopped" | "failed: <why>"}``; a member
    already complete is left as it is. Holds every member's training lock. ``pad``: the set
    sizes to pad to (default `padding` of ``runs``). The padded size changes the order of the
    sums over inputs, so a group resumed with some members left out (finished or failed) passes
    the whole group's padding to stay bit-identical to an uninterrupted run."""
    runs = list(runs)
    if not runs:
        return {}
    keys = {group_key(r.config) for r in runs}
    if len(keys) > 1:
        raise ValueError("runs of one group must share every field but " + ", ".join(SCALAR_FIELDS))
    device = torch.device(device)
    status: dict[str, str] = {}
    with ExitStack() as locks:
        for run in runs:
            locks.enter_context(store.training_lock(run))
        pending: dict[tuple, list[tuple[store.Run, store.ResumeState]]] = {}
        for run in runs:
            if run.is_complete:
                status[run.name] = COMPLETE
            else:  # sub-groups by what their states hold: the step, AdamW's moments, the filter's state
                state = store.read_state(run)
                key = (state.step, bool(state.adam), tuple(sorted((k, tuple(v.shape)) for k, v in state.grad_filter.items())))
                pending.setdefault(key, []).append((run, state))
        pad = pad or padding(runs)
        for key in sorted(pending, key=lambda k: (k[0], k[1], str(k[2]))):
            status.update(_train_stacked(pending[key], device, progress, stop_after, pad))
    return {r.name: status[r.name] for r in runs}


def _train_stacked(runs: list[tuple[store.Run, store.ResumeState]], device: torch.device, progress: bool,
                   stop_after: int | None, pad: tuple[int, int]) -> dict[str, str]:
    members = [_Member(run, state, device) for run, state in runs]
    cfg0 = members[0].cfg
    start = members[0].state.step
    names = trainable_names(cfg0)
    fixed = [n for n in weight_names(cfg0) if n not in names]
    params = {n: torch.stack([m.state.weights[n] for m in members]).to(device).requires_grad_(True) for n in names}
    frozen = {n: torch.stack([m.state.weights[n] for m in members]).to(device) for n in fixed}
    optimizer = StackedAdamW(params, [m.cfg for m in members], [m.state.adam for m in members], device)
    grad_filter = GradFilter(cfg0.grokfast, cfg0.grokfast_alpha, cfg0.grokfast_lamb, cfg0.grokfast_window,
                             _stack_filter_states(cfg0, [m.state.grad_filter for m in members], device))
    train = _Batch([m.x_train for m in members], [m.y_train for m in members], pad[0])
    test = _Batch([m.x_test for m in members], [m.y_test for m in members], pad[1])

    def forward(tokens: torch.Tensor) -> torch.Tensor:  # [M, n, 3] -> [M, n, p]
        return stacked_forward(cfg0, {**params, **frozen}, tokens)

    for m in members:  # metrics past the resumed step were logged by the interrupted process
        store.truncate_metrics(m.run.path, start)

    ckpts = set(checkpoint_steps(cfg0))
    end = cfg0.epochs if stop_after is None else min(cfg0.epochs, max(stop_after, start))
    sessions = []
    for m in members:
        prov = m.run.provenance
        prov["sessions"].append({"device": str(device), "start_step": start, "group": len(members),
                                 "started": datetime.now(UTC).isoformat(timespec="seconds")})
        store.write_provenance(m.run, prov)
        sessions.append(prov)
    status: dict[str, str] = {}
    alive = list(range(len(members)))  # indices into members of those still training
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg0.epochs, initial=start, desc=f"group of {len(members)}", unit="ep", mininterval=0.5,
                   dynamic_ncols=True, file=sys.stderr)

    def record(step: int, train_logits: torch.Tensor) -> None:
        with torch.no_grad():
            tr_loss, tr_acc = train.losses(train_logits), train.accuracies(train_logits)
            te_logits = forward(test.tokens)
            te_loss, te_acc = test.losses(te_logits), test.accuracies(te_logits)
        wall = round(time.perf_counter() - t0, 3)
        for j, i in enumerate(alive):
            m = members[i]
            store.append_metrics(m.run.path, {
                "step": step, "train_loss": tr_loss[j].item(), "train_acc": tr_acc[j].item(),
                "test_loss": te_loss[j].item(), "test_acc": te_acc[j].item(), "lr": lr_at(m.cfg, step), "wall_s": wall})

    def checkpoint(step: int) -> None:
        stacked = {**params, **frozen}
        weights = [{n: stacked[n][j].detach().cpu().clone() for n in weight_names(cfg0)}  # the solo run's key order
                   for j in range(len(alive))]
        for j, i in enumerate(alive):
            store.write_checkpoint(members[i].run, step, weights[j])
        filter_state = grad_filter.state_dict()  # one copy of the stacked state, indexed per member below
        for j, i in enumerate(alive):  # states after every checkpoint: a kill leaves checkpoints ahead, never behind
            m = members[i]
            # the member's own RNG state passes through untouched (full-batch training draws nothing)
            store.write_state(m.run.path, store.ResumeState(step, weights[j], optimizer.member_state(j), m.state.rng,
                                                            _member_filter_state(cfg0, filter_state, j)))

    def drop(failed: list[int], step: int, losses: torch.Tensor) -> None:
        """Members whose loss is not finite stop here (their last checkpoint stays); the rest go on."""
        nonlocal train, test, alive
        for j in failed:
            i = alive[j]
            status[members[i].run.name] = (f"{FAILED}: training loss became {losses[j].item()} at step {step}; "
                                           "lower lr and start a new run")
        survivors = [j for j in range(len(alive)) if j not in failed]
        if not survivors:
            alive = []
            return
        keep = torch.tensor(survivors, dtype=torch.long, device=device)
        for group in (params, frozen):
            for n in group:
                group[n] = group[n].detach()[keep].requires_grad_(group is params)
        optimizer.params = params
        optimizer.keep(keep)
        grad_filter.select(keep)
        for batch in (train, test):
            batch.tokens, batch.labels, batch.valid = batch.tokens[keep], batch.labels[keep], batch.valid[keep]
            batch.count = batch.count[keep]
        alive = [alive[j] for j in keep.tolist()]

    step = start
    try:
        for step in range(start, end + 1):
            if not alive:
                break
            is_eval = step % cfg0.eval_every == 0 or step in ckpts or step == end
            if step == cfg0.epochs:  # the final weights: evaluate and save, no update
                with torch.no_grad():
                    record(step, forward(train.tokens))
                checkpoint(step)
                break
            logits = forward(train.tokens)
            if is_eval:
                record(step, logits.detach())
            if step in ckpts or step == end:
                checkpoint(step)
            if step == end:
                break
            losses = train.losses(logits, cfg0.loss)
            finite = torch.isfinite(losses.detach())
            if not bool(finite.all()):
                drop([j for j in range(len(alive)) if not finite[j]], step, losses.detach())
                if not alive:
                    break
                losses = train.losses(forward(train.tokens), cfg0.loss)
            losses.sum().backward()
            if cfg0.grokfast != "none" or cfg0.optimizer != "adamw":  # the variants' gradient steps
                grads = grad_filter({n: w.grad for n, w in params.items()})
                for n, w in params.items():
                    w.grad = orthogonal_grad(w.detach(), grads[n], batch_dims=1) if cfg0.optimizer == "orthograd" else grads[n]
            optimizer.step(step)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        wall = round(time.perf_counter() - t0, 3)
        for m, prov in zip(members, sessions, strict=True):
            prov["sessions"][-1].update(end_step=step, wall_s=wall)
            store.write_provenance(m.run, prov)
    for m in members:
        if m.run.name not in status:
            status[m.run.name] = COMPLETE if step == cfg0.epochs else STOPPED
    return status


def is_failed(status: str) -> bool:
    return status.startswith(FAILED)
