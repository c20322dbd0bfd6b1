"""What a run needs before it starts: memory to train it and disk for its files, estimated from its config.

Nothing is allocated or written to find out: the estimate reads the config's shapes
(`workbench.model.initial_shapes`) and the task's size, and a config that cannot fit is refused in
one line naming the number, before the run folder exists. The estimate is deliberately generous
(it counts every tensor the step keeps alive, with autograd's saved copies, and takes the plain
forward's activations, which exceed the table-lookup step's), so it refuses only configs that
could not fit; it is not a promise that everything below it fits with room to spare.

    memory  = weights x (weights, gradient, 2 AdamW moments, checkpoint copies: 6)
              + the task's inputs (tokens and labels: 32 bytes each of p^2)
              + per training input, what the forward keeps for the backward, x 2 for the backward's own
              + per test input, one forward without gradients
    disk    = (checkpoints + 3, for the resume state's weights and moments) x weights x 4 bytes
              + metrics (~250 bytes per evaluation)

Example:
    >>> from workbench.config import load_config
    >>> need = needs(load_config("fast"))
    >>> need.memory < 2**30, need.disk < 2**30
    (True, True)
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.config import RunConfig
from workbench.errors import UsageError
from workbench.model import initial_shapes

GIB = 2**30


@dataclass(frozen=True)
class Needs:
    """Bytes of memory to train a run, bytes of disk for its files, and what they are made of."""

    memory: int
    disk: int
    weights: int  # number of weights
    checkpoints: int


def _activations_per_input(cfg: RunConfig) -> int:
    """float32 values one training input keeps alive through a step (the plain forward's, which
    exceed the lookup step's): per layer and position, queries, keys, values, attention output,
    the residual stream twice and the MLP's pre- and post-activations; then the logits, with their
    float64 loss copies."""
    d_attn = cfg.n_heads * cfg.d_head
    per_position = 4 * d_attn + 2 * cfg.d_model + 2 * cfg.d_mlp
    return 3 * cfg.n_layers * per_position + cfg.p * 5  # logits: float32 + two float64 copies


def checkpoint_count(cfg: RunConfig) -> int:
    """At most how many checkpoints the run writes (`schedule.checkpoint_steps`, counted without listing them)."""
    regular = cfg.epochs // cfg.ckpt_every + 1 if cfg.ckpt_every else 1
    return regular + 1 + cfg.ckpt_log


def needs(cfg: RunConfig, members: int = 1) -> Needs:
    """What training ``cfg`` needs (``members`` of that size trained as one group)."""
    weights = sum(math.prod(shape) for shape in initial_shapes(cfg).values())
    inputs = cfg.p * cfg.p
    n_train = math.ceil(cfg.frac_train * inputs)
    per_input = _activations_per_input(cfg)
    memory = members * (4 * (6 * weights + 2 * n_train * per_input + (inputs - n_train) * per_input // 3)) + 32 * inputs
    n_ckpt = checkpoint_count(cfg)
    disk = members * ((n_ckpt + 3) * 4 * weights + 250 * (cfg.epochs // cfg.eval_every + 1))
    return Needs(memory=memory, disk=disk, weights=weights, checkpoints=n_ckpt)


def available_memory() -> int:
    """Bytes of memory this machine can give a new allocation now (MemAvailable; the physical
    memory where /proc/meminfo is absent)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse on a guess


def free_disk(folder: Path) -> int:
    """Bytes free on the filesystem that holds ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def check_fits(cfg: RunConfig, root: Path | None, members: int = 1, what: str = "this run", device: str = "cpu") -> Needs:
    """Refuse, in one line naming the numbers, a config whose training would not fit this
    machine's memory (on a GPU: its memory) or whose files would not fit the disk under ``root``
    (no disk check without a ``root``)."""
    need = needs(cfg, members)
    sizes = f"{need.weights:,} weights, p={cfg.p}, d_model={cfg.d_model}, d_mlp={cfg.d_mlp}, n_layers={cfg.n_layers}"
    have = available_memory()
    where = "this machine's available memory"
    if str(device).startswith("cuda"):
        import torch

        have = torch.cuda.mem_get_info(torch.device(device))[0]
        where = "the GPU's free memory"
    if need.memory > have:
        raise UsageError(f"{what} needs about {need.memory / GIB:,.1f} GiB of memory to train ({sizes}), more than "
                         f"{where} ({have / GIB:,.1f} GiB); use smaller sizes")
    free = free_disk(root) if root is not None else need.disk
    if need.disk > free:
        raise UsageError(f"{what} needs about {need.disk / GIB:,.1f} GiB of disk for {need.checkpoints:,} checkpoints "
                         f"of {need.weights:,} weights, more than is free under {root} ({free / GIB:,.1f} GiB); free "
                         "space, or checkpoint less often (ckpt_every, ckpt_log)")
    return need
