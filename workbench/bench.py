"""Benchmarks (``make bench``): ratios measured side by side in one process, printed as a table.

Sections:
    train   ms per full-batch epoch at the nanda2023 configuration, (a) the workbench trainer
            vs (b) the same AdamW step written directly on a TransformerLens TransformerBridge,
            alternated round by round so machine noise hits both alike. Target (a) <= 0.55 (b).
    probe   the grid activations by each engine (factored, FastTransformer, bridge), alternated;
            then the full probe suite at p = 113 (the canonical model) on synthetic runs of 50 and
            200 checkpoints, each probed in a fresh process: seconds per checkpoint (target
            <= 0.25), peak RSS (must not grow with the number of checkpoints), a re-run on
            the unchanged run (target < 1 s for 200), and a re-run after changing a setting
            that only the fourier probe reads (only its rows are measured again).
    preset  the `fast` preset end to end (``--only fast`` is the same section): wall time to test accuracy >= 99%, and the epochs
            to memorisation (train acc >= 99%) and to grokking (test acc >= 99%).
    llc     the llc probe with its default settings: seconds per checkpoint in one process
            (one thread) at the fast preset's sizes (target <= 3) and at nanda2023's; the
            speed-up of 2 worker processes over 1 on the same checkpoints, side by side; and
            the whole fast run's λ̂ curve (every checkpoint, 2 workers; target <= 5 minutes).
    sweep   batched training: member-epochs per second of the fast preset in groups of 1, 4, 16
            and 64 against the same 16 configs trained one after another (target >= 3x at 16);
            the fast preset's memorisation and grok steps alone and inside a group; sweep
            probing's seconds and peak memory for 2 and 6 members.

Results are printed as Markdown tables and written to ``docs/results/bench-<section>.md``, each
headed by when, on which commit and on which machine it was measured (`provenance_header`): the
docs site shows them as they were last measured, and docstrings cite those pages instead of
copying numbers.

Example:
    $ python -m workbench.bench --only train
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import workbench
from probes import ProbeSettings, llc
from probes.llc import by_step
from probes.outcome import outcome
from workbench import store
from workbench.config import load_config
from workbench.model import (
    FastTransformer,
    bridge_activations,
    build_bridge,
    factored_grid_activations,
    initial_weights,
)
from workbench.probing import GridEvaluator, llc_line
from workbench.tasks import grid_tokens, make_dataset, make_split
from workbench.training import start_run, train_group

SOURCE = Path(__file__).resolve().parents[1]
RESULTS = SOURCE / "docs" / "results"


def provenance_header(section: str) -> str:
    """The lines that head a results page: the command, the date, the commit and the machine."""
    import platform
    import subprocess
    from datetime import UTC, datetime

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"# Benchmark: {section}\n\n"
            f"Written by `make bench` (`python -m workbench.bench --only {section}`); do not edit by hand.\n\n"
            f"- measured: {datetime.now(UTC).isoformat(timespec='seconds')}\n- commit: {commit}\n"
            f"- machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}\n\n")


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"### {title}", "", f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def bench_train(rounds: int = 7, epochs_per_round: int = 5) -> str:
    cfg = load_config("nanda2023")
    ds = make_dataset(cfg.operation, cfg.p)
    split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    x, y = ds.tokens[split.train], ds.labels[split.train]
    weights = initial_weights(cfg)

    fast = FastTransformer(cfg, weights)
    bridge = build_bridge(cfg, weights)
    bridge.train()
    opts = {
        "workbench": torch.optim.AdamW(fast.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay),
        "bridge": torch.optim.AdamW(bridge.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay),
    }
    forwards = {"workbench": lambda: fast(x), "bridge": lambda: bridge(x)[:, -1]}

    def epoch(name: str) -> None:
        loss = F.cross_entropy(forwards[name]().double(), y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    for name in forwards:  # warm-up
        for _ in range(2):
            epoch(name)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(rounds):
        for name in forwards:
            t0 = time.perf_counter()
            for _ in range(epochs_per_round):
                epoch(name)
            times[name].append((time.perf_counter() - t0) / epochs_per_round * 1000)
    a, b = statistics.median(times["workbench"]), statistics.median(times["bridge"])
    rows = [
        ("configuration", f"nanda2023: p={cfg.p}, {len(x)} train examples, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}"),
        ("threads", str(torch.get_num_threads())),
        ("(a) workbench trainer, ms/epoch (median)", f"{a:.1f}"),
        ("(b) TransformerBridge training, ms/epoch (median)", f"{b:.1f}"),
        ("ratio (a)/(b) (target <= 0.55)", f"{a / b:.2f}"),
    ]
    return _table("Training step, full batch", rows)


def bench_preset() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = workbench.train("bench-fast", "fast", device="cpu", progress=False, root=Path(tmp))
        total = time.perf_counter() - t0
        metrics = run.metrics
        startup = run.provenance["sessions"][0]
        memorised = metrics[metrics.train_acc >= 0.99].step.min()
        grokked_rows = metrics[metrics.test_acc >= 0.99]
        grokked = grokked_rows.step.min() if len(grokked_rows) else None
        wall_to_grok = grokked_rows.wall_s.min() if len(grokked_rows) else None
        cfg = run.config
    rows = [
        ("configuration", f"fast: {cfg.operation} mod {cfg.p}, d_model {cfg.d_model}, lr {cfg.lr:g}, {cfg.epochs} epochs"),
        ("epochs to memorisation (train acc >= 99%)", str(memorised)),
        ("epochs to grokking (test acc >= 99%)", str(grokked)),
        ("grokking / memorisation (target >= 5)", f"{grokked / memorised:.1f}" if grokked and memorised else "n/a"),
        ("wall s to test acc >= 99%, training loop", f"{wall_to_grok:.1f}" if wall_to_grok is not None else "never"),
        ("wall s for the whole run incl. start-up", f"{total:.1f}"),
        ("training-loop wall s, all epochs", f"{startup.get('wall_s', float('nan')):.1f}"),
    ]
    return _table("The `fast` preset", rows)


_PROBE_CHILD = """
import json, sys, time
from pathlib import Path
import workbench
run = workbench.open_run(sys.argv[1], root=Path(sys.argv[2]))
t0 = time.perf_counter(); first = workbench.probe(run, progress=False); t1 = time.perf_counter()
again = workbench.probe(run, progress=False); t2 = time.perf_counter()
changed = workbench.probe(run, overrides={"norm_min_share": "2"}, progress=False); t3 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "rerun": t2 - t1, "n": len(run.steps), "computed": first.computed["fourier"],
                  "recomputed": again.computed["fourier"], "changed": t3 - t2, "changed_computed": changed.computed}))
