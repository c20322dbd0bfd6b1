"""Batched training: runs that share every shape train together as one stacked model.

Members of a sweep that differ only in scalars (seeds, split, training fraction, learning rate,
weight decay, betas, warm-up, initial scale, label noise: `SCALAR_FIELDS`) have weights of the
same shapes and the same checkpoint schedule. They train in one process as one model whose every
weight has a leading member axis [M, ...]; each member sees its own training set (padded to the
largest, the padding weighted 0). The step (`workbench.training.step.GroupStep`) is the one every
run takes: a solo run is a group of one. Its forward pass for a one-layer model looks attention
up in (2p + 1)-row tables (`workbench.training.lookup`); its optimiser is AdamW per member, with
that member's lr, betas and weight decay, over one flat buffer (`workbench.training.flat`):

    for each member m, with g the gradient of m's own mean float64 cross-entropy:
        t += 1
        w   *= 1 - lr_m(t) wd_m                           # decoupled weight decay
        m1  = beta1_m m1 + (1 - beta1_m) g
        m2  = beta2_m m2 + (1 - beta2_m) g^2
        w  -= lr_m(t) / (1 - beta1_m^t) * m1 / (sqrt(m2) / sqrt(1 - beta2_m^t) + eps)

The members' losses are summed before the backward pass: member m's weights get exactly the
gradient of m's own loss. A member trained in a group matches the same config trained alone to
float rounding (tested; how far rounding carries at the presets' lr: docs/results/sweeps.md). The
training variants (`workbench.training.variants`: Grokfast's filter, StableMax, ⊥Grad) apply per
member on the stacked tensors; a group shares its variant (those fields are not in `SCALAR_FIELDS`).

Each member's run directory is an ordinary run directory (metrics, checkpoints, and a resume state
whose AdamW moments are in torch's format), so a member can be resumed alone or in a group. A
group resumes from its members' states; members that stopped at different steps (a kill between
two members' writes) train as sub-groups from their own steps. A member whose loss becomes NaN/inf
stops there and is reported failed; the others go on.

Example:
    >>> from pathlib import Path
    >>> from workbench.config import load_config
    >>> from workbench.training import start_run
    >>> runs = [start_run(Path(f"group/{s}"), load_config("smoke", {"model_seed": s, "epochs": 50})) for s in (0, 1)]
    >>> train_group(runs)
    {'0': 'complete', '1': 'complete'}
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime

import torch

from workbench import store
from workbench.config import RunConfig
from workbench.model import misfit_weights
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.training.schedule import checkpoint_steps, lr_at
from workbench.training.status import COMPLETE, STOPPED
from workbench.training.status import failed as failed_status
from workbench.training.step import Batch, GroupStep, member_filter_state
from workbench.training.watch import ForecastWatch, StopRule

# config fields members of one group may differ in: none changes a weight's shape, the forward
# pass's operations or the schedule of evaluations and checkpoints
SCALAR_FIELDS = ("operation", "table_seed", "split_seed", "split_rule", "frac_train", "label_noise",
                 "model_seed", "init", "init_scale", "lr", "weight_decay", "beta1", "beta2", "warmup_steps")


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


def padding(runs: Sequence[store.Run]) -> tuple[int, int]:
    """The (train, test) set size a group pads its members to: the largest of ``runs``."""
    sizes = [(len(r.split.train), len(r.split.test)) for r in runs]
    return max(n for n, _ in sizes), max(n for _, n in sizes)


def train_group(runs: Sequence[store.Run], device: str | torch.device = "cpu", progress: bool | Monitor = False,
                stop_after: int | None = None, pad: tuple[int, int] | None = None,
                session: dict[str, str] | None = None, stop: StopRule | None = None) -> dict[str, str]:
    """Train existing runs that share a `group_key` together to completion (or to ``stop_after``,
    resumably). Returns ``{run name: "complete" | "stopped" | "failed: <why>"}``; a member
    already complete is left as it is. Holds every member's training lock. ``pad``: the set
    sizes to pad to (default `padding` of ``runs``). The padded size changes the order of the
    sums over inputs, so a group resumed with some members left out (finished or failed) passes
    the whole group's padding to stay bit-identical to an uninterrupted run. ``progress``: a bar
    per stacked group (True, False or a `workbench.monitor.Monitor`). ``session``: more fields for each
    member's record of this training session in its provenance (where it ran: a Ray node). ``stop``:
    stop members the forecast finds hopeless (`workbench.training.watch`; their status
    ``stopped: forecast (...)``)."""
    runs = list(runs)
    with ExitStack() as locks:
        for run in runs:
            locks.enter_context(store.training_lock(run))
        return train_locked(runs, device, resolve_monitor(progress), stop_after, pad, session=session, stop=stop)


def train_locked(runs: Sequence[store.Run], device: str | torch.device, monitor: Monitor, stop_after: int | None = None,
                 pad: tuple[int, int] | None = None, label: str | None = None, session: dict[str, str] | None = None,
                 keep_logs_until: int | None = None, stop: StopRule | None = None) -> dict[str, str]:
    """`train_group`'s work, for a caller that already holds every member's training lock (the
    solo trainer). ``label`` names the progress bar (default "group of M"); the forecast follows
    the members while a bar is shown or a ``stop`` rule asks for it (`workbench.training.watch`).
    ``keep_logs_until``: metrics rows up to this step are never rewritten nor appended to (an
    imported run's log, `workbench.training.train`)."""
    runs = list(runs)
    if not runs:
        return {}
    keys = {group_key(r.config) for r in runs}
    if len(keys) > 1:
        raise ValueError("runs of one group must share every field but " + ", ".join(SCALAR_FIELDS))
    device = torch.device(device)
    status: dict[str, str] = {}
    pending: dict[tuple, list[tuple[store.Run, store.ResumeState]]] = {}
    for run in runs:
        if run.is_complete:
            status[run.name] = COMPLETE
        else:  # sub-groups by what their states hold: the step, AdamW's moments, the filter's state
            state = store.read_state(run)
            run.metrics_rows  # noqa: B018 - a damaged log stops the group here, before any member's files are touched
            problem = misfit_weights(run.config, state.weights)
            if problem:
                raise store.DamagedFile(f"{run.path / store.STATE} does not fit this run's config ({problem}); "
                                        f"{run.reset_advice()}")
            key = (state.step, bool(state.adam), tuple(sorted((k, tuple(v.shape)) for k, v in state.grad_filter.items())))
            pending.setdefault(key, []).append((run, state))
    pad = pad or padding(runs)
    for key in sorted(pending, key=lambda k: (k[0], k[1], str(k[2]))):
        status.update(_train_stacked(pending[key], device, monitor, stop_after, pad, label, session or {},
                                     keep_logs_until, stop))
    return {r.name: status[r.name] for r in runs}


def _train_stacked(runs: list[tuple[store.Run, store.ResumeState]], device: torch.device, monitor: Monitor,
                   stop_after: int | None, pad: tuple[int, int], label: str | None, where: dict[str, str],
                   keep_logs_until: int | None = None, stop: StopRule | None = None) -> dict[str, str]:
    members = [_Member(run, state, device) for run, state in runs]
    cfg0 = members[0].cfg
    start = members[0].state.step
    model = GroupStep(cfg0, [m.cfg for m in members], [m.state.weights for m in members],
                      [m.state.adam for m in members], [m.state.grad_filter for m in members], device)
    train = Batch([m.x_train for m in members], [m.y_train for m in members], pad[0])
    test = Batch([m.x_test for m in members], [m.y_test for m in members], pad[1])

    first_logged = start if keep_logs_until is None else max(start, keep_logs_until + 1)
    for m in members:  # metrics past the resumed step were logged by the interrupted process
        store.truncate_metrics(m.run.path, first_logged)

    ckpts = set(checkpoint_steps(cfg0))
    end = cfg0.epochs if stop_after is None else min(cfg0.epochs, max(stop_after, start))
    sessions = []
    for m in members:
        prov = m.run.provenance
        prov["sessions"].append({"device": str(device), "start_step": start, "group": len(members), "host": socket.gethostname(),
                                 "started": datetime.now(UTC).isoformat(timespec="seconds"), **where})
        store.write_provenance(m.run, prov)  # recorded now, so a killed session still shows
        sessions.append(prov)
    status: dict[str, str] = {}
    alive = list(range(len(members)))  # indices into members of those still training
    t0 = time.perf_counter()
    bar = monitor.bar(cfg0.epochs, label or f"group of {len(members)}", unit="ep", initial=start)
    # a forecast nobody sees and nothing acts on is not worth its checkpoint reads
    watch = ForecastWatch([m.run for m in members], cfg0.epochs, stop, monitor) if bar.shown or stop else None

    def record(step: int, train_logits: torch.Tensor) -> None:
        if step < first_logged:  # an imported log's row stands
            return
        with torch.no_grad():
            tr_loss, tr_acc = train.losses(train_logits), train.accuracies(train_logits)
            te_logits = model.logits(test)
            te_loss, te_acc = test.losses(te_logits), test.accuracies(te_logits)
        norms = model.weight_norms()
        wall = round(time.perf_counter() - t0, 3)
        for j, i in enumerate(alive):
            m = members[i]
            store.append_metrics(m.run.path, {
                "step": step, "train_loss": tr_loss[j].item(), "train_acc": tr_acc[j].item(),
                "test_loss": te_loss[j].item(), "test_acc": te_acc[j].item(), "weight_norm": norms[j],
                "lr": lr_at(m.cfg, step), "wall_s": wall})
        shown = {"train": f"{tr_loss[0].item():.2e}/{tr_acc[0].item():.0%}",
                 "test": f"{te_loss[0].item():.2e}/{te_acc[0].item():.0%}"} if len(alive) == 1 else {}
        if watch is not None:
            shown.update(watch.status([members[i].run.name for i in alive], tr_acc.tolist()))
        if shown:
            bar.status(**shown)

    def checkpoint(step: int) -> bool:
        """Save every member; True if the forecast stopped some (the logits then need recomputing)."""
        weights = [model.member_weights(j) for j in range(len(alive))]
        for j, i in enumerate(alive):
            store.write_checkpoint(members[i].run, step, weights[j])
        filter_state = model.filter_state()  # one copy of the stacked state, indexed per member below
        for j, i in enumerate(alive):  # states after every checkpoint: a kill leaves checkpoints ahead, never behind
            m = members[i]
            # the member's own RNG state passes through untouched (full-batch training draws nothing)
            store.write_state(m.run, store.ResumeState(step, weights[j], model.member_adam(j), m.state.rng,
                                                            member_filter_state(cfg0, filter_state, j)))
        if watch is None or step == cfg0.epochs:
            return False
        stops = watch.checkpoint(step, [members[i].run for i in alive])
        if not stops:
            return False
        leaving = [j for j, i in enumerate(alive) if members[i].run.name in stops]
        for j in leaving:
            status[members[alive[j]].run.name] = stops[members[alive[j]].run.name]
        remove(leaving)
        return True

    def drop(failed: list[int], step: int, losses: torch.Tensor) -> None:
        """Members whose loss is not finite stop here (their last checkpoint stays); the rest go on."""
        for j in failed:
            i = alive[j]
            status[members[i].run.name] = failed_status(f"training loss became {losses[j].item()} at step {step}; "
                                                         "lower lr and start a new run")
        remove(failed)

    def remove(leaving: list[int]) -> None:
        """Members at positions ``leaving`` of ``alive`` stop training; the rest go on."""
        nonlocal alive
        survivors = [j for j in range(len(alive)) if j not in leaving]
        if not survivors:
            alive = []
            return
        keep = torch.tensor(survivors, dtype=torch.long, device=device)
        model.keep(keep)
        train.keep(keep)
        test.keep(keep)
        alive = [alive[j] for j in keep.tolist()]

    step = start
    try:
        for step in range(start, end + 1):
            if not alive:
                break
            is_eval = step % cfg0.eval_every == 0 or step in ckpts or step == end
            if step == cfg0.epochs:  # the final weights: evaluate and save, no update
                with torch.no_grad():
                    record(step, model.logits(train))
                checkpoint(step)
                break
            logits = model.logits(train)
            if is_eval:
                record(step, logits.detach())
            if (step in ckpts or step == end) and checkpoint(step):
                if not alive:
                    break
                logits = model.logits(train)
            if step == end:
                break
            losses = train.losses(logits, cfg0.loss)
            finite = torch.isfinite(losses.detach())
            if not bool(finite.all()):
                drop([j for j in range(len(alive)) if not finite[j]], step, losses.detach())
                if not alive:
                    break
                losses = train.losses(model.logits(train), cfg0.loss)
            model.update(losses, step)
            bar.advance(1)
    finally:
        bar.close()
        wall = round(time.perf_counter() - t0, 3)
        for m, prov in zip(members, sessions, strict=True):
            prov["sessions"][-1].update(end_step=step, wall_s=wall)
            store.write_provenance(m.run, prov)
    for m in members:
        if m.run.name not in status:
            status[m.run.name] = COMPLETE if step == cfg0.epochs else STOPPED
    return status
