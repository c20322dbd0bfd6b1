"""Probe settings: the thresholds that turn Fourier measurements into yes/no answers.

Every threshold a probe reads is a field here, with its source; the runner stores the settings a
run was probed with beside its tables, and a cached row is valid only for the settings its probe
reads (`probes.ProbeSpec.settings`).

Example:
    >>> ProbeSettings(neuron_threshold=0.5).key_rule
    'neurons'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

KEY_RULES = ("neurons", "embed", "wl")
NEURON_THRESHOLD = 0.85  # Nanda et al. 2023: a neuron belongs to frequency k if k explains >= 85% of its variance


@dataclass(frozen=True)
class ProbeSettings:
    """Thresholds of the key-frequency rules (Nanda et al. 2023 use 0.85 for neurons)."""

    neuron_threshold: float = NEURON_THRESHOLD  # a neuron belongs to frequency k if k explains >= this of its variance
    min_cluster_frac: float = 0.02  # ...and k is key if its cluster holds >= this fraction of all neurons
    norm_rel_threshold: float = 0.1  # embed / W_L rule: |F_k|^2 >= this x the largest ...
    norm_min_share: float = 1.5  # ... and >= this x the uniform share 1/K (a flat spectrum claims none)
    key_rule: str = "neurons"  # which rule's set drives the progress measures: neurons, embed, wl
    # the llc probe's SGLD sampler (`probes.llc`: calibrated on the fast preset, reasons there)
    llc_step_size: float = 1e-4  # SGLD step size epsilon
    llc_nbeta: float = 0.0  # inverse temperature n*beta; 0: n / log n (Watanabe's WBIC temperature)
    llc_localization: float = 1000.0  # gamma: pull of the chains toward the checkpoint
    llc_chains: int = 3
    llc_draws: int = 100  # SGLD steps per chain that count, after the burn-in
    llc_burnin: int = 50  # SGLD steps per chain dropped first
    llc_batch_size: int = 64
    llc_seed: int = 0

    def __post_init__(self) -> None:
        if self.key_rule not in KEY_RULES:
            raise ValueError(f"unknown key_rule {self.key_rule!r}; valid: {', '.join(KEY_RULES)}")
        for name in ("neuron_threshold", "min_cluster_frac", "norm_rel_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.norm_min_share < 0:
            raise ValueError(f"norm_min_share must be >= 0, got {self.norm_min_share}")
        for name in ("llc_step_size", "llc_chains", "llc_draws", "llc_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("llc_nbeta", "llc_localization", "llc_burnin"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.llc_seed <= 2**32 - 1 - self.llc_chains:  # chain c is seeded llc_seed + c (numpy's range)
            raise ValueError(f"llc_seed must lie in [0, {2**32 - 1 - self.llc_chains}], got {self.llc_seed}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The values of the named settings (what one probe reads)."""
        return {name: getattr(self, name) for name in names}


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(ProbeSettings))
SETTING_TYPES = {f.name: type(f.default) for f in dataclasses.fields(ProbeSettings)}  # str, float or int