"""


def _synthetic_run(root: Path, name: str, n_checkpoints: int) -> None:
    """A nanda2023-sized run whose checkpoints are the initial weights plus noise (timing needs no training)."""

    cfg = load_config("nanda2023", {"epochs": n_checkpoints - 1, "ckpt_every": 1})
    run = start_run(root / name, cfg)
    base = initial_weights(cfg)
    gen = torch.Generator().manual_seed(0)
    for step in range(n_checkpoints):
        noisy = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        store.write_checkpoint(run, step, noisy)


def _grid_forward_rows(rounds: int = 9) -> list[tuple[str, str]]:
    """ms for the activations over all p^2 inputs by each engine, alternated in one process."""

    cfg = load_config("nanda2023", {})
    weights = initial_weights(cfg)
    tokens = grid_tokens(cfg.p)
    bridge, fast, workspace = build_bridge(cfg, weights), FastTransformer(cfg, weights), {}
    variants = {
        "factored (default engine)": lambda: factored_grid_activations(cfg, weights, workspace),
        "FastTransformer.activations": lambda: fast.activations(tokens),
        "TransformerBridge run_with_cache": lambda: bridge_activations(bridge, cfg, tokens),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ms = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ref = ms["TransformerBridge run_with_cache"]
    return [(f"grid activations, {k}, ms (ratio to bridge)", f"{v:.1f} ({v / ref:.2f})") for k, v in ms.items()]


def bench_probe() -> str:
    import json
    import subprocess

    rows = [("configuration", "nanda2023 sizes: p=113, d_model 128, d_mlp 512; all four probes; 2 threads")]
    rows += _grid_forward_rows()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (50, 200):
            _synthetic_run(root, f"synthetic-{n}", n)
            proc = subprocess.Popen([sys.executable, "-c", _PROBE_CHILD, f"synthetic-{n}", str(root)],
                                    stdout=subprocess.PIPE, text=True)
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"probe child failed with status {proc.returncode}")
            result = json.loads(out.strip().splitlines()[-1])
            rows += [
                (f"{n} checkpoints: s per checkpoint (target <= 0.25)", f"{result['first'] / n:.3f}"),
                (f"{n} checkpoints: peak RSS, MiB", f"{usage.ru_maxrss / 1024:.0f}"),
                (f"{n} checkpoints: re-run on unchanged run, s (measured again: {result['recomputed']})",
                 f"{result['rerun']:.2f}"),
                (f"{n} checkpoints: re-run after a setting only `fourier` reads changed, s (measured again: "
                 + ", ".join(f"{k} {v}" for k, v in result["changed_computed"].items()) + ")", f"{result['changed']:.2f}"),
            ]
    return _table("Probe suite", rows)


def _llc_seconds(preset: str, rounds: int = 3) -> tuple[float, int]:
    """Median seconds of one default λ̂ estimate at ``preset``'s sizes, one thread (at the initial
    weights: the cost does not depend on training); and the training-set size."""

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(preset, {"ckpt_every": 1, "epochs": 1})
        run = start_run(Path(tmp) / preset, cfg)
        store.write_checkpoint(run, 0, initial_weights(cfg))
        inp = GridEvaluator(run, with_model=True)(0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            llc.probe(inp, (), ProbeSettings(llc_draws=5, llc_burnin=0))  # imports devinterp
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                llc.probe(inp, (), ProbeSettings())
                times.append(time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
        return statistics.median(times), int(inp.train_mask.sum())


def bench_llc() -> str:
    rows = [("settings", "defaults: 3 chains x (50 burn-in + 100 draws), batch 64, nβ = n / log n")]
    for preset in ("fast", "nanda2023"):
        seconds, n = _llc_seconds(preset)
        target = " (target <= 3)" if preset == "fast" else ""
        rows.append((f"{preset} sizes ({n} training pairs): s per checkpoint, one process{target}", f"{seconds:.2f}"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = workbench.train("bench-llc", "fast", device="cpu", progress=False, root=root)
        subset = ",".join(map(str, run.steps[-8:]))
        t0 = time.perf_counter()
        workbench.probe(run, probes=["llc"], steps=subset, progress=False, workers=1)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        workbench.probe(run, probes=["llc"], steps=subset, overrides={"llc_seed": "1"}, progress=False, workers=2)
        two = time.perf_counter() - t0
        rows.append(("8 checkpoints: 1 process s / 2 worker processes s (ratio)", f"{one:.1f} / {two:.1f} ({one / two:.2f}x)"))
        t0 = time.perf_counter()
        result = workbench.probe(run, probes=["llc"], overrides={"llc_seed": "0"}, progress=False, workers=2)
        whole = time.perf_counter() - t0
        rows.append((f"whole fast run, {len(run.steps)} checkpoints, 2 workers: minutes (target <= 5)", f"{whole / 60:.2f}"))

        rows.append(("the curve", llc_line(result.tables["llc"])))
        phases = workbench.probe(run, progress=False).phases.steps
        wide = by_step(result.tables["llc"])
        marks = {"init": 0, **{k: v for k, v in phases.items() if v is not None}, "final": run.steps[-1]}
        for name, step in marks.items():
            near = min(run.steps, key=lambda s, t=step: (abs(s - t), s))
            rows.append((f"λ̂ at {name} (step {near}) ± spread over chains",
                         f"{wide.llc[near]:.3g} ± {wide.llc_std[near]:.2g}" + ("" if wide.healthy[near] == 1 else " (flagged)")))
    return _table("Local learning coefficient (llc probe)", rows)


def _sweep_members(root: Path, name: str, count: int, overrides: dict) -> list:
    return [start_run(root / f"{name}-{i}", load_config("fast", {**overrides, "model_seed": i, "split_seed": i}))
            for i in range(count)]


def _probe_rss(definition: Path, root: Path, name: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one fresh process that runs a sweep and probes it."""
    import resource
    import subprocess

    code = ("import sys; from pathlib import Path; from workbench.sweeps import run_sweep; "
            f"run_sweep({str(definition)!r}, root=Path({str(root)!r}), progress=False, sweep_name={name!r})")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    seconds = time.perf_counter() - t0
    return seconds, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def bench_sweep(epochs: int = 200, sizes: tuple[int, ...] = (1, 4, 16, 64)) -> str:
    """Batched training throughput (members of the fast preset, member-epochs per second) in
    groups of 1, 4, 16, 64 against the same 16 configs trained one after another by the solo
    trainer in this process; the fast preset's memorisation and grok steps alone and in a group;
    and sweep probing: seconds per member and peak memory for sweeps of 2 and 6 members."""

    rows = []
    common = {"epochs": epochs, "ckpt_every": 100, "ckpt_log": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = _sweep_members(root, "solo", 16, common)
        t0 = time.perf_counter()
        for run in solo:
            workbench.train(run.name, device="cpu", progress=False, root=root)
        solo_rate = 16 * epochs / (time.perf_counter() - t0)
        rows.append(("16 members one after another (solo trainer): member-epochs/s", f"{solo_rate:.1f}"))
        for size in sizes:
            group = _sweep_members(root, f"g{size}", size, common)
            t0 = time.perf_counter()
            train_group(group)
            rate = size * epochs / (time.perf_counter() - t0)
            target = " (target >= 3x)" if size == 16 else ""
            rows.append((f"group of {size}: member-epochs/s (ratio to solo{target})", f"{rate:.1f} ({rate / solo_rate:.2f}x)"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = workbench.train("alone", "fast", device="cpu", progress=False, root=root)
        group = _sweep_members(root, "grouped", 4, {})
        train_group(group)
        a, g = outcome(alone.metrics), outcome(store_run(group[0].path).metrics)
        rows.append(("fast preset alone: memorisation / grok step (train, test acc >= 99%)", f"{a['fit_step']} / {a['gen_step']}"))
        rows.append(("fast preset as member 0 of a group of 4: memorisation / grok step", f"{g['fit_step']} / {g['gen_step']}"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for count in (2, 6):
            definition = root / f"m{count}.toml"
            definition.write_text('base = "smoke"\n[set]\nepochs = 300\n'
                                  f"[axes]\nmodel_seed = {{ range = [0, {count}] }}\n")
            seconds, rss = _probe_rss(definition, root, f"m{count}")
            rows.append((f"sweep of {count} smoke members, train + probe in one process: s / peak RSS MiB",
                         f"{seconds:.1f} / {rss:.0f}"))
    return _table("Sweeps: batched training and sweep probing", rows)


def store_run(path: Path):
    return store.Run(path)


SECTIONS = {"train": bench_train, "probe": bench_probe, "preset": bench_preset, "llc": bench_llc, "sweep": bench_sweep}
ALIASES = {"fast": "preset"}  # the section's name before it was renamed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"error: unknown bench section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = SECTIONS[name]()
        print(text, flush=True)
        (RESULTS / f"bench-{name}.md").write_text(provenance_header(name) + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
