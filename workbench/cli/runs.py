"""The commands on one run: train, probe, report, import, info, and the listings (runs, presets).

Example:
    $ python -m workbench train demo --preset fast epochs=3000
    $ python -m workbench info demo
"""

from __future__ import annotations

import argparse
import sys

from probes import REGISTRY, ProbeSettings
from workbench.cli.shell import console, runs_root
from workbench.config import PRESET_DIR, parse_overrides, preset_names
from workbench.errors import UsageError
from workbench.importer import import_run
from workbench.probing import ENGINES, probe
from workbench.report import IMAGE_FORMATS, build_report, metrics_line
from workbench.store import PROBES_DIR, CorruptCheckpoint, check_consistent, list_runs, open_run
from workbench.training import train


def add_commands(sub) -> dict:
    """Register this module's subcommands on ``sub``; returns {command: function}."""
    p = sub.add_parser("train", help="create, resume or finish a run")
    p.add_argument("run", help="run name (a folder under checkpoints/)")
    p.add_argument("--preset", default=None, help="preset name or config file (default: fast, or the run's own config)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--stop-after", type=int, default=None, help="stop once this step is saved (resumable)")
    p.add_argument("--from-last-checkpoint", action="store_true",
                   help="rebuild a damaged resume state from the last readable checkpoint (fresh optimiser moments)")
    p.add_argument("--extend-imported", action="store_true",
                   help="train an imported run on from its last checkpoint (fresh optimiser moments; its imported log is kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.epilog = "Any config field can follow as key=value, e.g. epochs=20000 lr=3e-3 (see `python -m workbench presets`)."

    p = sub.add_parser("probe", help="measure every checkpoint of a run; write tables; print a summary")
    p.add_argument("run", help="run name or path")
    p.add_argument("--probes", default=None, help="comma-separated probe names (default: all but the opt-in llc): "
                   + "; ".join(f"{spec.name} ({spec.doc})" for spec in REGISTRY.values()))
    p.add_argument("--steps", default=None, help="all (default), last, A:B or a comma list of steps")
    _probe_option_arguments(p)
    p.add_argument("--workers", type=int, default=None,
                   help="processes for the costly probes (llc), one checkpoint each (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("report", help="probe (cached), then write report/index.html and PNG/SVG/PDF figures")
    p.add_argument("run", help="run name or path")
    _probe_option_arguments(p)
    p.add_argument("--no-images", action="store_true", help="HTML only, no static images")

    p = sub.add_parser("import", help="turn a legacy run file (Nanda et al. 2023, the TL Grokking demo, TL 2.x "
                                      "state dicts) into a run directory")
    p.add_argument("src", help="the file: full_run_data.pth, the demo's saved dict, or a TL 2.x state dict (list)")
    p.add_argument("run", help="name of the new run (a folder under checkpoints/)")
    p.add_argument("--preset", default=None, help="for a bare state dict: the preset its config starts from")
    p.epilog = ("Config fields follow as key=value: for a bare state dict they are its config (p=113 d_model=128 ...); "
                "for the other formats they fix what the file lacks (split_seed=598).")

    p = sub.add_parser("runs", help="list runs")

    p = sub.add_parser("info", help="summarise one run: config, progress, final metrics")
    p.add_argument("run", help="run name or path")

    p = sub.add_parser("presets", help="list presets with their departures from the defaults")

    return {"train": _cmd_train, "probe": _cmd_probe, "report": _cmd_report, "import": _cmd_import, "runs": _cmd_runs, "info": _cmd_info, "presets": _cmd_presets}


def _probe_option_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default=None, choices=ENGINES,
                   help="factored: the factored forward (the default; equal to the bridge to float32 rounding); "
                        "bridge: a TransformerBridge run_with_cache (default: what the run was last probed with)")
    p.add_argument("--key-freqs", default=None,
                   help="comma-separated key frequencies, or 'auto' to take them from the final checkpoint again")
    p.add_argument("--default-settings", action="store_true", help="start from the default settings, not the run's current ones")
    p.epilog = ("Probe settings follow as key=value: neuron_threshold=0.85 min_cluster_frac=0.02 norm_rel_threshold=0.1 "
                "norm_min_share=1.5 key_rule=neurons|embed|wl, and the llc sampler's llc_step_size=1e-4 llc_nbeta=0 "
                "(n/log n) llc_localization=1000 llc_chains=3 llc_draws=100 llc_burnin=50 llc_batch_size=64 llc_seed=0. "
                "They change the run's current settings, which later `probe` and `report` commands use.")


def _probe_options(args: argparse.Namespace) -> dict:
    """The probe keyword arguments a probe or report command gives."""

    return {"settings": ProbeSettings() if args.default_settings else None, "overrides": parse_overrides(args.overrides),
            "engine": args.engine, "key_freqs": args.key_freqs}


def _cmd_train(args: argparse.Namespace) -> int:
    run = train(
        args.run,
        preset=args.preset,
        overrides=parse_overrides(args.overrides),
        device=args.device,
        progress=console(args),
        stop_after=args.stop_after,
        root=runs_root(),
        from_last_checkpoint=args.from_last_checkpoint,
        extend_imported=args.extend_imported,
    )
    if run.last_metrics:
        print(f"{run.name}: {metrics_line(run.last_metrics, run.config.epochs)}  -> {run.path}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.probes.split(",") if n.strip()] if args.probes else None
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    results = probe(args.run, names, args.steps, progress=console(args), root=runs_root(),
                    workers=args.workers, **_probe_options(args))
    print(results.summary())
    print(f"tables: {results.run.path / PROBES_DIR}")
    return 1 if results.skipped else 0


def _cmd_report(args: argparse.Namespace) -> int:
    result = build_report(args.run, formats=() if args.no_images else IMAGE_FORMATS, progress=console(args),
                          root=runs_root(), **_probe_options(args))
    if result.image_error:
        print(f"note: {result.image_error}", file=sys.stderr)
    print(f"probe options: {result.options.describe()}")
    print(f"{len(result.figures)} figures, {len(result.images)} image files")
    print(f"report: {result.index}")
    for step, why in sorted(result.skipped.items()):
        print(f"note: the report leaves out the checkpoint at step {step}: {why}", file=sys.stderr)
    return 1 if result.skipped else 0


def _cmd_import(args: argparse.Namespace) -> int:
    run = import_run(args.src, args.run, overrides=parse_overrides(args.overrides), preset=args.preset, root=runs_root())
    info = run.provenance["imported_from"]
    print(f"imported {info['format']} file {args.src} as run {run.name!r}: {len(run.steps)} checkpoints "
          f"(steps {run.steps[0]}..{run.steps[-1]}), {run.config.operation} mod {run.config.p}")
    print(f"  parity: max |logit difference| {info['parity']['max_abs_logit_diff']:.2g} over {info['parity']['inputs']} inputs "
          f"at steps {', '.join(map(str, info['parity']['steps']))}")
    check = info["split_check"] or {"skipped": "not checked (imported before the check was recorded)"}
    if "skipped" in check:
        print(f"  note: split not checked: {check['skipped']}")
    else:
        print(f"  split: the source's losses at step {check['step']} reproduced ("
              + ", ".join(f"{part} {value:.4g}" for part, value in check["recomputed"].items()) + ")")
        if "only" in check:
            print(f"  note: split checked on the {check['only']}")
    for note in info["notes"]:
        print(f"  note: {note}")
    print(f"  -> {run.path}   (next: make probe RUN={run.name})")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    root = runs_root()
    names = list_runs(root)
    if not names:
        print(f"no runs in {root}; train one with `make train RUN=<name>`")
    for name in names:  # a damaged run is listed with what is wrong, and the listing goes on
        try:
            run = open_run(name, root)
            check_consistent(run)  # a state from another run, a cut log: listed as damaged, not at its step
            state = "complete" if run.is_complete else f"at step {run.state_step}"
            print(f"{name:20s} {run.config.operation} p={run.config.p}  {len(run.steps)} checkpoints  {state}")
        except (UsageError, CorruptCheckpoint) as exc:
            print(f"{name:20s} DAMAGED: {exc}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    run = open_run(args.run, runs_root())
    check_consistent(run)
    cfg = run.config
    steps = run.steps
    print(f"run {run.name}  ({run.path})")
    print(f"  task     {cfg.operation} mod {cfg.p}, {cfg.frac_train:.0%} train (split seed {cfg.split_seed})")
    print(f"  model    {cfg.n_layers} layer(s), d_model {cfg.d_model}, {cfg.n_heads}x{cfg.d_head} heads, d_mlp {cfg.d_mlp}, {cfg.act_fn}")
    print(f"  training AdamW lr {cfg.lr:g}, wd {cfg.weight_decay:g}, {cfg.epochs} epochs; "
          f"{'complete' if run.is_complete else f'resumable at step {run.state_step}'}")
    print(f"  checkpoints {len(steps)}" + (f" (steps {steps[0]}..{steps[-1]})" if steps else ""))
    if run.last_metrics:
        print(f"  last eval {metrics_line(run.last_metrics)}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    for name in preset_names():
        print(f"== {name}")
        print((PRESET_DIR / f"{name}.toml").read_text().strip())
    return 0
