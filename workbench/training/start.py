"""Starting a run: the split and the step-0 weights, written by the store."""

from __future__ import annotations

from pathlib import Path

import torch

from workbench import store
from workbench.config import RunConfig
from workbench.model import initial_weights
from workbench.store import new_provenance
from workbench.tasks import add_label_noise, make_dataset, make_split


def start_run(run_path: Path, cfg: RunConfig) -> store.Run:
    """A new run directory: config, provenance, the split, and the step-0 resume state."""
    ds = make_dataset(cfg.operation, cfg.p, cfg.table_seed)
    split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    split = add_label_noise(split, ds, cfg.label_noise, cfg.split_seed, cfg.p)
    state = store.ResumeState(step=0, weights=initial_weights(cfg), adam={}, rng=torch.get_rng_state())
    return store.create_run(run_path, cfg, new_provenance(cfg), split, state)
