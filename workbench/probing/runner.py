"""The probe runner: every probe over a run's checkpoints, each row computed once and kept only
while everything it depends on holds.

    probe(run) =  options       the run's current `ProbeOptions`, changed by what this call gives
                  key freqs     fixed from the last readable checkpoint (or given), cached
                  plan          per probe, which steps' cached rows stay valid (`store.ProbeCache`)
                                and which selected steps must be measured
                  measure       each such checkpoint evaluated on the grid once
                                (`evaluate.GridEvaluator`), the probes that need it called on it;
                                costly probes (``parallel``: llc) in worker processes, a
                                checkpoint each, one thread each
                  tables        valid cached rows + new rows, written atomically
                  phases        `probes.phases.detect_phases`, written beside the criteria

A row's dependencies are the checkpoint's content hash plus what its `probes.ProbeSpec`
declares it reads: the probe's version, its settings, the key frequencies, the engine. Change
any of them and exactly the rows that depend on it are recomputed; change nothing and nothing
is. Every table on disk holds only rows valid for the run's current options (a row made stale
by a change and not recomputed now, e.g. outside ``steps``, is dropped), so the report and the
phases never mix settings.

Example:
    >>> results = probe("demo", progress=False)               # all probes, all checkpoints (cached)
    >>> results = probe("demo", overrides={"neuron_threshold": "0.5"}, progress=False)
    >>> results.tables["progress"].query("measure == 'restricted_loss'").columns.tolist()
    ['step', 'measure', 'frequency', 'value']
    >>> results.key_frequencies["key_freqs"], results.phases.steps
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probes import KEY_RULES, REGISTRY, ProbeSettings, ProbeSpec, get_probe, group_view
from probes.fourier import key_frequencies as key_frequencies_of
from probes.fourier import n_frequencies
from probes.llc import by_step as llc_by_step
from probes.phases import Phases, detect_phases
from workbench import store
from workbench.errors import UsageError
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.pool import run_jobs
from workbench.probing import heap
from workbench.probing.evaluate import GridEvaluator
from workbench.probing.options import ProbeOptions
from workbench.tasks import coordinates_note, group_order

RELEASE_EVERY = 8  # checkpoints between heap trims


@dataclass
class ProbeResults:
    """What `probe` measured: every probe's current table, the key frequencies, the phases, and
    the options they were made with."""

    run: store.Run
    options: ProbeOptions
    tables: dict[str, Any]  # probe -> its table, for every probe that has one
    key_frequencies: dict[str, Any]
    phases: Phases
    computed: dict[str, int] = field(default_factory=dict)  # probe -> checkpoints measured this time
    skipped: dict[int, str] = field(default_factory=dict)  # step -> why it could not be read
    rebuilt: list[str] = field(default_factory=list)  # damaged cache files whose results were recomputed

    def summary(self) -> str:
        kf = self.key_frequencies
        lines = [f"run {self.run.name}: {len(self.run.steps)} checkpoints; measured now: "
                 + ", ".join(f"{k} {v}" for k, v in self.computed.items()),
                 f"options: {self.options.describe()}",
                 f"key frequencies ({kf['rule']}, step {kf['step']}): {_fmt(kf['key_freqs'])}"]
        by_rule = kf.get("by_rule", {})
        lines += [f"  by {rule:8s} {_fmt(by_rule[rule])}" for rule in KEY_RULES if rule in by_rule]
        by_layer = kf.get("by_layer", [])
        if len(by_layer) > 1:  # where the circuit lives: each block's own sets (the model's are their union)
            lines += [f"  layer {layer}: " + "; ".join(f"{rule} {_fmt(freqs)}" for rule, freqs in keys.items())
                      for layer, keys in enumerate(by_layer)]
        note = coordinates_note(self.run.config.operation, self.run.config.p)
        if note:
            lines.append(f"note: {note}")
        lines.append("phases: " + ", ".join(f"{k} {'-' if v is None else v}" for k, v in self.phases.steps.items()))
        if self.tables.get("llc") is not None and len(self.tables["llc"]):
            lines.append(llc_line(self.tables["llc"]))
        lines += [f"NOTE: {path} was damaged (unreadable, or not what the cache index recorded); its results were "
                  "recomputed" for path in self.rebuilt]
        lines += [f"SKIPPED step {step}: {why}" for step, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def llc_line(table) -> str:
    """One line on the llc table: how many checkpoints, the peak and the final λ̂, and how many
    estimates were not healthy (those are left out of the peak)."""
    wide = llc_by_step(table)
    good = wide[wide.healthy == 1]
    bad = len(wide) - len(good)
    text = f"llc: {len(wide)} checkpoints"
    if len(good):
        peak = good.llc.idxmax()
        text += (f"; peak {good.llc.max():.3g} at step {peak}; last {wide.llc.iloc[-1]:.3g} at step {wide.index[-1]}"
                 + ("" if wide.healthy.iloc[-1] == 1 else " (not healthy)"))
    return text + (f"; {bad} not healthy (see the drift and failed_chains rows)" if bad else "")


def _fmt(freqs: Sequence[int]) -> str:
    return ", ".join(map(str, freqs)) if freqs else "none"


def select_probes(names: Sequence[str] | None) -> list[ProbeSpec]:
    """The named probes, or every probe measured by default (opt-in ones, as llc, only by name)."""
    try:
        return [get_probe(n) for n in names] if names else [s for s in REGISTRY.values() if s.default]
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def parse_steps(text: str | Sequence[int] | None, available: list[int]) -> list[int]:
    """``None``/"all", "last", "A:B" (inclusive), "s1,s2,..." or a list -> the available steps selected."""
    if text is None or text == "all":
        return list(available)
    if not isinstance(text, str):
        text = ",".join(map(str, text))
    if text == "last":
        return available[-1:]
    try:
        if ":" in text:
            lo, hi = (int(x) if x else None for x in text.split(":", 1))
        else:
            wanted = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        raise UsageError(f"steps {text!r} not understood; use all, last, A:B or a comma list") from None
    if ":" in text:
        chosen = [s for s in available if (lo is None or s >= lo) and (hi is None or s <= hi)]
        if not chosen:
            raise UsageError(f"steps {text!r} select no checkpoint (A:B runs from A up to B); this run has "
                             f"{len(available)} from {available[0]} to {available[-1]}")
        return chosen
    missing = sorted(wanted - set(available))
    if missing:
        raise UsageError(f"no checkpoint at step(s) {', '.join(map(str, missing))}; this run has {available[0]}..{available[-1]}")
    return sorted(wanted)


def current_options(run: store.Run, settings: ProbeSettings | None = None, overrides: Mapping[str, Any] | None = None,
                    key_freqs: Sequence[int] | str | None = None, engine: str | None = None) -> ProbeOptions:
    """The run's stored options (or the defaults), with what the caller gives replaced:
    ``settings`` replaces all settings, ``overrides`` (``key=value``) single ones."""
    stored = run.probe_options
    options = ProbeOptions() if stored is None else \
        ProbeOptions.from_dict(stored, f"{run.path / store.PROBES_DIR / store.PROBE_OPTIONS}")
    if settings is not None:
        options = dataclasses.replace(options, settings=settings)
    options = options.changed(overrides, engine, key_freqs)
    order = group_order(run.config.operation, run.config.p)
    K = n_frequencies(order)
    wrong = [k for k in options.key_freqs or () if not 1 <= k <= K]
    if wrong:
        where = f"p={run.config.p}" if order == run.config.p else \
            f"{run.config.operation} mod {run.config.p} (frequencies of Z_{order}, in discrete-log coordinates)"
        raise UsageError(f"key frequencies {', '.join(map(str, wrong))} do not exist for {where}; "
                         f"give values in 1..{K} or 'auto'")
    return options


def depends(spec: ProbeSpec, options: ProbeOptions, key_freqs: Sequence[int]) -> dict[str, Any]:
    """Everything but the checkpoint that ``spec``'s rows depend on."""
    out: dict[str, Any] = {"version": spec.version, "settings": options.settings.subset(spec.settings)}
    if spec.reads_key_freqs:
        out["key_freqs"] = list(key_freqs)
    if spec.reads_activations:
        out["engine"] = options.engine
    return out


