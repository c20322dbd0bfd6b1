"""Benchmarks (``make bench``): ratios measured side by side in one process, printed as a table.

Sections:
    train   the training step, side by side in one process (rounds alternated, so machine noise
            hits both alike): (a) the step the trainers took before the table-lookup step (the
            plain forward, `FastTransformer`, and per-tensor `torch.optim.AdamW`) against (b) the
            step they take now (`workbench.training.step.GroupStep`: attention as lookups, AdamW
            over one buffer), ms per full-batch epoch at the `fast` and `nanda2023` sizes (target
            (b) <= 0.5 (a) at `fast`); the FLOPs (b) executes per second (`lookup.step_flops`)
            beside the machine's measured single-precision matrix-product peak (target >= 40%);
            and (c) the same AdamW step written directly on a TransformerLens TransformerBridge.
    sweep   member-epochs per second of the `fast` preset's step in groups of 1, 4, 16, 64 (and
            256 on a GPU), the plain stacked step with per-tensor AdamW against the new step, side
            by side (target >= 2x); the same through `train_group` with its checkpoints and metrics;
            the fast preset's memorisation and grok steps alone and inside a group; sweep probing's
            seconds and peak memory for 2 and 6 members.
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

    science the `fast` and `nanda2023` presets end to end with the step's science checks (bridge
            parity, group = solo, the probes on the trained checkpoints); on the CPU only when
            named (``--only science``: nanda2023's 40,000 epochs take ~25 minutes on 2 cores).

``--device cuda`` (``make bench DEVICE=cuda``) runs the train, sweep and science sections on the
GPU and writes ``bench-<section>-cuda.md``. Results are printed as Markdown tables and written to
``docs/results/bench-<section>.md``, each
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
from workbench.errors import UsageError
from workbench.model import (
    FastTransformer,
    bridge_activations,
    build_bridge,
    factored_grid_activations,
    initial_weights,
    trainable_names,
)
from workbench.probing import GridEvaluator, llc_line
from workbench.tasks import grid_tokens, make_dataset, make_split
from workbench.training import (
    Batch,
    GroupStep,
    lookup_forward,
    pick_device,
    stacked_forward,
    start_run,
    step_flops,
    train_group,
)

SOURCE = Path(__file__).resolve().parents[1]
RESULTS = SOURCE / "docs" / "results"


def provenance_header(section: str, device: torch.device | None = None) -> str:
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
            f"Written by `make bench` (`python -m workbench.bench --only {section}"
            f"{' --device cuda' if device is not None and device.type == 'cuda' else ''}`); do not edit by hand.\n\n"
            f"- measured: {datetime.now(UTC).isoformat(timespec='seconds')}\n- commit: {commit}\n"
            f"- machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}"
            + (f"; GPU {torch.cuda.get_device_name(device)}" if device is not None and device.type == "cuda" else "")
            + "\n\n")


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"### {title}", "", f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _alternate(variants: dict, device: torch.device, rounds: int, reps: int) -> dict[str, float]:
    """Median ms per call of each variant, the variants alternated round by round after one
    warm-up round (so that a slow spell of the machine hits them alike)."""
    for fn in variants.values():
        for _ in range(2):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / reps * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_peak(device: torch.device, rounds: int = 7) -> float:
    """GFLOP/s of a large single-precision matrix product (2n^3 FLOPs; n = 2048 on a CPU, 8192 on
    a GPU): the median of ``rounds``, what the machine's BLAS reaches (the reference for a step's
    FLOP rate)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    ms = _alternate({"mm": lambda: a @ b}, device, rounds, 3)["mm"]
    return 2 * n**3 / (ms / 1000) / 1e9


