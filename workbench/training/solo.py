"""Full-batch training with checkpoints, metrics and exact resume.

The loop (Nanda et al. 2023, Appendix: full-batch AdamW on the train split):

    for step in 0 .. epochs-1:
        logits = model(train_tokens)                      # weights after `step` updates
        loss   = cross_entropy(float64(logits), labels)   # float64: losses reach 1e-7
        if step is an evaluation step: log train/test loss and accuracy at these weights
        if step is a checkpoint step:  save weights, then the resume state
        lr(step) = lr * min(step / warmup_steps, 1);  AdamW update

so "step s" always means "the weights after s updates", for metrics and checkpoints alike.
The final step (``epochs``) is always evaluated and saved.

Resume: the state file holds the weights, the AdamW moments and step counts, and the RNG
state at the last checkpoint. Training on CPU is deterministic, so an interrupted run that is
resumed ends with weights bit-identical to an uninterrupted one (tested with SIGKILL).

Example:
    >>> run = train("demo-train", "smoke", progress=False)   # or train("demo-train") to resume / no-op when complete
    >>> run.metrics.step.iloc[-1]
    np.int64(300)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from probes.outcome import ACC
from workbench import store
from workbench.config import DEFAULT_PRESET, RunConfig, load_config
from workbench.errors import UsageError
from workbench.forecasting import SignalCache, forecast_view, training_view
from workbench.model import FastTransformer, trainable_module, trainable_names
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.training.device import pick_device
from workbench.training.schedule import checkpoint_steps, lr_at
from workbench.training.start import start_run
from workbench.training.variants import GradFilter, orthogonal_grad, training_loss


def _resolve_config(
    run_path: Path, preset: str | Path | Mapping[str, Any] | RunConfig | None, overrides: Mapping[str, Any] | None
) -> tuple[RunConfig, RunConfig | None]:
    """(config to train, saved config if the run exists). Refuses a contradicting request."""
    saved = store.Run(run_path).config if (run_path / store.CONFIG).is_file() else None
    if saved is not None and preset is None:
        cfg = load_config(saved, overrides)  # overrides alone apply to the run's own config
    else:
        cfg = load_config(preset if preset is not None else DEFAULT_PRESET, overrides)
    if saved is not None and cfg != saved:
        diffs = [f"{k}={v!r} (run has {saved.to_dict()[k]!r})" for k, v in cfg.to_dict().items() if saved.to_dict()[k] != v]
        raise UsageError(
            f"run {run_path.name!r} already exists with a different config: {'; '.join(diffs)}. "
            "Use a new RUN name, or drop the preset/overrides to resume it as it is"
        )
    return cfg, saved


def _adam_state(optimizer: torch.optim.Optimizer, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """AdamW's per-parameter state keyed by weight name (what `store.ResumeState` holds)."""
    state = optimizer.state_dict()["state"]
    return {name: {k: torch.as_tensor(v) for k, v in state[i].items()} for i, name in enumerate(names) if i in state}


def _load_adam_state(optimizer: torch.optim.Optimizer, names: list[str], adam: dict[str, dict[str, torch.Tensor]],
                     device: torch.device) -> None:
    if not adam:
        return
    state = optimizer.state_dict()
    state["state"] = {i: {k: v.to(device) if k != "step" else v for k, v in adam[n].items()} for i, n in enumerate(names)}
    optimizer.load_state_dict(state)


def _evaluate(model: FastTransformer, tokens: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor | None = None) -> tuple[float, float]:
    """(float64 cross-entropy, accuracy) on a set; reuses ``logits`` when already computed."""
    with torch.no_grad():
        if logits is None:
            logits = model(tokens)
        loss = F.cross_entropy(logits.double(), labels).item()
        acc = (logits.argmax(-1) == labels).double().mean().item()
    return loss, acc


def _transform_gradients(model: FastTransformer, names: list[str], cfg: RunConfig, grad_filter: GradFilter) -> None:
    """The variants' gradient steps, in place, between backward and AdamW: Grokfast's filter,
    then ⊥Grad (`workbench.training.variants`). Nothing for the plain trainer."""
    if cfg.grokfast == "none" and cfg.optimizer == "adamw":
        return
    params = {n: model.w(n) for n in names}
    grads = grad_filter({n: p.grad for n, p in params.items()})
    for n, p in params.items():
        g = grads[n]
        p.grad = orthogonal_grad(p.detach(), g) if cfg.optimizer == "orthograd" else g


