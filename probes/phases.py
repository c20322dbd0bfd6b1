"""Phases of grokking, read off the metrics and probe tables (Nanda et al. 2023, Sec. 5.3).

Nanda et al. split training into memorisation, circuit formation and cleanup, followed by the
grokked state. The criteria below turn their verbal descriptions into steps; every threshold
is a named constant so a reader can check and change them. A phase that never happens is None.

    memorization       first evaluation step with train accuracy >= 99%.
    circuit_formation  first checkpoint at or after memorisation where, compared with the
                       memorisation checkpoint, the restricted loss has fallen by >= 10% and
                       the excluded loss has risen by >= 10%, while test accuracy is still
                       < 50% (the test loss is still high). Needs key frequencies: a run with
                       none (a random model, the random-table task) never forms a circuit.
    cleanup            first evaluation step after circuit formation where the test loss has
                       fallen to <= 1/2 of its peak since memorisation while the total sum of
                       squared weights (at the latest checkpoint) is below its peak since
                       memorisation, i.e. still being decayed away.
    grokked            first evaluation step with test accuracy >= 99% once memorised (and after
                       circuit formation when probes are available). A run that never reaches
                       it, such as one that only memorises, is not grokked.

Example:
    >>> results = workbench.probe("demo", progress=False)
    >>> t = results.tables
    >>> phases = detect_phases(results.run.metrics, t["progress"], t["weights"], key_freqs=[4, 7])
    >>> sorted(phases.steps)      # the step each phase began (None: not reached; smoke does not grok)
    ['circuit_formation', 'cleanup', 'grokked', 'memorization']
    >>> sorted(phases.to_dict())  # what phases.json holds
    ['criteria', 'key_freqs', 'steps']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ACC_DONE = 0.99
TEST_ACC_STILL_LOW = 0.5
RESTRICTED_FALL = 0.10
EXCLUDED_RISE = 0.10
TEST_LOSS_FALL = 0.5

CRITERIA = {
    "memorization": f"first step with train accuracy >= {ACC_DONE:.0%}",
    "circuit_formation": (
        f"first checkpoint >= memorization with restricted loss down >= {RESTRICTED_FALL:.0%} and excluded loss "
        f"up >= {EXCLUDED_RISE:.0%} vs the memorization checkpoint, test accuracy still < {TEST_ACC_STILL_LOW:.0%}"
    ),
    "cleanup": (
        f"first step after circuit formation with test loss <= {TEST_LOSS_FALL:g} x its peak since memorization "
        "and total sum of squared weights below its peak since memorization"
    ),
    "grokked": f"first step with test accuracy >= {ACC_DONE:.0%} after memorization",
}


NO_CIRCUIT = "no key frequencies: no Fourier circuit was found, so no circuit formation or cleanup"


@dataclass(frozen=True)
class Phases:
    """The step at which each phase begins (None: it never happened), the criteria that decided
    it, and the key frequencies the progress measures used."""

    steps: dict[str, int | None]
    key_freqs: list[int] | None = None
    criteria: dict[str, str] = field(default_factory=lambda: dict(CRITERIA))

    @property
    def note(self) -> str | None:
        return NO_CIRCUIT if self.key_freqs is not None and not self.key_freqs else None

    def phase_at(self, step: int) -> str:
        """The phase ``step`` falls in: the latest phase begun at or before it (phases in order
        memorization, circuit_formation, cleanup, grokked), or ``"initialisation"`` before them."""
        order = list(CRITERIA)
        begun = [(s, order.index(name) if name in order else -1, name) for name, s in self.steps.items()
                 if s is not None and s <= step]
        return max(begun)[2] if begun else "initialisation"

    def to_dict(self) -> dict:
        out = {"steps": dict(self.steps), "criteria": dict(self.criteria)}
        if self.key_freqs is not None:
            out["key_freqs"] = list(self.key_freqs)
        if self.note:
            out["note"] = self.note
        return out


def _series(table, measure_col: str, measure: str) -> dict[int, float]:
    """{step: value} of one measure's run-level rows (those with no frequency)."""
    if table is None or len(table) == 0:
        return {}
    rows = table[(table[measure_col] == measure)]
    if "frequency" in rows:
        rows = rows[rows["frequency"].isna()]
    return {int(s): float(v) for s, v in zip(rows["step"], rows["value"], strict=True)}


def detect_phases(metrics, progress=None, weights=None, key_freqs=None) -> Phases:
    """metrics: DataFrame (step, train_acc, test_acc, test_loss, ...); progress, weights: the probe
    tables (or None); key_freqs: the run's key frequencies (an empty list means no circuit exists,
    so there is no circuit formation or cleanup; None: not known)."""
    steps: dict[str, int | None] = dict.fromkeys(CRITERIA)
    key_freqs = None if key_freqs is None else list(key_freqs)
    m = metrics.sort_values("step")
    memorised = m[m.train_acc >= ACC_DONE]
    if len(memorised):
        steps["memorization"] = mem = int(memorised.step.iloc[0])
    else:
        return Phases(steps, key_freqs)

    restricted = _series(progress, "measure", "restricted_loss")
    excluded = _series(progress, "measure", "excluded_loss")
    norms = _series(weights, "param", "total")
    test_acc = dict(zip(m.step.astype(int), m.test_acc, strict=True))

    ckpts = sorted(s for s in restricted if s in excluded)
    base = next((s for s in ckpts if s >= mem), None)
    has_circuit = key_freqs is None or len(key_freqs) > 0
    if has_circuit and base is not None and math.isfinite(restricted[base]):
        for s in ckpts:
            if s < base:
                continue
            low_test = test_acc.get(s, 0.0) < TEST_ACC_STILL_LOW
            if (low_test and restricted[s] <= (1 - RESTRICTED_FALL) * restricted[base]
                    and excluded[s] >= (1 + EXCLUDED_RISE) * excluded[base]):
                steps["circuit_formation"] = s
                break

    after_mem = m[m.step >= mem]
    if steps["circuit_formation"] is not None:
        peak_loss = -math.inf
        peak_norm = -math.inf
        norm_steps = sorted(norms)
        for s, loss in zip(after_mem.step.astype(int), after_mem.test_loss, strict=True):
            peak_loss = max(peak_loss, loss)
            latest = [n for n in norm_steps if mem <= n <= s]
            if latest:
                peak_norm = max(peak_norm, max(norms[n] for n in latest))
            if s <= steps["circuit_formation"]:
                continue
            if latest and loss <= TEST_LOSS_FALL * peak_loss and norms[latest[-1]] < peak_norm:
                steps["cleanup"] = s
                break

    grok = after_mem[after_mem.test_acc >= ACC_DONE]
    if progress is not None and steps["circuit_formation"] is not None:
        grok = grok[grok.step >= steps["circuit_formation"]]
    if len(grok):
        steps["grokked"] = int(grok.step.iloc[0])
    return Phases(steps, key_freqs)
