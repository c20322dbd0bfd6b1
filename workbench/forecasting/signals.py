"""The signals a forecast reads, computed from a `TrainingView`: one row per checkpoint, plus the run's fit step.

Per checkpoint at or before the view's step (estimators: `workbench.forecasting.estimators`):

    step             the checkpoint's step
    fourier_gini     the embedding's Fourier sparsity (Nanda et al. 2023)
    logit_scale      RMS of the centred training logits (arXiv 2606.18465)
    weight_norm      V = Σ w² over the trainable weights (the metrics' own column where the run
                     logged it, else the checkpoint's sum of squares)
    restricted_loss  the key-frequency logits' cross-entropy on the training inputs
    excluded_loss    the logits without the key frequencies, on the training inputs
    memorisation_ratio   ρ: the energy of the logits outside the key frequencies per unit of
                     theirs, on the training inputs (the memorising circuit per generalising one)
    n_keys           how many key frequencies the embedding has at this checkpoint

Restricted and excluded loss need the model's logits at every (a, b) of the task (the Fourier
directions span the whole grid) in the coordinates where the operation is addition (discrete
logs for × and ÷, `probes.coordinates`); only the training inputs' labels are read. An
operation without such coordinates (the polynomial tasks) gets NaN for both.

`fit_step` is the first evaluation with train accuracy >= 99% (`probes.outcome.ACC`): the end of
memorisation. An unreadable checkpoint is left out of the table (the report leaves it out too).

`SignalCache` keeps the rows already computed, keyed by the checkpoint file's size and
modification time and `SIGNALS_VERSION` (a rewritten checkpoint, or a change of what is computed,
is computed again); with ``persist=True`` it also keeps them in the run's probe folder
(`workbench.store.read_signal_rows`), so fitting and evaluating many runs reads each checkpoint
once across commands. A row depends on its own checkpoint only, so a cached row of a later
checkpoint never reaches a forecast made before it (the view lists only its own steps).

Example:
    >>> from workbench.forecasting import training_view
    >>> view = training_view(workbench.open_run("demo"), 300)
    >>> list(SignalCache().table(view).columns)[:4]
    ['step', 'fourier_gini', 'logit_scale', 'weight_norm']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import torch

from probes.coordinates import LOG_SIGN, discrete_logs, in_log_coordinates, powers, primitive_root
from probes.outcome import ACC
from workbench import store
from workbench.config import RunConfig
from workbench.forecasting.estimators import fourier_gini, key_frequencies_of, logit_scale, restricted_losses
from workbench.forecasting.view import TrainingView
from workbench.model import EMBED, trainable_module, trainable_names
from workbench.tasks import SUM_SIGN, grid_tokens

COLUMNS = ("step", "fourier_gini", "logit_scale", "weight_norm", "restricted_loss", "excluded_loss",
           "memorisation_ratio", "n_keys")
SIGNALS_VERSION = 3  # bump when a column's definition changes: cached rows of another version are recomputed


def fit_step(view: TrainingView) -> int | None:
    """The first evaluation step with train accuracy >= ACC, or None (not fitted yet)."""
    fitted = view.metrics.step[view.metrics.train_acc >= ACC]
    return int(fitted.iloc[0]) if len(fitted) else None


@dataclass(frozen=True)
class GroupGrid:
    """The task's (a, b) grid in the coordinates where the operation is a ± b: ``tokens`` [n², 3]
    a-major, ``classes`` [n] (the token of each class position), ``position`` [p] (each token's
    coordinate, −1 off the group: 0 in discrete logs) and ``sign``."""

    n: int
    sign: int
    tokens: torch.Tensor
    classes: torch.Tensor
    position: torch.Tensor


@lru_cache(maxsize=16)
def group_grid(operation: str, p: int) -> GroupGrid | None:
    """The `GroupGrid` of a task, or None where it has no a ± b coordinates."""
    if in_log_coordinates(operation, p):
        g = primitive_root(p)
        idx = powers(p, g)  # token at log coordinate i
        a, b = torch.meshgrid(idx, idx, indexing="ij")
        tokens = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((len(idx) ** 2,), p)], dim=1)
        position = discrete_logs(p, g)
        return GroupGrid(p - 1, LOG_SIGN[operation], tokens, idx, position)
    if operation not in SUM_SIGN:
        return None
    return GroupGrid(p, SUM_SIGN[operation], grid_tokens(p), torch.arange(p), torch.arange(p))


def _restricted(cfg: RunConfig, module, view: TrainingView, keys: tuple[int, ...]) -> tuple[float, float, float]:
    grid = group_grid(cfg.operation, cfg.p)
    if grid is None:
        return math.nan, math.nan, math.nan
    pos = grid.position
    a, b = pos[view.train_tokens[:, 0]], pos[view.train_tokens[:, 1]]
    y = pos[view.train_labels]
    inside = (a >= 0) & (b >= 0) & (y >= 0)  # 0 has no discrete log: those inputs are off the group
    logits = module(grid.tokens)[:, grid.classes].reshape(grid.n, grid.n, grid.n)
    return restricted_losses(logits, (a * grid.n + b)[inside], y[inside], grid.sign, keys)


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
        embed = weights[EMBED][: cfg.p]
        if in_log_coordinates(cfg.operation, cfg.p):
            embed = embed[powers(cfg.p, primitive_root(cfg.p))]
        keys = key_frequencies_of(embed)
        restricted, excluded, ratio = _restricted(cfg, module, view, keys)
    return {"step": step, "fourier_gini": fourier_gini(weights[EMBED], cfg.operation, cfg.p),
            "logit_scale": logit_scale(logits), "weight_norm": norm, "restricted_loss": restricted,
            "excluded_loss": excluded, "memorisation_ratio": ratio, "n_keys": len(keys)}


class SignalCache:
    """Checkpoint rows already computed, per run directory and checkpoint file; ``persist``: also
    kept in each run's probe folder (the module docstring)."""

    def __init__(self, persist: bool = False) -> None:
        self._rows: dict[tuple, dict[str, float] | None] = {}
        self.memo: dict[tuple, float] = {}  # the forecaster's own per-checkpoint results (`forecaster._generalised_at`)
        self.persist = persist
        self._loaded: set[str] = set()

    def _key(self, view: TrainingView, step: int) -> tuple:
        stat = view.run.step_path(step).stat()
        return (str(view.run.path.resolve()), step, stat.st_size, stat.st_mtime_ns, SIGNALS_VERSION)

    def _load(self, run: store.Run) -> None:
        where = str(run.path.resolve())
        if where in self._loaded:
            return
        self._loaded.add(where)
        for row in store.read_signal_rows(run):
            if int(row["version"]) != SIGNALS_VERSION or not set(COLUMNS) <= set(row):
                continue  # another version's row: computed again
            key = (where, int(row["step"]), int(row["size"]), int(row["mtime_ns"]), SIGNALS_VERSION)
            self._rows.setdefault(key, {c: row[c] for c in COLUMNS})

    def _save(self, run: store.Run) -> None:
        where = str(run.path.resolve())
        rows = [{"step": k[1], "size": k[2], "mtime_ns": k[3], "version": k[4], **{c: v[c] for c in COLUMNS[1:]}}
                for k, v in self._rows.items() if k[0] == where and v is not None]
        store.write_signal_rows(run, pd.DataFrame(rows, columns=["step", "size", "mtime_ns", "version", *COLUMNS[1:]]))

    def table(self, view: TrainingView) -> pd.DataFrame:
        if self.persist:
            self._load(view.run)
        rows, new = [], False
        for step in view.steps:
            key = self._key(view, step)
            if key not in self._rows:
                new = True
                try:
                    self._rows[key] = checkpoint_signals(view, step)
                except store.CorruptCheckpoint:
                    self._rows[key] = None  # unreadable: left out, as the report leaves it out
            if self._rows[key] is not None:
                rows.append(self._rows[key])
        if new and self.persist:
            self._save(view.run)
        return pd.DataFrame(rows, columns=list(COLUMNS))
