"""Sweeps: many runs from one small definition, trained in groups, probed into one tidy table.

A sweep definition is a TOML file in ``workbench/sweeps/definitions/`` (or any path)::

    base = "fast"                    # the preset every member starts from
    seeds = 3                        # optional: members for seed s = 0..2, with model_seed and
                                     # split_seed both offset by s (paired seeds)
    member_name = "f{frac_train}-wd{weight_decay}"   # optional; default: field+value joined by '-'
    [set]                            # fields every member shares (overrides of the base)
    epochs = 2000
    [axes]                           # the swept fields: a list, or a range
    frac_train = [0.3, 0.5, 0.7]
    weight_decay = { logspace = [0.1, 3.0, 4] }   # also linspace = [a, b, n], range = [a, b] (b excluded)
    [cases]                          # optional: named sets of fields, an axis called "case"
    baseline = {}
    stablemax = { loss = "stablemax" }

Members are the product of the axes (and seeds). Each is an ordinary run directory
``<root>/<sweep>/<member>/``, so every single-run command and the notebook API work on it; the
sweep directory holds ``sweep.json``, the manifest: the resolved definition and each member's
axis values and status (pending, complete, or failed with the reason). Training groups the
members that share every shape (`workbench.training.batched`) and trains each group as one stacked model;
a rerun of the same command resumes every unfinished member and never retrains a finished one.

Command-line overrides: ``key=value`` sets a field for every member; ``key=v1,v2`` replaces
(or adds) an axis; ``seeds=N`` sets the seed count; ``case=a,b`` keeps only the named cases. Bad input (an unknown field, an empty axis, a
value its field rejects, a member name that would leave the sweep directory, a sweep name already
used by a different definition) is one `UsageError` before anything is written.

Example:
    >>> from workbench.sweeps import open_sweep, run_sweep
    >>> sweep = run_sweep("frac-wd", {"epochs": "30", "frac_train": "0.3", "weight_decay": "1.0", "seeds": "1"},
    ...                   progress=False)     # train every member (resumable), then probe them all
    >>> list(sweep.table.columns[:3])         # one row per member: axes, phases, outcome class
    ['member', 'status', 'frac_train']
    >>> sweep = open_sweep("frac-wd")         # later, or from a notebook
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import store
from workbench.config import FIELD_TYPES, RunConfig, coerce, load_config, read_preset
from workbench.errors import UsageError
from workbench.inputs import read_user_file

SWEEP_DIR = Path(__file__).parent / "definitions"

SEED_AXIS = "seed"  # the paired-seed axis: model_seed and split_seed both offset by it

MAX_MEMBERS = 10_000  # a sweep's members at most (each is a run directory; 10,000 fast runs take ~30 core-days)
CASE_AXIS = "case"  # named sets of fields ([cases]), e.g. training variants compared on the same seeds

_DEFINITION_KEYS = {"base", "seeds", "member_name", "set", "axes", "cases", "description", "probes"}


@dataclass(frozen=True)
class Member:
    """One run of a sweep: its name (a folder of the sweep), the axis values that make it, and its config."""

    name: str
    values: dict[str, Any]
    config: RunConfig


@dataclass
class SweepDefinition:
    """A resolved sweep: base preset, shared fields, axes (field -> list of values), paired seeds."""

    name: str
    base: str
    set: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list] = field(default_factory=dict)
    seeds: int = 0
    member_name: str | None = None
    description: str = ""
    probes: list[str] | None = None
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "set": self.set, "axes": self.axes, "seeds": self.seeds,
                "member_name": self.member_name, "description": self.description, "probes": self.probes,
                "cases": self.cases}

    @property
    def axis_names(self) -> list[str]:
        return ([CASE_AXIS] if self.cases else []) + list(self.axes) + ([SEED_AXIS] if self.seeds else [])

    def members(self) -> list[Member]:
        """Every member, in axis order (the last axis varying fastest; seeds last). Raises
        `UsageError` for a value a field rejects, a name that is not a plain folder name, or more
        than `MAX_MEMBERS` members (counted before any is made)."""
        base = read_preset(self.base)
        grid = (([list(self.cases)] if self.cases else []) + [self.axes[a] for a in self.axes]
                + ([list(range(self.seeds))] if self.seeds else []))
        count = math.prod(len(axis) for axis in grid)
        if count > MAX_MEMBERS:
            raise UsageError(f"sweep {self.name!r} would have {count:,} members (the product of its axes); "
                             f"at most {MAX_MEMBERS:,}: split it into several sweeps")
        out, seen = [], {}
        for combo in itertools.product(*grid):
            values = dict(zip(self.axis_names, combo, strict=True))
            case = self.cases.get(values.get(CASE_AXIS), {})
            fields = {**base, **self.set, **case, **{k: v for k, v in values.items() if k not in (SEED_AXIS, CASE_AXIS)}}
            if SEED_AXIS in values:
                defaults = RunConfig()
                for key in ("model_seed", "split_seed"):
                    fields[key] = int(fields.get(key, getattr(defaults, key))) + values[SEED_AXIS]
            try:
                cfg = load_config(fields)
            except UsageError as exc:
                raise UsageError(f"sweep {self.name!r}, member {values}: {exc}") from None
            name = self._name(values)
            if name in seen:
                raise UsageError(f"sweep {self.name!r}: members {seen[name]} and {values} would share the name "
                                 f"{name!r}; make member_name use every axis")
            seen[name] = values
            out.append(Member(name, values, cfg))
        return out

    def _name(self, values: dict[str, Any]) -> str:
        if self.member_name:
            try:
                name = self.member_name.format(**values)
            except (KeyError, IndexError, ValueError) as exc:
                raise UsageError(f"member_name {self.member_name!r} cannot be filled ({exc}); it may use "
                                 f"{', '.join('{' + a + '}' for a in self.axis_names)}") from None
        else:
            name = "-".join(f"{k}{_short(v)}" for k, v in values.items()) or "base"
        try:
            return store.check_run_name(name)
        except UsageError as exc:
            raise UsageError(f"sweep {self.name!r}: member name {name!r} would not be a plain folder of the sweep "
                             f"directory ({exc})") from None


def _short(value: Any) -> str:
    """A value as it appears in a member name: 0.3, 1e-05, 1e30 (no '+', which names may not hold)."""
    return f"{value:g}".replace("+", "") if isinstance(value, float) else str(value)


def definition_names() -> list[str]:
    return sorted(p.stem for p in SWEEP_DIR.glob("*.toml"))


def _expand_axis(name: str, spec: Any) -> list:
    """A list of values from a TOML list or a range table (linspace / logspace / range)."""
    if name not in FIELD_TYPES:
        raise UsageError(f"unknown axis {name!r}; valid axes are config fields: {', '.join(FIELD_TYPES)}")
    if isinstance(spec, Mapping):
        if len(spec) != 1 or next(iter(spec)) not in ("linspace", "logspace", "range"):
            raise UsageError(f"axis {name!r}: a range is one of linspace = [a, b, n], logspace = [a, b, n], "
                             f"range = [a, b]; got {dict(spec)}")
        kind, args = next(iter(spec.items()))
        try:
            if kind == "range":
                lo, hi = _whole(args[0]), _whole(args[1])
                if not 0 < hi - lo <= MAX_MEMBERS:
                    raise ValueError(f"it must hold 1 to {MAX_MEMBERS:,} values")
                values = list(range(lo, hi))
            else:
                a, b, n = float(args[0]), float(args[1]), _whole(args[2])
                if not 1 <= n <= MAX_MEMBERS:
                    raise ValueError(f"n must be 1 to {MAX_MEMBERS:,}")
                if not (math.isfinite(a) and math.isfinite(b)):
                    raise ValueError("its ends must be finite")
                if kind == "logspace" and (a <= 0 or b <= 0):
                    raise ValueError("logspace needs positive ends")
                pts = [i / (n - 1) for i in range(n)] if n > 1 else [0.0]
                values = ([a + (b - a) * t for t in pts] if kind == "linspace"
                          else [math.exp(math.log(a) + (math.log(b) - math.log(a)) * t) for t in pts])
                values = [float(f"{v:.6g}") for v in values]
        except (TypeError, ValueError, IndexError, OverflowError) as exc:
            raise UsageError(f"axis {name!r}: bad {kind} {args!r} ({exc})") from None
    elif isinstance(spec, list):
        values = spec
        if len(values) > MAX_MEMBERS:
            raise UsageError(f"axis {name!r} has {len(values):,} values; at most {MAX_MEMBERS:,}")
    else:
        values = [spec]
    if not values:
        raise UsageError(f"axis {name!r} has no values; give at least one")
    coerced = [coerce(name, v) for v in values]
    if len(set(coerced)) != len(coerced):
        raise UsageError(f"axis {name!r} repeats a value: {coerced}")
    return coerced


def _whole(value: Any) -> int:
    """A whole number from a TOML or command-line value; 2.5, true or "x" are refused, not rounded."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    number = float(value) if isinstance(value, str) else value
    if not isinstance(number, (int, float)) or not math.isfinite(number) or number != int(number):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def read_definition(name_or_path: str | Path, overrides: Mapping[str, str] | None = None,
                    sweep_name: str | None = None) -> SweepDefinition:
    """A definition by name (``workbench/sweeps/definitions/<name>.toml``) or path, with command-line overrides."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and (path.is_file() or path.exists())):  # a FIFO or a folder: said by read_user_file
        path = SWEEP_DIR / f"{name_or_path}.toml"
        if "/" in str(name_or_path) or not path.is_file():
            raise UsageError(f"unknown sweep {str(name_or_path)!r}; shipped sweeps: {', '.join(definition_names())} "
                             "(or give a path to a .toml definition)")
    raw = read_user_file(path, "sweep definition", "give a .toml definition (docs/sweeps.md)", kind="toml")
    unknown = sorted(set(raw) - _DEFINITION_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_DEFINITION_KEYS))}")
    if "base" not in raw:
        raise UsageError(f"{path}: no base preset; add e.g. base = \"fast\"")
    read_preset(str(raw["base"]))  # an unknown preset names the valid ones
    for table in ("set", "axes", "cases"):
        if not isinstance(raw.get(table, {}), Mapping):
            raise UsageError(f"{path}: {table} must be a table ([{table}] with key = value lines), got a "
                             f"{type(raw[table]).__name__}")
    twice = sorted(set(raw.get("set", {})) & set(raw.get("axes", {})))
    in_cases = sorted({k for case in raw.get("cases", {}).values() if isinstance(case, Mapping) for k in case}
                      & set(raw.get("axes", {})))
    if twice or in_cases:
        where = "[set] and [axes]" if twice else "[cases] and [axes]"
        raise UsageError(f"{path}: {', '.join(twice or in_cases)} is given in both {where}; keep it in one "
                         "(an axis to sweep it, [set] or a case to fix it)")
    shared = dict(raw.get("set", {}))
    axes = {k: _expand_axis(k, v) for k, v in raw.get("axes", {}).items()}
    seeds = raw.get("seeds", 0)
    chosen_cases = None
    for key, value in (overrides or {}).items():
        if key == "seeds":
            seeds = value
        elif key == CASE_AXIS:
            chosen_cases = [v.strip() for v in str(value).split(",") if v.strip()]
        elif key in axes or "," in str(value):
            axes[key] = _expand_axis(key, [v for v in str(value).split(",") if v.strip()])
        else:
            if key not in FIELD_TYPES:
                raise UsageError(f"unknown config key {key!r}; valid keys: {', '.join(FIELD_TYPES)}, seeds")
            shared[key] = value
    for key in shared:
        if key not in FIELD_TYPES:
            raise UsageError(f"{path}: [set] has unknown config key {key!r}; valid keys: {', '.join(FIELD_TYPES)}")
    shared = {k: coerce(k, v) for k, v in shared.items()}
    try:
        seeds = _whole(seeds)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"seeds must be a whole number >= 0, got {seeds!r}") from None
    if not 0 <= seeds <= MAX_MEMBERS:
        raise UsageError(f"seeds must be a whole number from 0 to {MAX_MEMBERS:,}, got {seeds}")
    if seeds and ({"model_seed", "split_seed"} & set(axes)):
        raise UsageError("seeds pairs model_seed and split_seed: drop the model_seed / split_seed axis or set seeds = 0")
    cases = {}
    for case, values in raw.get("cases", {}).items():
        if not isinstance(values, Mapping):
            raise UsageError(f"{path}: case {case!r} must be a table of config fields, e.g. {case} = {{ lr = 3e-3 }}")
        unknown = sorted(set(values) - set(FIELD_TYPES))
        if unknown:
            raise UsageError(f"{path}: case {case!r} has unknown config key(s) {', '.join(unknown)}; "
                             f"valid keys: {', '.join(FIELD_TYPES)}")
        cases[case] = {k: coerce(k, v) for k, v in values.items()}
    if chosen_cases is not None:
        unknown = [c for c in chosen_cases if c not in cases]
        if unknown or not chosen_cases:
            raise UsageError(f"case={','.join(chosen_cases)}: unknown case(s) {', '.join(unknown) or '(none given)'}; "
                             f"this sweep's cases: {', '.join(cases) or 'none'}")
        cases = {c: cases[c] for c in chosen_cases}
    name = store.check_run_name(sweep_name or path.stem)
    probes = raw.get("probes")
    return SweepDefinition(name=name, base=str(raw["base"]), set=shared, axes=axes, seeds=seeds,
                           member_name=raw.get("member_name"), description=str(raw.get("description", "")),
                           probes=list(probes) if probes is not None else None, cases=cases)
