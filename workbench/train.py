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
    >>> run = train("demo", "fast")          # or train("demo") to resume / no-op when complete
    >>> run.metrics.tail(1)
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench import store
from workbench.config import DEFAULT_PRESET, RunConfig, from_dict, load_config
from workbench.errors import UsageError
from workbench.model import FastTransformer, initial_weights
from workbench.tasks import make_dataset, make_split


def checkpoint_steps(cfg: RunConfig) -> list[int]:
    """Steps that get a checkpoint: 0, every ``ckpt_every``, ``ckpt_log`` log-spaced ones, and the last."""
    steps = {0, cfg.epochs}
    if cfg.ckpt_every:
        steps.update(range(0, cfg.epochs + 1, cfg.ckpt_every))
    if cfg.ckpt_log:
        steps.update(int(round(s)) for s in np.geomspace(1, cfg.epochs, cfg.ckpt_log))
    return sorted(steps)


def lr_at(cfg: RunConfig, step: int) -> float:
    """Linear warm-up from 0 over ``warmup_steps`` updates (as LambdaLR(min(step/w, 1)) did)."""
    if cfg.warmup_steps == 0:
        return cfg.lr
    return cfg.lr * min(step / cfg.warmup_steps, 1.0)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no CUDA device is available; use cpu or auto")
    return torch.device(device)