def fix_key_frequencies(run: store.Run, options: ProbeOptions, cache: store.ProbeCache, evaluate: GridEvaluator,
                        skipped: dict[int, str]) -> dict[str, Any]:
    """The key frequencies: given, or by every rule at the last readable checkpoint (cached by
    its content, the rules' thresholds, the engine and the rules' version; ``key_rule`` only
    picks one of the rules' answers). ``by_layer``: each block's own neurons and wl sets (the
    model's are their union, `probes.fourier.key_frequencies`)."""
    if options.key_freqs is not None:
        result = {"rule": "given", "step": None, "key_freqs": list(options.key_freqs), "by_rule": {}}
        store.write_probe_json(run, store.KEY_FREQUENCIES, result)
        return result
    thresholds = options.settings.subset(get_probe("fourier").settings)
    needs = {"version": get_probe("fourier").version, "settings": thresholds, "engine": options.engine}
    rule = options.settings.key_rule
    for step in reversed(run.steps):
        try:
            digest = cache.checkpoint_hash(step)
            cached = cache.key_frequencies(step, digest, needs)
            if cached:
                by_rule, by_layer = cached["by_rule"], cached["by_layer"]
            else:
                found = key_frequencies_of(group_view(evaluate(step)), options.settings)
                by_rule, by_layer = {r: found[r] for r in KEY_RULES}, found["layers"]
        except (store.CorruptCheckpoint, OSError) as exc:
            skipped[step] = str(exc)
            continue
        result = {"rule": rule, "step": step, "hash": digest, "depends": needs, "key_freqs": by_rule[rule],
                  "by_rule": by_rule, "by_layer": by_layer}
        if result != cached:
            store.write_probe_json(run, store.KEY_FREQUENCIES, result)
        return result
    raise UsageError(f"run {run.name!r} has no readable checkpoint to take key frequencies from")


