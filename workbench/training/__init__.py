"""Training: full-batch AdamW on the train split, one run at a time (`train`) or many stacked
into one model (`train_group`), with checkpoints, metrics and exact resume.

Modules: ``solo`` (`train`), ``schedule`` (checkpoint steps, learning rate), ``device``,
``start`` (`start_run`: split and step-0 weights), ``variants`` (losses, Grokfast filters,
orthogonal gradients), ``batched`` (`train_group`: the one training loop, a solo run being a group
of one), ``step`` (the step every run takes), ``lookup`` (a one-layer model's forward as table
lookups), ``stacked`` (the plain forward of deeper models, batched over members), ``flat`` (the
members' weights in one buffer, and AdamW over it), ``status`` (a member's status), ``watch`` (the forecast following training: the bar, stopping hopeless members), ``budget`` (the memory and disk a config needs, checked before it starts).
"""

from __future__ import annotations

from workbench.training.batched import group_configs, padding, train_group
from workbench.training.budget import check_fits, free_disk, needs
from workbench.training.device import pick_device
from workbench.training.lookup import lookup_forward, step_flops, step_macs
from workbench.training.schedule import checkpoint_steps
from workbench.training.solo import TrainingFailed, train
from workbench.training.stacked import stacked_forward
from workbench.training.start import start_run
from workbench.training.status import COMPLETE, FAILED, PENDING, STOPPED
from workbench.training.status import kind as status_kind
from workbench.training.step import Batch, GroupStep, MeanCrossEntropy
from workbench.training.variants import GradFilter, orthogonal_grad, stablemax_cross_entropy, training_loss
from workbench.training.watch import HOPELESS, ForecastWatch, StopRule

__all__ = ["check_fits", "free_disk", "needs", "Batch", "GroupStep", "MeanCrossEntropy", "lookup_forward", "step_flops", "step_macs", "start_run", "status_kind", "COMPLETE", "FAILED", "GradFilter", "PENDING", "STOPPED", "TrainingFailed", "checkpoint_steps", "group_configs", "orthogonal_grad", "padding", "pick_device", "stablemax_cross_entropy", "stacked_forward", "train", "train_group", "training_loss", "HOPELESS", "ForecastWatch", "StopRule"]
