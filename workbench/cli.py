"""Command line: a thin layer over the library API (``python -m workbench ...``, ``make ...``).

Bad input (a `UsageError`, a `store.DamagedFile` among them) prints one line, ``error: ...``, to
stderr and exits with 2. Runs live under ``$WORKBENCH_CHECKPOINTS`` when it is set, else under
``checkpoints/``: this is the only place the environment is read.

Example:
    $ python -m workbench train demo --preset fast epochs=3000
    $ python -m workbench runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from probes import REGISTRY, ProbeSettings
from workbench.config import PRESET_DIR, parse_overrides, preset_names
from workbench.errors import UsageError, os_error_line
from workbench.forecasting import (
    SHIPPED_CALIBRATION,
    evaluate_forecasts,
    fit_calibration,
    forecast,
    load_calibration,
    save_calibration,
    shipped_calibration,
)
from workbench.importer import import_run
from workbench.monitor import Console
from workbench.probing import ENGINES, probe
from workbench.random_features import DATASETS, digits_task, double_descent, modular_task
from workbench.report import (
    IMAGE_FORMATS,
    build_report,
    build_rff_report,
    build_sweep_report,
    double_descent_page,
    metrics_line,
    results_header,
)
from workbench.store import (
    PROBES_DIR,
    TABLE,
    CorruptCheckpoint,
    default_root,
    ensure_output_dir,
    list_runs,
    open_run,
    remove_stale_creations,
    write_text,
)
from workbench.sweeps import SWEEP_DIR, definition_names, open_sweep, phase_table, probe_sweep, run_sweep
from workbench.training import FAILED, PENDING, status_kind, train


def runs_root() -> Path:
    """``$WORKBENCH_CHECKPOINTS``, else ``checkpoints/`` (`workbench.store.default_root`)."""
    return default_root()


def _console(args: argparse.Namespace) -> Console:
    """The shell's monitor: bars on stderr when it is a terminal and --no-progress is not given,
    notes (a resumed state, a run already complete) on stdout either way."""
    return Console(bars=not getattr(args, "no_progress", False) and sys.stderr.isatty())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage + message and exit
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m workbench", description="Train grokking runs and look inside them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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

    p = sub.add_parser("sweep", help="train every member of a sweep (resumable, in batched groups), then probe them all")
    p.add_argument("sweep", help="a shipped sweep (see `python -m workbench sweeps`) or a path to a .toml definition")
    p.add_argument("--name", default=None, help="the sweep's folder under checkpoints/ (default: the definition's name)")
    p.add_argument("--executor", default="local", help="local (default: in this process, or --workers processes) "
                   "or ray (one task per group, on $RAY_ADDRESS or a local Ray)")
    p.add_argument("--workers", type=int, default=1, help="local: processes training groups and probing members")
    p.add_argument("--group-size", type=int, default=8, help="at most this many members train as one stacked model")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--no-shared-disk", action="store_true", help="ray: the cluster's nodes do not see this disk; each "
                   "group's files travel to its task and back through Ray's object store")
    p.add_argument("--no-probe", action="store_true", help="train only")
    p.add_argument("--no-progress", action="store_true", help="no per-member lines")
    p.epilog = ("Overrides follow as key=value (a field for every member), key=v1,v2 (an axis) or seeds=N, "
                "e.g. epochs=1000 weight_decay=0.3,1 seeds=2.")

    p = sub.add_parser("sweep-report", help="write checkpoints/<sweep>/report/index.html (probing the sweep if needed)")
    p.add_argument("sweep", help="sweep name or path")
    p.add_argument("--no-images", action="store_true", help="HTML only, no static images")

    p = sub.add_parser("sweeps", help="list the shipped sweep definitions")

    p = sub.add_parser("runs", help="list runs")

    p = sub.add_parser("info", help="summarise one run: config, progress, final metrics")
    p.add_argument("run", help="run name or path")

    p = sub.add_parser("presets", help="list presets with their departures from the defaults")

    p = sub.add_parser("forecast", help="will this run generalise, and when? from what training alone shows")
    p.add_argument("run", help="run name or a run directory's path")
    p.add_argument("--at", type=int, default=None, help="forecast as of this step (default: the last checkpoint)")
    p.add_argument("--horizon", type=int, default=None, help="steps the run may train (default: its configured epochs)")
    p.add_argument("--calibration", default=None, help="a calibration file from forecast-fit (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("forecast-fit", help="fit the forecaster's constants on complete sweeps")
    p.add_argument("--sweeps", default="forecast-fit,seeds", help="comma-separated sweep names or paths (default: %(default)s)")
    p.add_argument("--out", default=None, help="where to write the calibration (default: the shipped calibration.json)")

    p = sub.add_parser("forecast-eval", help="score a calibration on complete sweeps it was not fitted on")
    p.add_argument("--sweeps", default="forecast-heldout", help="comma-separated sweep names or paths (default: %(default)s)")
    p.add_argument("--calibration", default=None, help="a calibration file (default: the shipped one)")
    p.add_argument("--in-sample", default=None, help="also score the sweeps it was fitted on, for contrast (e.g. forecast-fit,seeds)")
    p.add_argument("--out", default=None, help="write the results page here (and its rows beside it as .csv)")

    p = sub.add_parser("rff", help="double descent in seconds: least squares on random Fourier features, N swept across n")
    p.add_argument("--dataset", default="modular", choices=DATASETS, help="one-hot operands of a task, or scikit-learn's digits")
    p.add_argument("--out", required=True, help="folder for rff.csv, index.html and the figures")
    p.add_argument("--operation", default="add", help="modular: the task (default: %(default)s)")
    p.add_argument("--p", type=int, default=41, help="modular: the modulus (default: %(default)s)")
    p.add_argument("--frac-train", type=float, default=0.3, help="modular: the training fraction (default: %(default)s)")
    p.add_argument("--n-train", type=int, default=500, help="digits: training images (default: %(default)s)")
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of training labels made wrong (default: 0)")
    p.add_argument("--features", default=None,
                   help="comma-separated feature counts N (default: 25 log-spaced from 0.05n to 10n, plus n and its neighbours)")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge penalty (default: 0, the minimum-norm solution)")
    p.add_argument("--seed", type=int, default=0, help="the feature draw and the split (default: %(default)s)")
    p.add_argument("--no-images", action="store_true", help="skip the PNG/SVG/PDF exports (the HTML page is complete)")

    p = sub.add_parser("double-descent", help="the random-feature curves and the width sweeps' tables, as one results page")
    p.add_argument("--sweeps", default="model-wise,sample-wise",
                   help="comma-separated complete sweeps (default: %(default)s; probed here if they have no table)")
    p.add_argument("--out", required=True, help="the markdown page to write (e.g. docs/results/double-descent.md)")
    return parser


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
        progress=_console(args),
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
    results = probe(args.run, names, args.steps, progress=_console(args), root=runs_root(),
                    workers=args.workers, **_probe_options(args))
    print(results.summary())
    print(f"tables: {results.run.path / PROBES_DIR}")
    return 1 if results.skipped else 0


def _cmd_report(args: argparse.Namespace) -> int:
    result = build_report(args.run, formats=() if args.no_images else IMAGE_FORMATS, progress=_console(args),
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = run_sweep(args.sweep, parse_overrides(args.overrides), root=runs_root(), executor=args.executor,
                      workers=args.workers, group_size=args.group_size, device=args.device,
                      probe=not args.no_probe, progress=False if args.no_progress else _console(args),
                      sweep_name=args.name, shared_disk=not args.no_shared_disk)
    statuses = [status_kind(m["status"]) for m in sweep.members]
    print(f"sweep {sweep.name!r}: " + ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
          + f"  -> {sweep.path}")
    if not args.no_probe:
        table = sweep.table
        axes = [a for a in sweep.definition.axis_names if a in table and table[a].nunique() > 1 and a != "seed"]
        if len(axes) >= 2:
            print(phase_table(table, axes[0], axes[1]).to_string())
        elif "outcome" in table:
            print(table[["member", "outcome", "fit_step", "gen_step", "key_freqs"]].to_string(index=False))
        print(f"table: {sweep.path / TABLE}   (next: make report SWEEP={sweep.name})")
    return 1 if PENDING in statuses or FAILED in statuses else 0


def _cmd_sweep_report(args: argparse.Namespace) -> int:
    result = build_sweep_report(open_sweep(args.sweep, runs_root()), formats=() if args.no_images else IMAGE_FORMATS)
    if result.image_error:
        print(f"note: {result.image_error}", file=sys.stderr)
    print(f"{len(result.figures)} figures, {len(result.images)} image files")
    print(f"report: {result.index}")
    return 0


def _cmd_sweeps(args: argparse.Namespace) -> int:
    for name in definition_names():
        print(f"== {name}")
        print((SWEEP_DIR / f"{name}.toml").read_text().strip())
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    root = runs_root()
    names = list_runs(root)
    if not names:
        print(f"no runs in {root}; train one with `make train RUN=<name>`")
    for name in names:  # a damaged run is listed with what is wrong, and the listing goes on
        try:
            run = open_run(name, root)
            state = "complete" if run.is_complete else f"at step {run.state_step}"
            print(f"{name:20s} {run.config.operation} p={run.config.p}  {len(run.steps)} checkpoints  {state}")
        except (UsageError, CorruptCheckpoint) as exc:
            print(f"{name:20s} DAMAGED: {exc}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    run = open_run(args.run, runs_root())
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


def _calibration(path: str | None):
    return load_calibration(Path(path)) if path else shipped_calibration()


def _sweep_runs(names: str) -> tuple[list, list[str]]:
    """Every complete member of the named sweeps; a `UsageError` if one has none."""
    runs, used = [], []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        sweep = open_sweep(name, runs_root())
        members = sweep.runs()
        if not members:
            raise UsageError(f"sweep {sweep.name!r} has no complete member; train it with make sweep SWEEP={sweep.name}")
        runs += members
        used.append(sweep.name)
    if not runs:
        raise UsageError("no sweep given; name one or more with --sweeps a,b")
    return runs, used


def _cmd_forecast(args: argparse.Namespace) -> int:
    result = forecast(args.run, args.at, args.horizon, _calibration(args.calibration), root=runs_root())
    print(json.dumps(result.to_dict(), allow_nan=False, default=_no_nan) if args.json else result.text())
    return 0


def _no_nan(value):
    raise TypeError(f"not JSON: {value!r}")


def _cmd_forecast_fit(args: argparse.Namespace) -> int:
    runs, used = _sweep_runs(args.sweeps)
    cal = fit_calibration(runs, {"sweeps": used})
    out = Path(args.out) if args.out else SHIPPED_CALIBRATION
    save_calibration(cal, out)
    print(f"fitted on {len(runs)} runs of {', '.join(used)} ({cal.fitted_on['grokking']} grok): "
          f"g* {cal.gini_star:.3f}, sigma {cal.sigma_prior:.2f}/{cal.sigma_trend:.2f}  -> {out}")
    return 0


def _cmd_forecast_eval(args: argparse.Namespace) -> int:
    runs, used = _sweep_runs(args.sweeps)
    cal = _calibration(args.calibration)
    evaluation = evaluate_forecasts(runs, cal, used)
    print(evaluation.table())
    if args.in_sample:
        fitted_runs, fitted_used = _sweep_runs(args.in_sample)
        evaluation.in_sample = evaluate_forecasts(fitted_runs, cal, fitted_used)
        print(f"in sample ({', '.join(fitted_used)}):\n{evaluation.in_sample.table()}")
    if args.out:
        evaluation.write(Path(args.out))
        print(f"-> {args.out}")
    return 0


def _feature_counts(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--features takes comma-separated whole numbers, e.g. 50,100,500; got {text!r}") from None


MAX_RFF_P = 127  # p = 127: ~4,800 training rows, a 4,800 x 48,000 float64 design matrix (~1.8 GB)


def _cmd_rff(args: argparse.Namespace) -> int:
    counts = _feature_counts(args.features)
    if not (0.0 <= args.ridge < float("inf")):
        raise UsageError(f"--ridge must be a finite number >= 0 (0: the minimum-norm solution), got {args.ridge}")
    if args.dataset == "modular" and not 2 <= args.p <= MAX_RFF_P:
        raise UsageError(f"--p must lie in 2..{MAX_RFF_P} for the random-feature experiment (its design matrix has "
                         f"about p^2 rows and up to 10x as many columns), got {args.p}")
    ensure_output_dir(Path(args.out))  # before the work: a bad --out is one line, at once
    if args.dataset == "modular":
        task = modular_task(args.operation, args.p, args.frac_train, args.seed, args.label_noise)
    else:
        task = digits_task(args.n_train, args.seed, args.label_noise)
    table = double_descent(task, counts, seed=args.seed, ridge=args.ridge)
    report = build_rff_report(table, Path(args.out), task.description, formats=() if args.no_images else IMAGE_FORMATS)
    peak = table.loc[table.test_loss.idxmax()]
    print(f"{task.description}: test loss peaks at N = {int(peak.n_features)} ({peak.test_loss:.4g}); "
          f"lowest {table.test_loss.min():.4g} at N = {int(table.loc[table.test_loss.idxmin()].n_features)}")
    if report.image_error:
        print(report.image_error, file=sys.stderr)
    print(f"-> {report.table}\n-> {report.index}")
    return 0


RFF_RESULTS = (("modular: add mod 59, 30% train (the fast preset's task)", "modular", {"p": 59}),
               ("modular: add mod 59, 30% train, 10% label noise", "modular", {"p": 59, "label_noise": 0.1}),
               ("digits: scikit-learn's 8x8 digits, 500 train", "digits", {}))


def _cmd_double_descent(args: argparse.Namespace) -> int:
    sweeps = []
    for name in [s.strip() for s in args.sweeps.split(",") if s.strip()]:
        sweep = open_sweep(name, runs_root())
        table = sweep.table if (sweep.path / TABLE).is_file() else probe_sweep(sweep, progress=False)
        if "eff_params_test" not in table:  # probed before the effective-parameters probe existed
            table = probe_sweep(sweep, progress=False)
        group = "label_noise" if "label_noise" in sweep.definition.axis_names else None
        x = "frac_train" if "frac_train" in sweep.definition.axis_names else "d_model"
        sweeps.append((sweep, table[table.status == "complete"], group, x))
    rff = []
    for title, dataset, options in RFF_RESULTS:
        start = time.perf_counter()
        task = modular_task(**options) if dataset == "modular" else digits_task(**options)
        rff.append((title, double_descent(task), time.perf_counter() - start))
    page = double_descent_page(results_header("make double-descent", "python -m workbench double-descent"), rff, sweeps)
    out = Path(args.out)
    ensure_output_dir(out.parent)
    write_text(out, page)
    print(f"-> {out}")
    return 0


def _one_line(text: str) -> str:
    """A message as the one line the CLI promises (a file name may hold a newline)."""
    return " ".join(text.split("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may sit anywhere on a train command line
        args.overrides = [e for e in extra if not e.startswith("-")]
        stray = [e for e in extra if e not in args.overrides or args.command not in ("train", "probe", "report", "import", "sweep")]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        remove_stale_creations(runs_root())  # what a process killed while creating a run left behind
        command = {"train": _cmd_train, "probe": _cmd_probe, "report": _cmd_report, "import": _cmd_import, "runs": _cmd_runs, "info": _cmd_info, "presets": _cmd_presets, "sweep": _cmd_sweep,
                   "sweep-report": _cmd_sweep_report, "sweeps": _cmd_sweeps, "forecast": _cmd_forecast,
                   "forecast-fit": _cmd_forecast_fit, "forecast-eval": _cmd_forecast_eval,
                   "rff": _cmd_rff, "double-descent": _cmd_double_descent}[args.command]
        return command(args)
    except (UsageError, CorruptCheckpoint) as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`
        return 0
    except OSError as exc:  # a fault the store did not name (it names the file and the cause itself)
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