@dataclass
class _Plan:
    """Per probe: the steps whose cached rows stay, and the selected steps to measure."""

    hashes: dict[int, str]
    keep: dict[str, set[int]]
    todo: dict[str, list[int]]
    depends: dict[str, dict[str, Any]]  # per probe: what its rows depend on besides the checkpoint

    def steps_to_measure(self) -> list[int]:
        return sorted({s for steps in self.todo.values() for s in steps})


def plan(run: store.Run, cache: store.ProbeCache, selected: list[int], names: set[str], options: ProbeOptions,
         key_freqs: Sequence[int], skipped: dict[int, str]) -> _Plan:
    """Which steps' rows stay and which selected steps are measured, per probe (the cache has
    already dropped the records of rows its tables do not hold)."""
    hashes = {}
    for step in run.steps:
        try:
            hashes[step] = cache.checkpoint_hash(step)
        except OSError as exc:
            if step in selected:
                skipped[step] = str(exc)
    keep, todo = {}, {}
    needs = {spec.name: depends(spec, options, key_freqs) for spec in REGISTRY.values()}
    for name in REGISTRY:
        keep[name] = {s for s, h in hashes.items() if cache.is_valid(name, s, h, needs[name])}
        todo[name] = [s for s in selected if s in hashes and s not in keep[name]] if name in names else []
    return _Plan(hashes, keep, todo, needs)


def measure(run: store.Run, work: _Plan, options: ProbeOptions, key_freqs: Sequence[int], cache: store.ProbeCache,
            evaluate: GridEvaluator, skipped: dict[int, str], monitor: Monitor, workers: int = 1,
            new_rows: dict[str, list] | None = None) -> dict[str, list]:
    """Evaluate each step that some probe needs once, call those probes; new rows per probe
    (added to ``new_rows`` as they come, so a caller can keep them if this is interrupted).
    Probes marked ``parallel`` are measured afterwards, one checkpoint per worker process."""
    inline = {n: todo for n, todo in work.todo.items() if todo and not REGISTRY[n].parallel}
    pooled = {n: todo for n, todo in work.todo.items() if todo and REGISTRY[n].parallel}
    steps = sorted({s for todo in inline.values() for s in todo})
    pooled_steps = sorted({s for todo in pooled.values() for s in todo})
    new_rows = {name: [] for name in REGISTRY} if new_rows is None else new_rows
    bar = monitor.bar(len(steps) + len(pooled_steps), f"probe {run.name}", unit="ckpt") if steps or pooled_steps else None
    freqs = tuple(key_freqs)

    def keep(step: int, frames: dict[str, Any] | str) -> None:
        if isinstance(frames, str):  # why the checkpoint could not be measured
            skipped[step] = frames
        else:
            for name, frame in frames.items():
                new_rows[name].append(frame)
                cache.record(name, step, work.hashes[step], work.depends[name])
        if bar is not None:
            bar.advance(1)

    try:
        for i, step in enumerate(steps):
            keep(step, measure_checkpoint(evaluate, step, [n for n, todo in inline.items() if step in todo], options, freqs))
            if i % RELEASE_EVERY == RELEASE_EVERY - 1:
                heap.release_memory()
        if pooled_steps:
            jobs = [(step, work.hashes[step], [n for n, todo in pooled.items() if step in todo]) for step in pooled_steps]
            for step, frames in _in_workers(run, jobs, options, freqs, workers):
                keep(step, frames)
    finally:
        if bar is not None:
            bar.close()
    return new_rows


