"""When a run checkpoints and what learning rate each step uses."""

from __future__ import annotations

import numpy as np

from workbench.config import RunConfig


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
