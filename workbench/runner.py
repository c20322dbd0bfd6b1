"""The probe runner: one generic loop over checkpoints, with caching and atomic tables.

For each selected checkpoint it computes the activations over the full (a, b) grid once (engine
"fast": the factored forward; engine "bridge": one TransformerBridge ``run_with_cache``), packs a
`probes.Checkpoint`, and calls the selected probes. Each probe's rows go to
``checkpoints/<RUN>/probes/<probe>.csv`` (tidy: ``step, <keys...>, value``), written atomically.

Caching: ``probes/index.json`` records, per probe, its version, the engine and key frequencies it
used, and the content hash (blake2b) of every checkpoint it has measured. A re-run on an
unchanged run loads nothing; a run that gained checkpoints computes only those. Changing a
probe's version, the engine or the key frequencies recomputes that probe (the weights probe
reads no activations and depends on neither).

Key frequencies are fixed from the final checkpoint by default (rule ``settings.key_rule``) and
stored in ``probes/key_frequencies.json`` with every rule's answer; the per-checkpoint answers
are in the fourier table (measures ``key_neurons``, ``key_embed``, ``key_wl``), showing
emergence. Phases (`probes.phases`) go to ``probes/phases.json``.

Example:
    >>> report = probe("demo")                       # all probes, all checkpoints
    >>> report.tables["progress"].query("measure == 'restricted_loss'")
    >>> report.key_frequencies["key_freqs"], report.phases["steps"]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from probes import REGISTRY, Checkpoint, ProbeSettings, get_probe
from probes.fourier import key_frequencies as key_frequencies_of
from probes.phases import detect_phases
from workbench import store
from workbench.errors import UsageError
from workbench.model import (
    FastTransformer,
    build_bridge,
    factored_grid_activations,
    grid_activations,
    initial_shapes,
)

SIGN = {"add": 1, "sub": -1, "random": 1}  # random is probed as if it were addition: the hypothesis it must fail


@dataclass
class ProbeReport:
    run: store.Run
    tables: dict[str, Any]
    key_frequencies: dict[str, Any]
    phases: dict[str, Any]
    computed: dict[str, int] = field(default_factory=dict)  # probe -> checkpoints measured this time
    skipped: dict[int, str] = field(default_factory=dict)  # step -> why it could not be read

    def summary(self) -> str:
        kf = self.key_frequencies
        lines = [f"run {self.run.name}: {len(self.run.steps)} checkpoints; measured now: "
                 + ", ".join(f"{k} {v}" for k, v in self.computed.items())]
        lines.append(f"key frequencies ({kf['rule']}, step {kf['step']}): {_fmt(kf['key_freqs'])}")
        for rule, freqs in kf.get("by_rule", {}).items():
            lines.append(f"  by {rule:8s} {_fmt(freqs)}")
        lines.append("phases: " + ", ".join(f"{k} {'-' if v is None else v}" for k, v in self.phases["steps"].items()))
        for step, why in sorted(self.skipped.items()):
            lines.append(f"SKIPPED step {step}: {why}")
        return "\n".join(lines)


def _fmt(freqs: Sequence[int]) -> str:
    return ", ".join(map(str, freqs)) if freqs else "none"


def settings_from(overrides: dict[str, str] | None) -> ProbeSettings:
    """A `ProbeSettings` from ``key=value`` strings; bad keys or values are a `UsageError`."""
    import dataclasses

    valid = {f.name: f.type for f in dataclasses.fields(ProbeSettings)}
    values: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise UsageError(f"unknown probe setting {key!r}; valid: {', '.join(valid)}")
        try:
            values[key] = value if key == "key_rule" else float(value)
        except ValueError:
            raise UsageError(f"probe setting {key} must be a number, got {value!r}") from None
    try:
        return ProbeSettings(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_steps(text: str | None, available: list[int]) -> list[int]:
    """``None``/"all", "last", "A:B" (inclusive) or "s1,s2,..." -> the available steps selected."""
    if text is None or text == "all":
        return list(available)
    if text == "last":
        return available[-1:]
    try:
        if ":" in text:
            lo, hi = (int(x) if x else None for x in text.split(":", 1))
            return [s for s in available if (lo is None or s >= lo) and (hi is None or s <= hi)]
        wanted = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise UsageError(f"steps {text!r} not understood; use all, last, A:B or a comma list") from None
    missing = sorted(wanted - set(available))
    if missing:
        raise UsageError(f"no checkpoint at step(s) {', '.join(map(str, missing))}; this run has {available[0]}..{available[-1]}")
    return sorted(wanted)


class _Grid:
    """The full (a, b) grid of a run, built once: tokens, labels and split masks as [p, p]."""

    def __init__(self, run: store.Run):
        cfg = run.config
        p = cfg.p
        a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
        self.tokens = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], dim=1)
        ds, split = run.dataset, run.split
        flat = ds.tokens[:, 0] * p + ds.tokens[:, 1]
        labels = torch.full((p * p,), -1, dtype=torch.int64)
        labels[flat] = ds.labels
        train = torch.zeros(p * p, dtype=torch.bool)
        test = torch.zeros(p * p, dtype=torch.bool)
        train[flat[split.train]] = True
        test[flat[split.test]] = True
        self.p, self.labels, self.train, self.test = p, labels.view(p, p), train.view(p, p), test.view(p, p)
        self.sign = SIGN.get(cfg.operation, 0)


ENGINES = ("fast", "bridge")


def load_checkpoint(
    run: store.Run,
    step: int,
    bridge=None,
    grid: _Grid | None = None,
    engine: str = "fast",
    workspace: dict | None = None,
) -> Checkpoint:
    """The `probes.Checkpoint` of one step (notebooks can call the probes on it directly).

    engine "bridge": one TransformerBridge ``run_with_cache`` over the grid. engine "fast" (the
    default): for one-layer models `factored_grid_activations` (the forward pass factored over
    a and b, equal to the bridge's hook values to float32 rounding, tested, in ~0.16x the
    bridge's time); deeper models use `FastTransformer.activations`, the bridge's operations
    restricted to the "=" position (bit-identical, tested). ``workspace`` (runner use): buffers
    reused between steps by the factored path; the checkpoint is then only valid until the
    next load with the same workspace.
    """
    cfg = run.config
    grid = grid or _Grid(run)
    weights = run.weights(step)
    shapes = initial_shapes(cfg)
    missing = set(shapes) - set(weights)
    if missing or any(weights[k].shape != shape for k, shape in shapes.items() if k in weights):
        raise store.CorruptCheckpoint(f"checkpoint {run.step_path(step)} does not fit this run's model "
                                      f"(missing or misshapen: {', '.join(sorted(missing)) or 'shapes'})")
    if engine == "fast" and cfg.n_layers == 1:
        acts = factored_grid_activations(cfg, weights, workspace)
    elif engine == "fast":
        acts = FastTransformer(cfg, weights).activations(grid.tokens)
    elif engine == "bridge":
        if bridge is None:
            bridge = build_bridge(cfg, weights)
        else:
            bridge.load_state_dict(weights, strict=True)
        acts = grid_activations(bridge, cfg, grid.tokens)
    else:
        raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    p = grid.p
    return Checkpoint(
        step=step, p=p, sign=grid.sign, weights=weights,
        logits=acts["logits"].reshape(p, p, p), neuron_acts=acts["neuron_acts"].reshape(p, p, -1),
        resid_mid=acts["resid_mid"].reshape(p, p, -1), attention=acts["attention"].reshape(p, p, cfg.n_heads, 3),
        labels=grid.labels, train_mask=grid.train, test_mask=grid.test, last_block=cfg.n_layers - 1,
    )


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def _bound_heap_growth() -> None:
    """Serve large blocks (>= 16 MiB) with mmap so that freeing them returns them to the OS.

    glibc otherwise raises its mmap threshold after the first large free and carves later
    per-checkpoint temporaries (tens of MB each) out of the heap, whose fragments it keeps: the
    resident size then grows with the number of checkpoints probed."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD


def _release_memory() -> None:
    """Trim what is left of the heap back to the OS."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _key_frequencies(run, settings, given, bridge, grid, index, skipped, engine) -> dict[str, Any]:
    """Fix the key frequencies from the last readable checkpoint (cached by its content hash)."""
    path = run.path / store.PROBES_DIR / store.KEY_FREQUENCIES
    if given is not None:
        return {"rule": "given", "step": None, "key_freqs": sorted(set(given)), "by_rule": {}}
    stored = store.read_json(path)
    for step in reversed(run.steps):
        try:
            digest = run.content_hash(step, index.setdefault("hashes", {}))
            if stored and stored.get("hash") == digest and stored.get("settings") == vars(settings):
                return stored
            by_rule = key_frequencies_of(load_checkpoint(run, step, bridge, grid, engine), settings)
        except (store.CorruptCheckpoint, OSError) as exc:
            skipped[step] = str(exc)
            continue
        result = {"rule": settings.key_rule, "step": step, "hash": digest, "settings": vars(settings),
                  "key_freqs": by_rule[settings.key_rule], "by_rule": by_rule}
        store.write_json(path, result)
        return result
    raise UsageError(f"run {run.name!r} has no readable checkpoint to take key frequencies from")


def probe(
    run: str | store.Run,
    probes: Sequence[str] | None = None,
    steps: str | Sequence[int] | None = None,
    settings: ProbeSettings | None = None,
    key_freqs: Sequence[int] | None = None,
    progress: bool = True,
    engine: str = "fast",
) -> ProbeReport:
    """Measure a run's checkpoints with the selected probes (default: all), write the tables, return them."""
    run = run if isinstance(run, store.Run) else store.open_run(run)
    names = list(probes) if probes else list(REGISTRY)
    for name in names:
        try:
            get_probe(name)
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
    settings = settings or ProbeSettings()
    available = run.steps
    if not available:
        raise UsageError(f"run {run.name!r} has no checkpoints yet; train it first (make train RUN={run.name})")
    selected = parse_steps(steps, available) if isinstance(steps, (str, type(None))) else parse_steps(",".join(map(str, steps)), available)

    probes_dir = run.path / store.PROBES_DIR
    _bound_heap_growth()
    with store.waiting_lock(probes_dir / store.LOCK):
        index = store.read_json(probes_dir / store.PROBE_INDEX, {})
        grid = _Grid(run)
        bridge = build_bridge(run.config) if engine == "bridge" else None
        skipped: dict[int, str] = {}
        workspace: dict = {}  # activation buffers reused by every step (no fresh memory per step)
        kf = _key_frequencies(run, settings, key_freqs, bridge, grid, index, skipped, engine)
        freqs = tuple(kf["key_freqs"])

        tables, done, todo = {}, {}, {}
        for name in names:
            spec = get_probe(name)
            entry = index.get(name, {})
            table = run.probe_table(name)
            reads_activations = name != "weights"  # and so depends on the key frequencies and the engine
            valid = (table is not None and entry.get("version") == spec.version
                     and (not reads_activations
                          or (entry.get("key_freqs") == list(freqs) and entry.get("engine", "fast") == engine)))
            done[name] = dict(entry.get("steps", {})) if valid else {}
            tables[name] = table if valid else None
        hashes = index.setdefault("hashes", {})
        for step in selected:
            try:
                digest = run.content_hash(step, hashes)
            except OSError as exc:
                skipped[step] = str(exc)
                continue
            need = [n for n in names if done[n].get(str(step)) != digest]
            if need:
                todo[step] = (digest, need)

        new_rows: dict[str, list] = {n: [] for n in names}
        bar = None
        if progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=f"probe {run.name}", unit="ckpt", file=sys.stderr, mininterval=0.5)
        for i, (step, (digest, need)) in enumerate(todo.items()):
            ckpt = None
            try:
                ckpt = load_checkpoint(run, step, bridge, grid, engine, workspace)
            except store.CorruptCheckpoint as exc:
                skipped[step] = str(exc)
                for n in need:
                    done[n].pop(str(step), None)
            else:
                for n in need:
                    new_rows[n].append(get_probe(n).fn(ckpt, freqs, settings))
                    done[n][str(step)] = digest
            del ckpt
            if i % 8 == 7:
                _release_memory()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

        import pandas as pd

        computed = {}
        for name in names:
            fresh = new_rows[name]
            computed[name] = len(fresh)
            if not fresh and tables[name] is not None:
                continue
            recomputed = {int(f.step.iloc[0]) for f in fresh}
            old = tables[name]
            parts = [old[~old.step.isin(recomputed)]] if old is not None else []
            table = pd.concat(parts + fresh, ignore_index=True) if parts + fresh else pd.DataFrame()
            if len(table):
                table = table.sort_values("step", kind="stable").reset_index(drop=True)
            tables[name] = table
            store.write_table(store.probe_table_path(run.path, name), table)
            index[name] = {"version": get_probe(name).version, "engine": engine, "key_freqs": list(freqs),
                           "steps": done[name]}
        store.write_json(probes_dir / store.PROBE_INDEX, index)

        all_tables = {n: tables.get(n) if n in tables else run.probe_table(n) for n in REGISTRY}
        phases = detect_phases(run.metrics, all_tables.get("progress"), all_tables.get("weights"), list(freqs))
        phases["key_freqs"] = list(freqs)
        if not freqs:
            phases["note"] = "no key frequencies: no Fourier circuit was found, so no circuit formation or cleanup"
        store.write_json(probes_dir / store.PHASES, phases)
    return ProbeReport(run=run, tables=tables, key_frequencies=kf, phases=phases, computed=computed, skipped=skipped)