class _ForecastWatch:
    """The forecast shown on the progress bar once the run has fitted (`workbench.forecasting`), remade at
    checkpoints at most every 2% of the epochs; it reads the run's files as any forecast does."""

    def __init__(self, run: store.Run, cfg: RunConfig):
        self.run, self.every = run, max(1, cfg.epochs // 50)
        self.fitted, self.last, self.text = False, None, None
        self.cache = SignalCache()

    def status(self, train_acc: float) -> dict[str, str]:
        self.fitted = self.fitted or train_acc >= ACC
        return {"forecast": self.text} if self.text else {}

    def checkpoint(self, step: int) -> None:
        if not self.fitted or (self.last is not None and step - self.last < self.every) or len(self.run.steps) < 2:
            return
        self.last = step
        self.text = forecast_view(training_view(self.run, step), cache=self.cache).short()


def reset_state_from_checkpoint(run: store.Run) -> int:
    """Rebuild a damaged resume state from the last readable checkpoint: its weights, fresh
    AdamW moments (so the rest of the run is not bit-identical to an uninterrupted one). Returns
    the step training resumes from."""
    step, weights = store.last_good_checkpoint(run)
    store.write_state(run.path, store.ResumeState(step=step, weights=weights, adam={}, rng=torch.get_rng_state()))
    return step


def train(
    run: str,
    preset: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool | Monitor = True,
    stop_after: int | None = None,
    root: Path | None = None,
    from_last_checkpoint: bool = False,
) -> store.Run:
    """Train run ``<root>/<run>/`` to completion: create it, resume it, or report it complete.

    ``preset``: a preset name, config file, mapping or `RunConfig` (default: the saved config
    of an existing run, else the ``fast`` preset). ``overrides`` change single fields.
    ``root``: where runs live (default `store.default_root`). ``stop_after``: stop (resumably)
    once this step is reached, for experiments and tests. ``from_last_checkpoint``: rebuild a
    damaged resume state from the last readable checkpoint first (`reset_state_from_checkpoint`).
    ``progress``: a bar with the losses and one-line notes (True: in the terminal or the notebook
    it runs in; False: nothing; or any `workbench.monitor.Monitor`).
    """
    monitor = resolve_monitor(progress)
    run_path = store.run_path(str(run), root)
    cfg, saved = _resolve_config(run_path, preset, overrides)
    dev = pick_device(device)
    handle = start_run(run_path, cfg) if saved is None else store.Run(run_path)
    with store.training_lock(handle):
        handle.provenance, handle.split  # noqa: B018 - read (and checked) before anything is written
        if from_last_checkpoint:
            step = reset_state_from_checkpoint(handle)
            monitor.note(f"run {handle.name!r}: resume state rebuilt from the checkpoint at step {step} (fresh optimiser moments)")
        if handle.is_complete:
            monitor.note(f"run {handle.name!r} is already complete at step {cfg.epochs}; nothing to do ({run_path})")
            return handle
        _train_loop(handle, cfg, dev, monitor, stop_after)
    return handle


def _train_loop(handle: store.Run, cfg: RunConfig, device: torch.device, monitor: Monitor, stop_after: int | None) -> None:
    run_path = handle.path
    # read everything first: a damaged file stops the session before anything is written
    resume = store.read_state(handle)
    prov = handle.provenance
    start = resume.step
    torch.set_rng_state(resume.rng)
    ds, split = handle.dataset, handle.split
    x_train, y_train = ds.tokens[split.train].to(device), split.train_targets(ds).to(device)
    x_test, y_test = ds.tokens[split.test].to(device), ds.labels[split.test].to(device)

    model = trainable_module(cfg, resume.weights).to(device)
    names = trainable_names(cfg)
    params = [model.w(n) for n in names]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    _load_adam_state(optimizer, names, resume.adam, device)
    grad_filter = GradFilter(cfg.grokfast, cfg.grokfast_alpha, cfg.grokfast_lamb, cfg.grokfast_window,
                             {k: v.to(device) for k, v in resume.grad_filter.items()})

    # Metrics after the resumed step were logged by the interrupted process; they are
    # recomputed identically below, so drop them rather than keep duplicates.
    store.truncate_metrics(run_path, start)

    ckpts = set(checkpoint_steps(cfg))
    end = cfg.epochs if stop_after is None else min(cfg.epochs, max(stop_after, start))
    session = {"device": str(device), "start_step": start, "started": datetime.now(UTC).isoformat(timespec="seconds")}
    prov["sessions"].append(session)  # recorded now, so a killed session still shows
    store.write_provenance(handle, prov)
    t0 = time.perf_counter()
    bar = monitor.bar(cfg.epochs, handle.name, unit="ep", initial=start)
    watch = _ForecastWatch(handle, cfg) if bar.shown else None

    def record(step: int, train_logits: torch.Tensor) -> None:
        train_loss, train_acc = _evaluate(model, x_train, y_train, train_logits)
        test_loss, test_acc = _evaluate(model, x_test, y_test)
        with torch.no_grad():
            norm = sum(float(w.double().pow(2).sum()) for w in params)
        row = {"step": step, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
               "test_acc": test_acc, "weight_norm": norm, "lr": lr_at(cfg, step),
               "wall_s": round(time.perf_counter() - t0, 3)}
        store.append_metrics(run_path, row)
        status = {"train": f"{train_loss:.2e}/{train_acc:.0%}", "test": f"{test_loss:.2e}/{test_acc:.0%}"}
        if watch is not None:
            status.update(watch.status(train_acc))
        bar.status(**status)

    def checkpoint(step: int) -> None:
        weights_now = model.bridge_weights()
        store.write_checkpoint(handle, step, weights_now)
        store.write_state(run_path, store.ResumeState(step, weights_now, _adam_state(optimizer, names), torch.get_rng_state(),
                                                      grad_filter.state_dict()))
        if watch is not None:
            watch.checkpoint(step)

    step = start
    try:
        for step in range(start, end + 1):
            is_eval = step % cfg.eval_every == 0 or step in ckpts or step == end
            if step == cfg.epochs:  # the final weights: evaluate and save, no update
                with torch.no_grad():
                    record(step, model(x_train))
                checkpoint(step)
                break
            logits = model(x_train)
            if is_eval:
                record(step, logits.detach())
            if step in ckpts or step == end:
                checkpoint(step)
            if step == end:
                break
            loss = training_loss(cfg.loss, logits, y_train)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower lr and start a new run")
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            _transform_gradients(model, names, cfg, grad_filter)
            optimizer.step()
            bar.advance(1)
    finally:
        bar.close()
        session.update(end_step=step, wall_s=round(time.perf_counter() - t0, 3))
        prov["sessions"][-1] = session
        store.write_provenance(handle, prov)