def _train_set(cfg, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The preset's training inputs [n, 3] and labels [n], on ``device``."""
    ds = make_dataset(cfg.operation, cfg.p)
    split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    return ds.tokens[split.train].to(device), ds.labels[split.train].to(device)


class PlainStep:
    """The step the trainers took before the table-lookup step, as it was: the plain forward (one
    member: `FastTransformer`, whose ``forward`` the solo trainer ran; more: `stacked_forward`, the
    batched trainer's), the float64 ``F.cross_entropy`` and AdamW tensor by tensor
    (`torch.optim.AdamW`'s default on CPU; the batched trainer's own AdamW made the same per-tensor
    operations), every trainable weight updated."""

    def __init__(self, cfg, members: int, device: torch.device):
        self.cfg, self.members = cfg, members
        x, y = _train_set(cfg, device)
        weights = initial_weights(cfg)
        if members == 1:
            self.module = FastTransformer(cfg, weights).to(device)
            params = [self.module.w(n) for n in trainable_names(cfg)]
            self.tokens, self.labels = x, y
        else:
            self.w = {n: weights[n].to(device).unsqueeze(0).repeat(members, *[1] * weights[n].dim()) for n in weights}
            params = [self.w[n].requires_grad_() for n in trainable_names(cfg)]
            self.tokens, self.labels = x.expand(members, -1, -1), y.expand(members, -1)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                                           foreach=False)

    def __call__(self) -> None:
        if self.members == 1:
            logits = self.module(self.tokens)
            loss = F.cross_entropy(logits.double(), self.labels)
        else:
            logits = stacked_forward(self.cfg, self.w, self.tokens)
            per = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), self.labels.reshape(-1), reduction="none")
            loss = per.view(self.members, -1).mean(1).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class LookupStep:
    """The step the trainers take now (`workbench.training.step.GroupStep`), on ``members`` copies
    of the preset's initial weights and training set."""

    def __init__(self, cfg, members: int, device: torch.device):
        x, y = _train_set(cfg, device)
        self.model = GroupStep(cfg, [cfg] * members, [initial_weights(cfg)] * members, [{}] * members, [{}] * members,
                               device)
        self.batch = Batch([x] * members, [y] * members, len(x))
        self.step = 100  # past the warm-up

    def __call__(self) -> None:
        self.model.update(self.batch.losses(self.model.logits(self.batch)), self.step)
        self.step += 1


def bench_train(device: torch.device, small: bool = False) -> str:
    rounds, epochs_per_round = (2, 1) if small else (7, 5)
    peak = matmul_peak(device, rounds)
    rows = [("device", _device_name(device)), ("threads", str(torch.get_num_threads())),
            ("single-precision matrix product (n = 8192 on a GPU, 2048 on a CPU): GFLOP/s, the peak", f"{peak:.0f}")]
    for preset in ("smoke",) if small else ("fast", "nanda2023"):
        cfg = load_config(preset)
        n = len(_train_set(cfg, torch.device("cpu"))[0])
        variants = {"a": PlainStep(cfg, 1, device), "b": LookupStep(cfg, 1, device)}
        if preset in ("nanda2023", "smoke"):
            variants["c"] = _bridge_step(cfg, device)
        ms = _alternate(variants, device, rounds, epochs_per_round)
        a, b = ms["a"], ms["b"]
        flops_a, flops_b = step_flops(cfg, n, lookup=False), step_flops(cfg, n, lookup=True)
        target = " (target <= 0.5)" if preset == "fast" else ""
        rows += [
            (f"{preset}: p={cfg.p}, {n} train inputs, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}", ""),
            (f"{preset}: (a) plain step, ms/epoch (median)", f"{a:.2f}"),
            (f"{preset}: (b) table-lookup step, ms/epoch (median)", f"{b:.2f}"),
            (f"{preset}: ratio (b)/(a){target}", f"{b / a:.2f}"),
            (f"{preset}: (b) executes {flops_b / 1e6:.0f} MFLOP/epoch: GFLOP/s, % of peak (target >= 40%)",
             f"{flops_b / (b / 1000) / 1e9:.0f}, {100 * flops_b / (b / 1000) / 1e9 / peak:.0f}%"),
            (f"{preset}: (a) executes {flops_a / 1e6:.0f} MFLOP/epoch: GFLOP/s, % of peak",
             f"{flops_a / (a / 1000) / 1e9:.0f}, {100 * flops_a / (a / 1000) / 1e9 / peak:.0f}%"),
        ]
        if "c" in ms:
            rows.append((f"{preset}: (c) TransformerBridge training, ms/epoch; (a)/(c), (b)/(c)",
                         f"{ms['c']:.1f}; {a / ms['c']:.2f}, {b / ms['c']:.2f}"))
    return _table("Training step, full batch", rows)


