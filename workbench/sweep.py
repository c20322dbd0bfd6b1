"""Sweeps: many runs from one small definition, trained in groups, probed into one tidy table.

A sweep definition is a TOML file in ``workbench/sweeps/`` (or any path)::

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
members that share every shape (`workbench.batched`) and trains each group as one stacked model;
a rerun of the same command resumes every unfinished member and never retrains a finished one.

Command-line overrides: ``key=value`` sets a field for every member; ``key=v1,v2`` replaces
(or adds) an axis; ``seeds=N`` sets the seed count. Bad input (an unknown field, an empty axis, a
value its field rejects, a member name that would leave the sweep directory, a sweep name already
used by a different definition) is one `UsageError` before anything is written.

Example:
    >>> sweep = run_sweep("frac-wd")          # train every member (resumable), then probe them all
    >>> sweep.table                           # one row per member: axes, phases, outcome class
    >>> sweep = open_sweep("frac-wd")         # later, or from a notebook
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import files, store
from workbench.config import FIELD_TYPES, RunConfig, coerce, load_config, read_preset
from workbench.errors import UsageError

SWEEP_DIR = Path(__file__).parent / "sweeps"
MANIFEST = "sweep.json"
TABLE = "sweep.csv"
CRITERIA_FILE = "outcomes.json"
MANIFEST_FORMAT = 1
SEED_AXIS = "seed"  # the paired-seed axis: model_seed and split_seed both offset by it
CASE_AXIS = "case"  # named sets of fields ([cases]), e.g. training variants compared on the same seeds
PENDING, COMPLETE = "pending", "complete"
EXECUTORS = ("local", "ray")
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
        `UsageError` for a value a field rejects or a name that is not a plain folder name."""
        base = read_preset(self.base)
        grid = (([list(self.cases)] if self.cases else []) + [self.axes[a] for a in self.axes]
                + ([list(range(self.seeds))] if self.seeds else []))
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
                values = list(range(int(args[0]), int(args[1])))
            else:
                a, b, n = float(args[0]), float(args[1]), int(args[2])
                if kind == "logspace" and (a <= 0 or b <= 0):
                    raise ValueError("logspace needs positive ends")
                pts = [i / (n - 1) for i in range(n)] if n > 1 else [0.0]
                values = ([a + (b - a) * t for t in pts] if kind == "linspace"
                          else [math.exp(math.log(a) + (math.log(b) - math.log(a)) * t) for t in pts])
                values = [float(f"{v:.6g}") for v in values]
        except (TypeError, ValueError, IndexError) as exc:
            raise UsageError(f"axis {name!r}: bad {kind} {args!r} ({exc})") from None
    elif isinstance(spec, list):
        values = spec
    else:
        values = [spec]
    if not values:
        raise UsageError(f"axis {name!r} has no values; give at least one")
    coerced = [coerce(name, v) for v in values]
    if len(set(coerced)) != len(coerced):
        raise UsageError(f"axis {name!r} repeats a value: {coerced}")
    return coerced


def read_definition(name_or_path: str | Path, overrides: Mapping[str, str] | None = None,
                    sweep_name: str | None = None) -> SweepDefinition:
    """A definition by name (``workbench/sweeps/<name>.toml``) or path, with command-line overrides."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        path = SWEEP_DIR / f"{name_or_path}.toml"
        if "/" in str(name_or_path) or not path.is_file():
            raise UsageError(f"unknown sweep {str(name_or_path)!r}; shipped sweeps: {', '.join(definition_names())} "
                             "(or give a path to a .toml definition)")
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - _DEFINITION_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_DEFINITION_KEYS))}")
    if "base" not in raw:
        raise UsageError(f"{path}: no base preset; add e.g. base = \"fast\"")
    read_preset(str(raw["base"]))  # an unknown preset names the valid ones
    shared = dict(raw.get("set", {}))
    axes = {k: _expand_axis(k, v) for k, v in raw.get("axes", {}).items()}
    seeds = raw.get("seeds", 0)
    for key, value in (overrides or {}).items():
        if key == "seeds":
            seeds = value
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
        seeds = int(seeds)
    except (TypeError, ValueError):
        raise UsageError(f"seeds must be a whole number >= 0, got {seeds!r}") from None
    if seeds < 0:
        raise UsageError(f"seeds must be a whole number >= 0, got {seeds}")
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
    name = store.check_run_name(sweep_name or path.stem)
    probes = raw.get("probes")
    return SweepDefinition(name=name, base=str(raw["base"]), set=shared, axes=axes, seeds=seeds,
                           member_name=raw.get("member_name"), description=str(raw.get("description", "")),
                           probes=list(probes) if probes is not None else None, cases=cases)


class Sweep:
    """A sweep on disk: ``<root>/<name>/`` with its manifest and one run directory per member."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, members={len(self.manifest['members'])}, path='{self.path}')"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise store.DamagedFile(f"{path} cannot be read ({exc}); restore it, or move the sweep directory "
                                    "away and run the sweep again") from None

    @property
    def definition(self) -> SweepDefinition:
        return SweepDefinition(**self.manifest["definition"])

    @property
    def members(self) -> list[dict[str, Any]]:
        """The manifest's members: name, values, status."""
        return self.manifest["members"]

    def run(self, member: str) -> store.Run:
        return store.open_run(self.path / member)

    def runs(self, status: str | None = COMPLETE) -> list[store.Run]:
        """The members' runs (only those with ``status``; None: all that exist)."""
        return [store.Run(self.path / m["name"]) for m in self.members
                if (status is None or m["status"] == status) and (self.path / m["name"] / store.CONFIG).is_file()]

    @property
    def table(self):
        """The tidy table of members and outcomes (`probe_sweep` writes it)."""
        import pandas as pd

        path = self.path / TABLE
        if not path.is_file():
            raise UsageError(f"sweep {self.name!r} has not been probed yet; run `make sweep SWEEP={self.name}` "
                             "(or workbench.probe_sweep)")
        return pd.read_csv(path, dtype={"key_freqs": str})  # "24" stays the text of a set, not a number

    def set_status(self, statuses: Mapping[str, str]) -> None:
        manifest = self.manifest
        for m in manifest["members"]:
            if m["name"] in statuses:
                m["status"] = statuses[m["name"]]
        files.write_json(self.path / MANIFEST, manifest)


