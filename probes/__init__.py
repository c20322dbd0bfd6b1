"""Probes: pure functions from one checkpoint (`probes.checkpoint.Checkpoint`) to a tidy table.

Each probe is ``probe(ckpt, key_freqs, settings) -> pandas.DataFrame`` with columns
``step, <keys...>, value``. Probes never read or write files, print or plot; the runner in
``workbench.probe`` owns loading, caching and I/O. Add a probe by writing its module, adding it
to `REGISTRY` with a version (bump the version whenever its numbers change, which invalidates
cached tables), and giving it an analytic test.

Example:
    >>> get_probe("fourier").fn(ckpt, key_freqs=(4, 17), settings=ProbeSettings())
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from probes import attention, fourier, progress, weights
from probes.checkpoint import KEY_RULES, Checkpoint, ProbeSettings


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    fn: Callable
    version: int
    keys: tuple[str, ...]  # the table's key columns between "step" and "value"
    doc: str


REGISTRY: dict[str, ProbeSpec] = {
    spec.name: spec
    for spec in (
        ProbeSpec("fourier", fourier.probe, 2, ("measure", "frequency"), "Fourier norms, key frequencies, Gini, logit fit"),
        ProbeSpec("progress", progress.probe, 1, ("measure", "frequency"), "restricted and excluded loss"),
        ProbeSpec("weights", weights.probe, 1, ("param",), "sum of squared weights"),
        ProbeSpec("attention", attention.probe, 1, ("measure", "head"), "attention from '=' per head"),
    )
}


def get_probe(name: str) -> ProbeSpec:
    """The registered probe ``name``; an unknown name raises KeyError listing the valid ones."""
    if name not in REGISTRY:
        raise KeyError(f"unknown probe {name!r}; valid probes: {', '.join(REGISTRY)}")
    return REGISTRY[name]


__all__ = ["KEY_RULES", "REGISTRY", "Checkpoint", "ProbeSettings", "ProbeSpec", "get_probe"]