def measure_checkpoint(evaluate: GridEvaluator, step: int, names: Sequence[str], options: ProbeOptions,
                       key_freqs: tuple[int, ...]) -> dict[str, Any] | str:
    """The named probes' new rows at ``step`` ({probe: frame}), or why the checkpoint could not be read."""
    try:
        inp = evaluate(step)
    except store.CorruptCheckpoint as exc:
        return str(exc)
    frames = {}
    in_group = group_view(inp) if any(REGISTRY[name].in_group for name in names) else None
    for name in names:
        spec = REGISTRY[name]
        frame = spec.fn(in_group if spec.in_group else inp, key_freqs, options.settings)
        if tuple(frame.columns) != spec.columns:
            raise RuntimeError(f"probe {name!r} returned columns {list(frame.columns)}; its spec declares {list(spec.columns)}")
        frames[name] = frame
    return frames


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_WORKER: dict[str, Any] = {}  # in a worker process: the run and evaluator it measures


def _worker_measure(run_path: str, step: int, digest: str, names: list[str], options: dict,
                    key_freqs: tuple[int, ...]):
    """One checkpoint in a worker of `workbench.pool` (one torch thread: workers share the cores).
    The checkpoint must still be the one planned (``digest``): its rows are recorded under that hash."""
    opts = ProbeOptions.from_dict(options)
    if _WORKER.get("key") != (run_path, opts.engine):
        run = store.open_run(Path(run_path))
        _WORKER.update(key=(run_path, opts.engine), evaluate=GridEvaluator(run, opts.engine, with_model=True))
    evaluate = _WORKER["evaluate"]
    try:
        now = evaluate.run.content_hash(step)
    except OSError as exc:
        return str(exc)
    if now != digest:
        return f"checkpoint {evaluate.run.step_path(step)} changed while the run was being probed; probe again"
    return measure_checkpoint(evaluate, step, names, opts, key_freqs)


def _in_workers(run: store.Run, jobs: list[tuple[int, str, list[str]]], options: ProbeOptions,
                key_freqs: tuple[int, ...], workers: int):
    """Yield (step, frames or why not) for each job as it finishes, through `workbench.pool`: in
    ``workers`` processes, or in this one when workers is 1, with one torch thread either way so
    the numbers are the same. A job that fails is that checkpoint's reason, named; the rest go on."""
    args = [(str(run.path), step, digest, names, options.to_dict(), key_freqs) for step, digest, names in jobs]
    try:
        with run_jobs(_worker_measure, args, workers, threads=1) as results:
            for done in results:
                step = jobs[done.index][0]
                yield step, done.value if done.ok else f"the {', '.join(jobs[done.index][2])} probe failed: {done.error}"
    finally:
        _WORKER.clear()


def merge_tables(run: store.Run, cache: store.ProbeCache, work: _Plan, old_tables: dict[str, Any],
                 new_rows: dict[str, list]) -> dict[str, Any]:
    """Every probe's table: its still-valid cached rows plus the new ones, written when changed
    (the index first forgets the tables being rewritten, so a cut-off write is never trusted)."""
    import pandas as pd

    tables, changed = {}, {}
    for name in REGISTRY:
        old, fresh, keep = old_tables[name], new_rows[name], work.keep[name]
        kept = old[old.step.isin(keep)] if old is not None else None
        cache.keep_only(name, keep | {int(f.step.iloc[0]) for f in fresh})
        if not fresh and old is None:
            continue  # never measured (an opt-in probe): no table
        if not fresh and len(kept) == len(old):
            if len(old):
                tables[name] = old
            continue
        parts = ([kept] if kept is not None and len(kept) else []) + fresh
        changed[name] = pd.concat(parts, ignore_index=True).sort_values("step", kind="stable") \
            .reset_index(drop=True) if parts else pd.DataFrame(columns=list(REGISTRY[name].columns))
        if len(changed[name]):  # every row made stale (an opt-in probe's setting changed): no table
            tables[name] = changed[name]
    cache.invalidate(list(changed))
    for name, table in changed.items():
        store.write_probe_table(run, name, table)
    return tables