def sweep_path(name: str, root: Path | None = None) -> Path:
    return store.run_path(name, root)


def open_sweep(name_or_path: str | Path, root: Path | None = None) -> Sweep:
    path = store.resolve_run_path(name_or_path, root)
    if not (path / MANIFEST).is_file():
        raise UsageError(f"no sweep at {path}; run one with `make sweep SWEEP=<name>` "
                         f"(shipped: {', '.join(definition_names())})")
    return Sweep(path)


def prepare(definition: SweepDefinition, root: Path | None = None) -> Sweep:
    """Validate every member, then create the sweep directory, manifest and member runs that do
    not exist yet. Refuses a sweep name already used by a different definition, and a member
    directory whose config differs from its member's."""
    from workbench.train import create_run

    members = definition.members()  # every config validated before anything is written
    path = sweep_path(definition.name, root)
    manifest_path = path / MANIFEST
    old = None
    if manifest_path.is_file():
        old = Sweep(path).manifest
        if old.get("definition") != json.loads(json.dumps(definition.to_dict())):
            raise UsageError(f"sweep {definition.name!r} already exists at {path} with a different definition; "
                             "use another name (--name) or move it away")
        statuses = {m["name"]: m["status"] for m in old["members"]}
    elif path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} exists and is not a sweep; choose another name (--name)")
    else:
        statuses = {}
    for m in members:
        run_dir = path / m.name
        if (run_dir / store.CONFIG).is_file() and store.Run(run_dir).config != m.config:
            raise UsageError(f"{run_dir} holds a run with another config than member {m.name!r}; move it away")
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"format": MANIFEST_FORMAT, "name": definition.name, "definition": definition.to_dict(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "members": [{"name": m.name, "values": m.values, "status": statuses.get(m.name, PENDING)}
                            for m in members]}
    if old is not None:
        manifest["created"] = old.get("created", manifest["created"])
    files.write_json(manifest_path, manifest)
    created = []
    for m in members:
        if not (path / m.name / store.CONFIG).is_file():
            create_run(path / m.name, m.config)
            created.append(m.name)
    sweep = Sweep(path)
    if created:  # a folder moved away is a member to train again, whatever the manifest said of it
        sweep.set_status(dict.fromkeys(created, PENDING))
    return sweep


def chunks(sweep: Sweep, group_size: int) -> list[list[str]]:
    """Every member in its training group: members sharing every shape (`batched.group_key`),
    ordered by training-set size and cut into near-equal consecutive parts of at most
    ``group_size``. A function of the definition alone (finished and failed members keep their
    place), so every executor and every rerun trains the same groups with the same padding,
    and writes the same bits."""
    from workbench.batched import group_configs

    names = [m["name"] for m in sweep.members]
    runs = [store.Run(sweep.path / n) for n in names]
    out = []
    for idx in group_configs([r.config for r in runs]):
        # by training-set size, so that a group pads its members' sets as little as possible
        idx = sorted(idx, key=lambda i: (len(runs[i].split.train), i))
        n_parts = math.ceil(len(idx) / group_size)
        bounds = [round(k * len(idx) / n_parts) for k in range(n_parts + 1)]
        out += [[names[i] for i in idx[a:b]] for a, b in zip(bounds, bounds[1:], strict=False)]
    return out


