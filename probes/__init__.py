"""Probes: pure functions from one evaluated checkpoint (`probes.grid.CheckpointOnGrid`) to a tidy table.

Each probe is ``probe(inp, key_freqs, settings) -> pandas.DataFrame`` with columns
``step, <keys...>, value``. Probes never read or write files, print or plot, and never import
``workbench`` (a test enforces it); the runner (`workbench.probing`) owns loading, caching and I/O.

A `ProbeSpec` says what a probe's numbers depend on, and that is exactly what the cache keys
its rows by: the checkpoint's content always, the probe's ``version``, the ``settings`` it reads,
the key frequencies if ``reads_key_freqs``, and the activation engine if ``reads_activations``.
Declare too little and a stale row survives a change; the runner also checks every returned
table's columns against ``keys``.

A probe with ``default=False`` (``llc``: seconds per checkpoint) runs only when named; one
with ``parallel`` is measured in worker processes, one checkpoint each; one that
``reads_model`` gets the trainer's module at the checkpoint in ``CheckpointOnGrid.model``. A
probe with ``in_group`` (the Fourier ones) reads the checkpoint in the coordinates where its
operation is addition (`probes.coordinates.group_view`: discrete logs for × and ÷); the others
read it as the model sees it, in tokens.

A measure that exists only where the task is a ± b in its coordinates (a restricted loss, a
logit fit) is listed in the spec's ``sum_measures``; for a task with no such direction the probe
writes it as one row with value NaN, and the summary and the report say which and why
(`not_applicable`).

Add a probe by writing its module, adding its spec to `REGISTRY` (bump ``version`` whenever its
numbers change), and giving it an analytic test (CONTRIBUTING.md).

Example:
    >>> inp = workbench.evaluate_on_grid(workbench.open_run("demo"), 300)   # a probes.CheckpointOnGrid
    >>> frame = get_probe("fourier").fn(inp, key_freqs=(4, 7), settings=ProbeSettings())
    >>> list(frame.columns) == list(get_probe("fourier").columns)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from probes import attention, clock_pizza, complexity, coordinates, effective, fourier, llc, progress, weights
from probes.grid import CheckpointOnGrid
from probes.settings import KEY_RULES, SETTING_NAMES, ProbeSettings
from probes.table import INTEGER_KEYS


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    fn: Callable
    version: int
    keys: tuple[str, ...]  # the table's key columns between "step" and "value"
    doc: str
    reads_activations: bool = True  # reads logits / neuron_acts / attention (so depends on the engine)
    reads_key_freqs: bool = True
    settings: tuple[str, ...] = ()  # the `ProbeSettings` fields it reads
    default: bool = True  # measured when no probes are named; False: opt-in (costly), by name only
    reads_model: bool = False  # reads `CheckpointOnGrid.model` (a trainable copy of the checkpoint's module)
    parallel: bool = False  # costly per checkpoint: the runner measures checkpoints in worker processes
    in_group: bool = True  # reads `coordinates.group_view(inp)` (log coordinates for x and /), else token coordinates
    sum_measures: tuple[str, ...] = ()  # measures that need the a +/- b direction: NaN rows where a task has none

    def __post_init__(self) -> None:
        unknown = set(self.settings) - set(SETTING_NAMES)
        if unknown:
            raise ValueError(f"probe {self.name!r} declares unknown settings {sorted(unknown)}")

    @property
    def columns(self) -> tuple[str, ...]:
        return ("step", *self.keys, "value")


REGISTRY: dict[str, ProbeSpec] = {
    spec.name: spec
    for spec in (
        ProbeSpec("fourier", fourier.probe, 7, fourier.KEYS,
                  "Fourier norms, key frequencies, Gini, logit fit", sum_measures=fourier.SUM_MEASURES,
                  settings=("neuron_threshold", "min_cluster_frac", "norm_rel_threshold", "norm_min_share")),
        ProbeSpec("progress", progress.probe, 4, ("measure", "frequency"), "restricted and excluded loss",
                  sum_measures=progress.SUM_MEASURES),
        ProbeSpec("weights", weights.probe, 2, ("param",), "sum of squared weights",
                  reads_activations=False, reads_key_freqs=False, in_group=False),
        ProbeSpec("attention", attention.probe, 3, ("measure", "layer", "head"), "attention from '=' per block and head"),
        ProbeSpec("clock_pizza", clock_pizza.probe, 2, ("measure",),
                  "gradient symmetricity and distance irrelevance (clock or pizza)", reads_key_freqs=False,
                  reads_model=True, sum_measures=clock_pizza.SUM_MEASURES),
        ProbeSpec("complexity", complexity.probe, 2, ("measure",),
                  "active neuron fraction, weight entropy, parameter count", reads_key_freqs=False, in_group=False),
        ProbeSpec("effective", effective.probe, 1, ("measure",),
                  "effective parameters of a least-squares readout on the final features (Curth et al. 2023)",
                  reads_key_freqs=False, in_group=False),
        ProbeSpec("llc", llc.probe, 3, ("measure",), "local learning coefficient (devinterp SGLD; opt-in, slow)",
                  reads_activations=False, reads_key_freqs=False, default=False, reads_model=True, parallel=True,
                  in_group=False,
                  settings=tuple(name for name in SETTING_NAMES if name.startswith("llc_"))),
    )
}


def not_applicable() -> dict[str, tuple[str, ...]]:
    """probe -> the measures it writes as NaN ("not applicable") for a task with no a +/- b
    direction (``CheckpointOnGrid.sign`` 0: the polynomial tasks, and × mod a composite p)."""
    return {spec.name: spec.sum_measures for spec in REGISTRY.values() if spec.sum_measures}


def get_probe(name: str) -> ProbeSpec:
    """The registered probe ``name``; an unknown name raises KeyError listing the valid ones."""
    if name not in REGISTRY:
        raise KeyError(f"unknown probe {name!r}; valid probes: {', '.join(REGISTRY)}")
    return REGISTRY[name]


group_view = coordinates.group_view

__all__ = ["INTEGER_KEYS", "group_view", "KEY_RULES", "REGISTRY", "CheckpointOnGrid", "ProbeSettings", "ProbeSpec", "get_probe",
           "not_applicable"]