def provenance(cfg: RunConfig) -> dict[str, Any]:
    """Package versions and the git commit of the workbench source."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for pkg in ("torch", "transformer-lens", "numpy", "safetensors", "workbench"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    source = Path(__file__).resolve().parents[1]
    commit = None
    dirty = None
    if (source / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
            dirty = bool(
                subprocess.run(
                    ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True, text=True, check=True,
                ).stdout.strip()
            )
        except (OSError, subprocess.CalledProcessError):
            pass
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        "platform": platform.platform(),
        "sessions": [],
    }


def _resolve_config(
    run_path: Path, preset: str | Path | Mapping[str, Any] | RunConfig | None, overrides: Mapping[str, Any] | None
) -> tuple[RunConfig, RunConfig | None]:
    """(config to train, saved config if the run exists). Refuses a contradicting request."""
    saved = None
    if (run_path / store.CONFIG).is_file():
        saved = from_dict(json.loads((run_path / store.CONFIG).read_text()))
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


def _create_run(run_path: Path, cfg: RunConfig) -> None:
    """Assemble a new run in a hidden folder and rename it into place (all or nothing)."""
    run_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_path.parent, prefix=f".{run_path.name}.creating."))
    try:
        (tmp / store.STEPS_DIR).mkdir()
        store.write_json(tmp / store.CONFIG, cfg.to_dict())
        store.write_json(tmp / store.PROVENANCE, provenance(cfg))
        ds = make_dataset(cfg.operation, cfg.p, cfg.table_seed)
        split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed)
        store.write_tensors(tmp / store.SPLIT, {"train": split.train, "test": split.test})
        weights = initial_weights(cfg)
        store.write_tensors(tmp / store.STATE, _state_tensors(weights, None, []), {"step": "0"})
        try:
            tmp.rename(run_path)
        except OSError:
            raise UsageError(f"run {run_path.name!r} was created by another process meanwhile; run again to resume it") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _state_tensors(weights: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None, names: list[str]) -> dict[str, torch.Tensor]:
    tensors = {f"weights/{k}": v for k, v in weights.items()}
    if optimizer is not None:
        state = optimizer.state_dict()["state"]
        for index, name in enumerate(names):
            for key, value in state.get(index, {}).items():
                tensors[f"adam/{key}/{name}"] = torch.as_tensor(value).reshape(-1) if key == "step" else value
    tensors["rng/torch"] = torch.get_rng_state()
    return tensors


def _load_state(path: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]], torch.Tensor]:
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        step = int(f.metadata()["step"])
    tensors = store.load_file(path)
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    adam: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("adam/"):
            _, key, name = k.split("/", 2)
            adam.setdefault(name, {})[key] = v.reshape(()) if key == "step" else v
    return step, weights, adam, tensors["rng/torch"]


def _evaluate(model: FastTransformer, tokens: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor | None = None) -> tuple[float, float]:
    """(float64 cross-entropy, accuracy) on a set; reuses ``logits`` when already computed."""
    with torch.no_grad():
        if logits is None:
            logits = model(tokens)
        loss = F.cross_entropy(logits.double(), labels).item()
        acc = (logits.argmax(-1) == labels).double().mean().item()
    return loss, acc


def train(
    run: str,
    preset: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
) -> store.Run:
    """Train run ``checkpoints/<run>/`` to completion: create it, resume it, or report it complete.

    ``preset``: a preset name, config file, mapping or `RunConfig` (default: the saved config
    of an existing run, else the ``fast`` preset). ``overrides`` change single fields.
    ``stop_after``: stop (resumably) once this step is reached, for experiments and tests.
    """
    run_path = store.checkpoints_root() / store.check_run_name(str(run))
    cfg, saved = _resolve_config(run_path, preset, overrides)
    dev = pick_device(device)
    if saved is None:
        _create_run(run_path, cfg)
    handle = store.Run(run_path)
    with store.exclusive_lock(run_path, "training"):
        store.remove_stale_temporaries(run_path)
        if handle.is_complete:
            print(f"run {handle.name!r} is already complete at step {cfg.epochs}; nothing to do ({run_path})")
            return handle
        _train_loop(handle, cfg, dev, progress, stop_after)
    return handle


def _train_loop(handle: store.Run, cfg: RunConfig, device: torch.device, progress: bool, stop_after: int | None) -> None:
    run_path = handle.path
    start, weights, adam, rng = _load_state(run_path / store.STATE)
    torch.set_rng_state(rng)
    ds, split = handle.dataset, handle.split
    x_train, y_train = ds.tokens[split.train].to(device), ds.labels[split.train].to(device)
    x_test, y_test = ds.tokens[split.test].to(device), ds.labels[split.test].to(device)

    model = FastTransformer(cfg, weights).to(device)
    names = [n for n in model.named_weights() if not (cfg.freeze_biases and n.endswith("bias"))]
    for n, param in model.named_weights().items():
        param.requires_grad_(n in names)
    params = [model.w(n) for n in names]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    if adam:
        state = optimizer.state_dict()
        state["state"] = {i: {k: v.to(device) if k != "step" else v for k, v in adam[n].items()} for i, n in enumerate(names)}
        optimizer.load_state_dict(state)

    # Metrics after the resumed step were logged by the interrupted process; they are
    # recomputed identically below, so drop them rather than keep duplicates.
    metrics_path = run_path / store.METRICS
    rows = store.read_jsonl(metrics_path)
    if any(r["step"] >= start for r in rows) or (metrics_path.exists() and len(rows) != len(metrics_path.read_text().splitlines())):
        store.write_text(metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows if r["step"] < start))

    ckpts = set(checkpoint_steps(cfg))
    end = cfg.epochs if stop_after is None else min(cfg.epochs, max(stop_after, start))
    session = {"device": str(device), "start_step": start, "started": datetime.now(UTC).isoformat(timespec="seconds")}
    prov = handle.provenance
    prov["sessions"].append(session)  # recorded now, so a killed session still shows
    store.write_json(run_path / store.PROVENANCE, prov)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=start, desc=handle.name, unit="ep", mininterval=0.5, dynamic_ncols=True, file=sys.stderr)

    def record(step: int, train_logits: torch.Tensor) -> None:
        train_loss, train_acc = _evaluate(model, x_train, y_train, train_logits)
        test_loss, test_acc = _evaluate(model, x_test, y_test)
        row = {"step": step, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
               "test_acc": test_acc, "lr": lr_at(cfg, step), "wall_s": round(time.perf_counter() - t0, 3)}
        store.append_jsonl(metrics_path, row)
        if bar is not None:
            bar.set_postfix_str(f"train {train_loss:.2e}/{train_acc:.0%}  test {test_loss:.2e}/{test_acc:.0%}", refresh=False)

    def checkpoint(step: int) -> None:
        weights_now = model.bridge_weights()
        store.write_tensors(run_path / store.STEPS_DIR / store.step_filename(step), weights_now, {"step": str(step)})
        store.write_tensors(run_path / store.STATE, _state_tensors(weights_now, optimizer, names), {"step": str(step)})

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
            loss = F.cross_entropy(logits.double(), y_train)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower lr and start a new run")
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        session.update(end_step=step, wall_s=round(time.perf_counter() - t0, 3))
        prov["sessions"][-1] = session
        store.write_json(run_path / store.PROVENANCE, prov)