def _train_chunk(paths: Sequence[str], device: str, threads: int | None = None,
                 pad: tuple[int, int] | None = None) -> dict[str, str]:
    """Train one group's unfinished members (what a worker process or a Ray task runs)."""
    import torch

    from workbench.batched import train_group

    if threads:
        torch.set_num_threads(threads)
    return train_group([store.Run(Path(p)) for p in paths], device=device, pad=pad)


def check_options(executor: str, workers: int, group_size: int, device: str) -> str:
    """Refuse a bad executor, worker count, group size or device (before anything is written);
    returns the device to train on (``auto`` resolved)."""
    from workbench.train import pick_device

    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if group_size < 1:
        raise UsageError(f"--group-size must be at least 1, got {group_size}")
    return str(pick_device(device))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def train_sweep(sweep: Sweep, executor: str = "local", workers: int = 1, group_size: int = 8,
                device: str = "cpu", progress: bool = True) -> dict[str, str]:
    """Train every pending member in groups; record each group's outcome in the manifest as it ends.
    ``local``: in this process (``workers`` 1) or across ``workers`` processes; ``ray``: one Ray
    task per group, on ``$RAY_ADDRESS`` or a local Ray started for the call."""
    device = check_options(executor, workers, group_size, device)
    from workbench.batched import padding

    pending = {m["name"] for m in sweep.members if m["status"] == PENDING}
    groups, pads = [], []
    for chunk in chunks(sweep, group_size):
        todo = [n for n in chunk if n in pending]
        if todo:
            groups.append(todo)
            pads.append(padding([store.Run(sweep.path / n) for n in chunk]))
    paths = [[str(sweep.path / n) for n in g] for g in groups]
    done: dict[str, str] = {}

    def finished(status: dict[str, str]) -> None:
        done.update(status)
        sweep.set_status({n: s for n, s in status.items() if s != "stopped"})
        if progress:
            for n, s in status.items():
                print(f"  {sweep.name}/{n}: {s}", flush=True)

    def unfinished(group: list[str], exc: BaseException) -> None:
        print(f"  group {[Path(p).name for p in group]} did not finish ({_first_line(exc)}); its members stay "
              "pending: run the sweep again to resume them", flush=True)

    if progress:
        n = sum(len(g) for g in groups)
        print(f"sweep {sweep.name!r}: {n} member(s) to train in {len(groups)} group(s) ({executor})", flush=True)
    if executor == "ray":
        _train_on_ray(paths, pads, device, finished, unfinished)
    elif workers == 1 or len(paths) <= 1:
        for group, pad in zip(paths, pads, strict=True):
            try:
                finished(_train_chunk(group, device, pad=pad))
            except Exception as exc:  # one group's trouble (a busy run, a damaged file) does not stop the rest
                unfinished(group, exc)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        try:
            futures = {pool.submit(_train_chunk, group, device, threads, pad): group
                       for group, pad in zip(paths, pads, strict=True)}
            for fut in cf.as_completed(futures):
                try:
                    finished(fut.result())
                except Exception as exc:
                    unfinished(futures[fut], exc)
        except BaseException:  # Ctrl-C: queued groups are dropped and the workers stopped, not waited for
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise
        pool.shutdown()
    return done


def _train_on_ray(paths: list[list[str]], pads: list[tuple[int, int]], device: str, finished, unfinished) -> None:
    """One Ray task per group (1 CPU, or 1 GPU on cuda), on ``$RAY_ADDRESS`` or a local Ray."""
    try:
        import ray
    except ImportError:
        raise UsageError("the ray executor needs Ray: `make setup` installs it (pip install 'ray>=2.40')") from None
    started = False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a lab machine
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count() or 1}))
        started = True
    try:
        gpu = 1 if device.startswith("cuda") else 0
        task = ray.remote(num_cpus=1, num_gpus=gpu, max_retries=3)(_train_chunk)
        inside = "cuda" if gpu else device  # Ray shows a task only its own GPU, as cuda:0
        running = {task.remote(group, inside, 1, pad): group for group, pad in zip(paths, pads, strict=True)}
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            group = running.pop(ref)
            try:
                finished(ray.get(ref))
            except Exception as exc:  # a task that failed for good: its members stay pending for a rerun
                unfinished(group, exc)
    finally:
        if started:
            ray.shutdown()


def run_sweep(name: str | Path, overrides: Mapping[str, str] | None = None, root: Path | None = None,
              executor: str = "local", workers: int = 1, group_size: int = 8, device: str = "cpu",
              probe: bool = True, progress: bool = True, sweep_name: str | None = None) -> Sweep:
    """Prepare, train (resumably) and probe a sweep; returns the `Sweep`."""
    definition = read_definition(name, overrides, sweep_name)
    device = check_options(executor, workers, group_size, device)
    sweep = prepare(definition, root)
    train_sweep(sweep, executor=executor, workers=workers, group_size=group_size, device=device, progress=progress)
    if probe:
        from workbench.sweep_probe import probe_sweep

        probe_sweep(sweep, workers=workers, progress=progress)
    return sweep
