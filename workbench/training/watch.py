"""Following runs through training with the forecaster: the progress bar's forecast, and stopping hopeless members.

A `ForecastWatch` goes with one training session (a solo run is a group of one). At checkpoints,
at most every 2% of the epochs, it forecasts each member still training from its own files, as
``python -m workbench forecast`` would at that step (`workbench.forecasting`: training-set
information up to the step only), and keeps each member's one-line forecast for the bar (a
group's bar shows the count per regime; a member whose regime changes gets a note).

With a `StopRule` it also stops the members that cannot generalise: a member whose forecast
says p_generalise < ``threshold`` in a regime that cannot generalise (`HOPELESS`: memorisation,
confusion, no structure) at ``patience`` checks in a row is stopped at that checkpoint, its
files as they are (resumable: ``sweep ... --extend``), with the status ``stopped: forecast (...)``.
Because a forecast at step s reads nothing after s, replaying the rule over complete runs gives
the decisions it would have taken live (`workbench.forecasting.evaluation.stop_tradeoff`).

Example:
    >>> rule = StopRule(threshold=0.05, patience=3)
    >>> rule.threshold, rule.patience
    (0.05, 3)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from probes.outcome import ACC
from workbench import store
from workbench.errors import UsageError
from workbench.forecasting import SignalCache, forecast_view, training_view
from workbench.monitor import Monitor
from workbench.training.status import STOPPED

HOPELESS = ("memorisation", "confusion", "no_structure")
CHECKS_PER_RUN = 50  # forecasts at most every epochs / 50 steps


@dataclass(frozen=True)
class StopRule:
    """Stop a member after ``patience`` forecasts in a row with p_generalise < ``threshold`` in a `HOPELESS` regime."""

    threshold: float = 0.05
    patience: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float) or not 0.0 < self.threshold < 1.0:
            raise UsageError(f"--stop-hopeless takes a probability strictly between 0 and 1 (the p_generalise below "
                             f"which a member is stopped), got {self.threshold!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or not 1 <= self.patience <= 1000:
            raise UsageError(f"--patience takes a whole number of forecasts from 1 to 1000, got {self.patience!r}")

    def hopeless(self, forecast) -> bool:
        return forecast.p_generalise < self.threshold and forecast.regime in HOPELESS


def stopped_status(forecast, step: int) -> str:
    return (f"{STOPPED}: forecast (p_generalise {forecast.p_generalise:.2f}, {forecast.regime}, at step {step:,}; "
            "resume with --extend)")


class ForecastWatch:
    """The forecaster following one training session's members (module docstring)."""

    def __init__(self, runs: Sequence[store.Run], epochs: int, stop: StopRule | None = None,
                 monitor: Monitor | None = None):
        self.every = max(1, epochs // CHECKS_PER_RUN)
        self.stop, self.monitor = stop, monitor
        self.cache = SignalCache()
        self.fitted = {r.name: False for r in runs}
        self.forecasts: dict[str, object] = {}
        self.low = dict.fromkeys(self.fitted, 0)
        self.last: int | None = None

    def status(self, names: Sequence[str], train_acc: Sequence[float]) -> dict[str, str]:
        """What the bar shows after an evaluation: one member's forecast, or a group's count per regime."""
        for name, acc in zip(names, train_acc, strict=True):
            self.fitted[name] = self.fitted[name] or acc >= ACC
        shown = [self.forecasts[n] for n in names if n in self.forecasts]
        if not shown:
            return {}
        if len(names) == 1:
            return {"forecast": shown[0].short()}
        counts = Counter(f.regime for f in shown)
        return {"forecast": ", ".join(f"{n} {regime}" for regime, n in counts.most_common())}

    def checkpoint(self, step: int, runs: Sequence[store.Run]) -> dict[str, str]:
        """Forecast the members (at most every `every` steps); returns {member: status} for those to stop now."""
        if self.last is not None and step - self.last < self.every:
            return {}
        self.last = step
        stops = {}
        for run in runs:
            if not self.fitted[run.name] and self.stop is None:
                continue  # the bar shows a forecast once the run has fitted
            if len(run.steps) < 2:
                continue
            f = forecast_view(training_view(run, step), cache=self.cache)
            before = self.forecasts.get(run.name)
            self.forecasts[run.name] = f
            if self.monitor is not None and len(self.fitted) > 1 and (before is None or before.regime != f.regime):
                self.monitor.note(f"  {run.name} at step {step:,}: {f.short()} (p_generalise {f.p_generalise:.2f})")
            if self.stop is not None:
                self.low[run.name] = self.low[run.name] + 1 if self.stop.hopeless(f) else 0
                if self.low[run.name] >= self.stop.patience:
                    stops[run.name] = stopped_status(f, step)
        return stops
