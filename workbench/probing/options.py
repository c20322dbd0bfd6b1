"""How a run is probed: the probe settings, the activation engine, and key frequencies if given.

A run has one current set of options, stored with its results (``probes/settings.json``).
`make probe` and `make report` use it; what a command changes (``SET=key=value``, ``ENGINE=``,
``--key-freqs``) replaces just that part and becomes the run's current set, so a report always
shows what the tables were made with, and a later command never silently undoes an earlier one.

Example:
    >>> options = ProbeOptions().changed({"neuron_threshold": "0.5"}, engine="bridge")
    >>> options.describe()
    'neuron_threshold=0.5 (default 0.85); engine bridge; key frequencies from the run'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.settings import SETTING_NAMES, SETTING_TYPES, ProbeSettings
from workbench.errors import UsageError
from workbench.probing.engines import DEFAULT_ENGINE, check_engine

AUTO = "auto"  # --key-freqs auto: take them from the run again


def settings_from(overrides: Mapping[str, Any] | None, base: ProbeSettings | None = None) -> ProbeSettings:
    """``base`` (default: the defaults) with ``key=value`` overrides; bad keys or values are a `UsageError`."""
    values: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in SETTING_NAMES:
            raise UsageError(f"unknown probe setting {key!r}; valid: {', '.join(SETTING_NAMES)}")
        values[key] = _typed(key, value)
    try:
        return dataclasses.replace(base or ProbeSettings(), **values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _typed(key: str, value: Any) -> Any:
    kind = SETTING_TYPES[key]
    if kind is str:
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"probe setting {key} must be a number, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise UsageError(f"probe setting {key} must be a whole number, got {value!r}")
        return int(number)
    return number


def parse_key_freqs(text: str) -> tuple[int, ...] | None:
    """``"3,4,24"`` -> (3, 4, 24); ``"auto"`` -> None (from the run's final checkpoint)."""
    if text.strip() == AUTO:
        return None
    try:
        return tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise UsageError(f"key frequencies must be comma-separated integers or 'auto', got {text!r}") from None


@dataclass(frozen=True)
class ProbeOptions:
    """settings: the thresholds; engine: how activations are computed (`workbench.probing.engines.ENGINES`);
    key_freqs: given key frequencies, or None to take them from the run's final checkpoint."""

    settings: ProbeSettings = field(default_factory=ProbeSettings)
    engine: str = DEFAULT_ENGINE
    key_freqs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_engine(self.engine)

    def changed(self, overrides: Mapping[str, Any] | None = None, engine: str | None = None,
                key_freqs: Sequence[int] | str | None = None) -> ProbeOptions:
        """These options with what a command gives replaced (None: keep; key_freqs "auto": clear)."""
        freqs = self.key_freqs
        if isinstance(key_freqs, str):
            freqs = parse_key_freqs(key_freqs)
        elif key_freqs is not None:
            freqs = tuple(sorted(set(int(k) for k in key_freqs)))
        return ProbeOptions(settings=settings_from(overrides, self.settings) if overrides else self.settings,
                            engine=engine if engine is not None else self.engine, key_freqs=freqs)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "engine": self.engine,
                "key_freqs": None if self.key_freqs is None else list(self.key_freqs)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "probe options") -> ProbeOptions:
        try:
            freqs = values.get("key_freqs")
            return cls(settings=settings_from(values.get("settings") or {}), engine=values.get("engine", DEFAULT_ENGINE),
                       key_freqs=None if freqs is None else tuple(int(k) for k in freqs))
        except (UsageError, AttributeError, TypeError, ValueError) as exc:
            raise UsageError(f"{source} are not valid ({exc}); delete the file to probe with the defaults") from None

    def describe(self) -> str:
        """One line: the settings that differ from the defaults, the engine, the key frequencies."""
        default = ProbeSettings()
        changed = [f"{k}={v} (default {getattr(default, k)})" for k, v in self.settings.to_dict().items()
                   if v != getattr(default, k)]
        freqs = "from the run" if self.key_freqs is None else "given: " + (", ".join(map(str, self.key_freqs)) or "none")
        return (f"{'; '.join(changed) if changed else 'default settings'}; engine {self.engine}; "
                f"key frequencies {freqs}")