def _save(run: store.Run, cache: store.ProbeCache, work: _Plan, old_tables: dict[str, Any], new_rows: dict[str, list],
          options: ProbeOptions) -> dict[str, Any]:
    """Tables, cache index and the options they were made with, together."""
    tables = merge_tables(run, cache, work, old_tables, new_rows)
    cache.save()
    if run.probe_options != options.to_dict():
        store.write_probe_options(run, options.to_dict())
    return tables


def save_phases(run: store.Run, tables: dict[str, Any], key_freqs: Sequence[int]) -> Phases:
    phases = detect_phases(run.metrics, tables.get("progress"), tables.get("weights"), list(key_freqs))
    store.write_probe_json(run, store.PHASES_FILE, phases.to_dict())
    return phases


def probe(
    run: str | Path | store.Run,
    probes: Sequence[str] | None = None,
    steps: str | Sequence[int] | None = None,
    settings: ProbeSettings | None = None,
    key_freqs: Sequence[int] | str | None = None,
    engine: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool | Monitor = True,
    root: Path | None = None,
    workers: int | None = None,
) -> ProbeResults:
    """Measure a run's checkpoints with the selected probes (default: every probe but the opt-in
    ones) and write the tables.

    Options not given are the run's current ones (`current_options`); the ones used become its
    current ones. ``key_freqs`` "auto" takes them from the run again after they were given.
    ``workers``: processes for the ``parallel`` probes (default: one per core). They are
    spawned, so a script that probes with ``llc`` must guard its top level with
    ``if __name__ == "__main__":`` (each worker imports the main module), or pass workers=1.
    Interrupted, it keeps the rows measured so far: the same call again measures only the rest.
    """
    run = run if isinstance(run, store.Run) else store.open_run(run, root)
    specs = select_probes(probes)
    if not run.steps:
        raise UsageError(f"run {run.name!r} has no checkpoints yet; train it first (make train RUN={run.name})")
    selected = parse_steps(steps, run.steps)
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    # read the run's own files first: a damaged one stops here, before anything is written
    options = current_options(run, settings, overrides, key_freqs, engine)
    n_train = len(run.split.train)
    store.check_consistent(run)  # the log, the state and the checkpoints agree: a damaged or cut one is refused now
    if "llc" in {s.name for s in specs} and options.settings.llc_batch_size > n_train:
        raise UsageError(f"llc_batch_size {options.settings.llc_batch_size} exceeds the run's {n_train} training "
                         f"examples; give llc_batch_size=N with N <= {n_train}")
    heap.bound_heap_growth()
    with store.probe_lock(run):
        options = current_options(run, settings, overrides, key_freqs, engine)  # again: another prober may have changed them
        evaluate = GridEvaluator(run, options.engine, reuse_buffers=True,
                                 with_model=any(s.reads_model and not s.parallel for s in specs))
        cache = store.ProbeCache(run)
        old_tables = {name: cache.table(name) for name in REGISTRY}
        skipped: dict[int, str] = {}
        kf = fix_key_frequencies(run, options, cache, evaluate, skipped)
        work = plan(run, cache, selected, {s.name for s in specs}, options, kf["key_freqs"], skipped)
        new_rows: dict[str, list] = {name: [] for name in REGISTRY}
        try:
            measure(run, work, options, kf["key_freqs"], cache, evaluate, skipped, resolve_monitor(progress),
                    default_workers() if workers is None else workers, new_rows)
        except BaseException:  # interrupted (or a probe failed): keep every row measured so far
            _save(run, cache, work, old_tables, new_rows, options)
            raise
        tables = _save(run, cache, work, old_tables, new_rows, options)
        phases = save_phases(run, tables, kf["key_freqs"])
    computed = {s.name: len(new_rows[s.name]) for s in specs}
    return ProbeResults(run=run, options=options, tables=tables, key_frequencies=kf, phases=phases,
                        computed=computed, skipped=skipped, rebuilt=cache.damaged)