def _bridge_step(cfg, device: torch.device):
    """One AdamW step written directly on a TransformerLens TransformerBridge (all positions)."""
    x, y = _train_set(cfg, device)
    bridge = build_bridge(cfg, initial_weights(cfg)).to(device)
    bridge.train()
    opt = torch.optim.AdamW(bridge.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)

    def step() -> None:
        loss = F.cross_entropy(bridge(x)[:, -1].double(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return "cpu"


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


def _sweep_members(root: Path, name: str, count: int, overrides: dict, preset: str = "fast") -> list:
    return [start_run(root / f"{name}-{i}", load_config(preset, {**overrides, "model_seed": i, "split_seed": i}))
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


def bench_sweep(device: torch.device, small: bool = False) -> str:
    """Batched training throughput of the fast preset (member-epochs per second): the plain stacked
    step against the table-lookup step in groups of 1, 4, 16, 64 (and 256 on a GPU), side by side;
    then whole groups through `train_group` (checkpoints and metrics written) against the same 16
    configs trained one after another; the fast preset's memorisation and grok steps alone and in
    a group; and sweep probing: seconds per member and peak memory for sweeps of 2 and 6 members."""

    preset, epochs, n_solo = ("smoke", 20, 2) if small else ("fast", 200, 16)
    cfg = load_config(preset)
    sizes = (1, 2) if small else (1, 4, 16, 64, 256) if device.type == "cuda" else (1, 4, 16, 64)
    rows = [("device", _device_name(device))]
    for size in sizes:
        reps = max(1, 16 // size)
        ms = _alternate({"plain": PlainStep(cfg, size, device), "lookup": LookupStep(cfg, size, device)}, device,
                        2 if small else 5, reps)
        old, new = size * 1000 / ms["plain"], size * 1000 / ms["lookup"]
        rows.append((f"group of {size}: member-epochs/s, plain step / lookup step (ratio, target >= 2x)",
                     f"{old:.0f} / {new:.0f} ({new / old:.2f}x)"))
    common = {"epochs": epochs, "ckpt_every": 100, "ckpt_log": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        solo = _sweep_members(root, "solo", n_solo, common, preset)
        t0 = time.perf_counter()
        for run in solo:
            workbench.train(run.name, device=str(device), progress=False, root=root)
        solo_rate = n_solo * epochs / (time.perf_counter() - t0)
        rows.append((f"train_group, checkpoints and metrics written: {n_solo} members one after another, member-epochs/s",
                     f"{solo_rate:.1f}"))
        for size in sizes:
            group = _sweep_members(root, f"g{size}", size, common, preset)
            t0 = time.perf_counter()
            train_group(group, device=device)
            rate = size * epochs / (time.perf_counter() - t0)
            rows.append((f"train_group, group of {size}: member-epochs/s (ratio to one after another)",
                         f"{rate:.1f} ({rate / solo_rate:.2f}x)"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = workbench.train("alone", preset, device=str(device), progress=False, root=root)
        group = _sweep_members(root, "grouped", 4, {}, preset)
        train_group(group, device=device)
        a, g = outcome(alone.metrics), outcome(store_run(group[0].path).metrics)
        rows.append((f"{preset} preset alone: memorisation / grok step (train, test acc >= 99%)", f"{a['fit_step']} / {a['gen_step']}"))
        rows.append((f"{preset} preset as member 0 of a group of 4: memorisation / grok step", f"{g['fit_step']} / {g['gen_step']}"))
    if device.type == "cpu" and not small:
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


SEEDS_SPREAD = (1_030, 2_880)  # the `fast` preset's grok step over model and split seeds 0-7 (docs/results/sweeps.md)


def bench_science(device: torch.device, small: bool = False) -> str:
    """The presets end to end on ``device``, with the training step's science checks (docs/model.md,
    the trainer): the memorisation and grok steps (the `fast` preset's against its seeds' spread);
    a checkpoint reloaded into the TransformerLens bridge (on the CPU) against the training model on
    ``device``, on all p^2 inputs (bound: 1e-5 of the largest logit); a member trained in a group of
    3 on ``device`` against its solo run; and the probes over the trained run's checkpoints.
    ``small``: the smoke preset only (the check of this section itself, on any machine)."""
    rows = [("device", _device_name(device))]
    presets = ("smoke",) if small else ("fast", "nanda2023")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for preset in presets:
            t0 = time.perf_counter()
            run = workbench.train(preset, preset, device=str(device), progress=False, root=root)
            wall = time.perf_counter() - t0
            steps = outcome(run.metrics)
            spread = (f" (seeds' spread {SEEDS_SPREAD[0]:,}-{SEEDS_SPREAD[1]:,}: "
                      f"{'inside' if steps['gen_step'] and SEEDS_SPREAD[0] <= steps['gen_step'] <= SEEDS_SPREAD[1] else 'OUTSIDE'})"
                      if preset == "fast" else "")
            rows += [(f"{preset}: {run.config.epochs} epochs, wall s (training loop s)",
                      f"{wall:.1f} ({run.provenance['sessions'][-1]['wall_s']:.1f})"),
                     (f"{preset}: memorisation / grok step (train, test acc >= 99%){spread}",
                      f"{steps['fit_step']} / {steps['gen_step']}"),
                     (f"{preset}: bridge (cpu) against the training model ({device.type}), max abs logit difference / "
                      "largest logit, all p^2 inputs, first and last checkpoint (bound 1e-5)",
                      ", ".join(f"{_bridge_gap(run, step, device):.1e}" for step in (run.steps[1], run.steps[-1])))]
            t0 = time.perf_counter()
            result = workbench.probe(run, progress=False)
            rows.append((f"{preset}: probes over {len(run.steps)} checkpoints: s; key frequencies; phase steps",
                         f"{time.perf_counter() - t0:.1f}; {result.key_frequencies['key_freqs']}; "
                         + ", ".join(f"{k} {v}" for k, v in result.phases.steps.items())))
        rows.append(_group_against_solo(root, "smoke" if small else "fast", device))
    return _table("Science checks of the training step, end to end", rows)


def _bridge_gap(run, step: int, device: torch.device) -> float:
    """max |bridge logits - training-model logits| / max |logit| on all p^2 inputs: the bridge on
    the CPU, the training forward (`lookup_forward`, or `stacked_forward` for a deeper model) on ``device``."""
    tokens = run.dataset.tokens
    weights = {k: v.unsqueeze(0).to(device) for k, v in run.weights(step).items()}
    with torch.no_grad():
        if run.config.n_layers == 1:
            trained = lookup_forward(run.config, weights, tokens[None, :, 0].to(device), tokens[None, :, 1].to(device))
        else:
            trained = stacked_forward(run.config, weights, tokens[None].to(device))
        reloaded = workbench.load_bridge(run, step)(tokens)[:, -1]
    trained = trained[0].cpu()
    return ((trained - reloaded).abs().max() / trained.abs().max().clamp(min=1.0)).item()


def _group_against_solo(root: Path, preset: str, device: torch.device, epochs: int = 200) -> tuple[str, str]:
    """Member 1 of a group of 3 (model seeds 0-2, training fractions 0.3, 0.5, 0.4: member 1 is not
    padded) against its solo run: the relative weight difference at steps 10 and ``epochs``."""
    common = {"epochs": epochs, "ckpt_every": 10, "ckpt_log": 0}
    variants = [{"model_seed": 0, "frac_train": 0.3}, {"model_seed": 1, "frac_train": 0.5}, {"model_seed": 2, "frac_train": 0.4}]
    group = [start_run(root / f"group-{i}", load_config(preset, {**common, **v})) for i, v in enumerate(variants)]
    train_group(group, device=device)
    solo = workbench.train("group-solo", preset, {**common, **variants[1]}, device=str(device), progress=False, root=root)

    def gap(step: int) -> str:
        a, b = group[1].weights(step), solo.weights(step)
        va, vb = (torch.cat([w[k].flatten() for k in sorted(w)]) for w in (a, b))
        return "identical" if torch.equal(va, vb) else f"{((va - vb).norm() / vb.norm()).item():.1e}"
    return (f"{preset}: member 1 of a group of 3 against its solo run, relative weight difference at step 10, {epochs}",
            f"{gap(10)}, {gap(epochs)}")


def store_run(path: Path):
    return store.Run(path)


SECTIONS = {"train": bench_train, "probe": bench_probe, "preset": bench_preset, "llc": bench_llc, "sweep": bench_sweep,
            "science": bench_science}
ON_DEVICE = ("train", "sweep", "science")  # the sections that take --device and --small (the others measure the CPU path)
ALIASES = {"fast": "preset"}  # the section's name before it was renamed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated sections: {', '.join(SECTIONS)} "
                        f"(default: all; on a GPU: {', '.join(ON_DEVICE)})")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the train and sweep sections run")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the bench-<section>.md pages (default: docs/results)")
    parser.add_argument("--small", action="store_true", help="the device sections at toy sizes, in seconds (a check of the "
                        "benchmark itself, as the test suite runs it; its numbers mean nothing)")
    args = parser.parse_args(argv)
    try:
        device = torch.device(str(pick_device(args.device)))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # on the CPU, science (nanda2023's 40,000 epochs end to end, ~25 min on 2 cores) runs only when named
    default = ON_DEVICE if device.type == "cuda" or args.small else tuple(n for n in SECTIONS if n != "science")
    names = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()] if args.only else list(default)
    unknown = [n for n in names if n not in SECTIONS]
    off_device = [n for n in names if (device.type == "cuda" or args.small) and n not in ON_DEVICE]
    if unknown or off_device:
        valid = ", ".join(ON_DEVICE if off_device else SECTIONS)
        print(f"error: unknown bench section(s) {', '.join(unknown or off_device)} for {device.type}; valid: {valid}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-cuda" if device.type == "cuda" else ""
    for name in names:
        text = SECTIONS[name](device, args.small) if name in ON_DEVICE else SECTIONS[name]()
        print(text, flush=True)
        (out / f"bench-{name}{suffix}.md").write_text(provenance_header(name, device) + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
