"""The signals a forecast reads, computed from a `TrainingView`: one row per checkpoint, plus the run's fit step.

Per checkpoint at or before the view's step (estimators: `workbench.forecasting.estimators`):

    step, fourier_gini, logit_scale, weight_norm

``weight_norm`` (Σ w² over the trainable weights) is the metrics' own column where the run
logged it, else the checkpoint's sum of squares. `fit_step` is the first evaluation with
train accuracy >= 99% (`probes.outcome.ACC`): the end of memorisation.

An unreadable checkpoint is left out of the table (the report leaves it out too).
`SignalCache` keeps the rows already computed for a run (keyed by the checkpoint's step and
file size and time, so a rewritten checkpoint is recomputed): a forecast at every checkpoint
of a run reads each checkpoint once.

Example:
    >>> from workbench.forecasting import training_view
    >>> view = training_view(workbench.open_run("demo"), 300)
    >>> list(SignalCache().table(view).columns)
    ['step', 'fourier_gini', 'logit_scale', 'weight_norm']
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from probes.outcome import ACC
from workbench import store
from workbench.forecasting.estimators import fourier_gini, logit_scale
from workbench.forecasting.view import TrainingView
from workbench.model import EMBED, trainable_module, trainable_names

COLUMNS = ("step", "fourier_gini", "logit_scale", "weight_norm")


def fit_step(view: TrainingView) -> int | None:
    """The first evaluation step with train accuracy >= ACC, or None (not fitted yet)."""
    fitted = view.metrics.step[view.metrics.train_acc >= ACC]
    return int(fitted.iloc[0]) if len(fitted) else None


def checkpoint_signals(view: TrainingView, step: int) -> dict[str, float]:
    """The row of `COLUMNS` for one checkpoint of the view."""
    cfg = view.config
    weights = view.weights(step)
    logged = view.metrics.weight_norm[view.metrics.step == step]
    with torch.no_grad():
        module = trainable_module(cfg, weights)
        logits = module(view.train_tokens)
        if len(logged) and math.isfinite(logged.iloc[-1]):
            norm = float(logged.iloc[-1])
        else:  # a run logged before the metrics carried the norm
            norm = sum(float(module.w(n).double().pow(2).sum()) for n in trainable_names(cfg))
    return {"step": step, "fourier_gini": fourier_gini(weights[EMBED], cfg.operation, cfg.p),
            "logit_scale": logit_scale(logits), "weight_norm": norm}


class SignalCache:
    """Checkpoint rows already computed, per run directory and checkpoint file."""

    def __init__(self) -> None:
        self._rows: dict[tuple, dict[str, float] | None] = {}

    def table(self, view: TrainingView) -> pd.DataFrame:
        rows = []
        for step in view.steps:
            path = view.run.step_path(step)
            stat = path.stat()
            key = (str(view.run.path.resolve()), step, stat.st_size, stat.st_mtime_ns)
            if key not in self._rows:
                try:
                    self._rows[key] = checkpoint_signals(view, step)
                except store.CorruptCheckpoint:
                    self._rows[key] = None  # unreadable: left out, as the report leaves it out
            if self._rows[key] is not None:
                rows.append(self._rows[key])
        return pd.DataFrame(rows, columns=list(COLUMNS))
