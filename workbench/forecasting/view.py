"""What a forecast may read: the run as training alone shows it, up to one step.

`TrainingView` is the information barrier of `workbench.forecasting`. Built from a run directory
and a step s, it holds

- the config (everything that determined the weights, including the configured epochs);
- the training-set metrics of every evaluation at or before s: step, train loss, train
  accuracy, the sum of squared weights, the learning rate (the test loss and accuracy are
  dropped as the file is read, never kept);
- the steps of the checkpoints at or before s, and their weights on request (a later step is
  refused);
- the local learning coefficient's rows at or before s, where the run has an ``llc`` table
  (λ̂ is sampled on the training set only: `probes.llc`).

Nothing else: no test split, no probe table that reads test inputs, no key frequencies fixed
from a later checkpoint. A test removes every later file and scrambles every test number in a
copy of a run and checks that the forecast at s does not change.

Example:
    >>> view = training_view(workbench.open_run("demo"), 200)
    >>> view.at_step, "test_acc" in view.metrics.columns
    (200, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
import torch

from workbench import store
from workbench.config import RunConfig
from workbench.errors import UsageError

TRAIN_COLUMNS = ("step", "train_loss", "train_acc", "weight_norm", "lr")


@dataclass(frozen=True)
class TrainingView:
    """A run up to ``at_step``, training-set information only (see the module docstring)."""

    run: store.Run = field(repr=False)
    at_step: int
    config: RunConfig
    metrics: pd.DataFrame = field(repr=False)  # TRAIN_COLUMNS, steps <= at_step
    steps: tuple[int, ...]  # checkpoint steps <= at_step

    def weights(self, step: int) -> dict[str, torch.Tensor]:
        if step not in self.steps:
            raise UsageError(f"step {step} is not a checkpoint at or before {self.at_step}")
        return self.run.weights(step)

    @cached_property
    def train_tokens(self) -> torch.Tensor:
        """The training inputs [n_train, 3] (no labels: the forecaster only reads logits)."""
        return self.run.dataset.tokens[self.run.split.train]

    @cached_property
    def train_labels(self) -> torch.Tensor:
        """The training labels [n_train] (the noisy ones where the run has label noise): what training fits."""
        return self.run.split.train_targets(self.run.dataset)

    @cached_property
    def llc(self) -> pd.DataFrame | None:
        """Rows ``step, value`` of the llc probe's estimate at or before ``at_step``, or None."""
        table = self.run.probe_table("llc")
        if table is None or "measure" not in table.columns:
            return None
        rows = table[(table.measure == "llc") & (table.step <= self.at_step)]
        return rows[["step", "value"]].sort_values("step").reset_index(drop=True) if len(rows) else None


def _training_rows(run: store.Run) -> pd.DataFrame:
    """Every metrics row's `TRAIN_COLUMNS` (the test numbers dropped as the file is read), by step."""
    rows = [{k: r.get(k) for k in TRAIN_COLUMNS} for r in run.metrics_rows]
    metrics = pd.DataFrame(rows, columns=list(TRAIN_COLUMNS), dtype=float)
    return metrics.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


def training_views(run: store.Run, steps) -> list[TrainingView]:
    """`training_view` at each of ``steps`` (the metrics read once): what fitting and evaluation use."""
    store.check_consistent(run)
    every, have = _training_rows(run), run.steps
    return [_view(run, s, every, have) for s in steps]


def training_view(run: store.Run, at_step: int | None = None) -> TrainingView:
    """The view of ``run`` at ``at_step`` (default: its last checkpoint). A step outside the
    run's checkpoints, or a run with fewer than two, is a `UsageError` naming what it has."""
    steps = run.steps
    if len(steps) < 2:
        if "imported_from" in run.provenance and run.is_complete:  # `make train` alone does nothing for it
            todo = (f"import a file with more checkpoints, or train it on past its epochs: make train RUN={run.name} "
                    "EXTEND=1 EPOCHS=N")
        else:
            todo = f"train it further: make train RUN={run.name}"
        raise UsageError(f"run {run.name!r} has {len(steps)} checkpoint(s); a forecast needs at least two ({todo})")
    store.check_consistent(run)  # a cut log, or another run's state: refused, not forecast from
    return _view(run, steps[-1] if at_step is None else at_step, _training_rows(run), steps)


def _view(run: store.Run, at_step: int, every: pd.DataFrame, steps: list[int]) -> TrainingView:
    if not steps[0] <= at_step <= steps[-1]:
        raise UsageError(f"--at {at_step} lies outside run {run.name!r}'s checkpoints ({steps[0]} to {steps[-1]}); "
                         f"give a step in that range")
    metrics = every[every.step <= at_step].reset_index(drop=True)
    if metrics.empty or not metrics.train_loss.notna().any():
        raise UsageError(f"run {run.name!r} has no training metrics at or before step {at_step} (metrics.jsonl is "
                         "missing, empty or damaged); restore it from a copy of the run, or retrain it")
    return TrainingView(run=run, at_step=int(at_step), config=run.config, metrics=metrics,
                        steps=tuple(s for s in steps if s <= at_step))
