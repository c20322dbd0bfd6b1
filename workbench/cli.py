"""Command line: a thin layer over the library API (``python -m workbench ...``, ``make ...``).

Bad input (a `UsageError`) prints one line, ``error: ...``, to stderr and exits with 2.

Example:
    $ python -m workbench train demo --preset fast epochs=3000
    $ python -m workbench runs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from workbench.errors import UsageError


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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.epilog = "Any config field can follow as key=value, e.g. epochs=20000 lr=3e-3 (see `python -m workbench presets`)."

    p = sub.add_parser("probe", help="measure every checkpoint of a run; write tables; print a summary")
    p.add_argument("run", help="run name or path")
    p.add_argument("--probes", default=None, help="comma-separated probe names (default: all)")
    p.add_argument("--steps", default=None, help="all (default), last, A:B or a comma list of steps")
    p.add_argument("--engine", default="fast", choices=("fast", "bridge"),
                   help="activations from the factored fast path (default; equal to the bridge to float32 rounding) or a TransformerBridge run_with_cache")
    p.add_argument("--key-freqs", default=None, help="comma-separated key frequencies (default: from the final checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.epilog = ("Probe settings follow as key=value: neuron_threshold=0.85 min_cluster_frac=0.02 "
                "norm_rel_threshold=0.1 norm_min_share=1.5 key_rule=neurons|embed|wl.")

    p = sub.add_parser("report", help="probe (cached), then write report/index.html and PNG/SVG/PDF figures")
    p.add_argument("run", help="run name or path")
    p.add_argument("--no-images", action="store_true", help="HTML only, no static images")

    p = sub.add_parser("runs", help="list runs")

    p = sub.add_parser("info", help="summarise one run: config, progress, final metrics")
    p.add_argument("run", help="run name or path")

    p = sub.add_parser("presets", help="list presets with their departures from the defaults")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    from workbench.config import parse_overrides
    from workbench.train import train

    run = train(
        args.run,
        preset=args.preset,
        overrides=parse_overrides(args.overrides),
        device=args.device,
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    rows = run.metrics_rows
    if rows:
        last = rows[-1]
        print(
            f"{run.name}: step {last['step']}/{run.config.epochs}  train loss {last['train_loss']:.3g} "
            f"acc {last['train_acc']:.1%}  test loss {last['test_loss']:.3g} acc {last['test_acc']:.1%}  -> {run.path}"
        )
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from workbench.config import parse_overrides
    from workbench.runner import probe, settings_from

    names = [n.strip() for n in args.probes.split(",") if n.strip()] if args.probes else None
    key_freqs = None
    if args.key_freqs is not None:
        try:
            key_freqs = [int(k) for k in args.key_freqs.split(",") if k.strip()]
        except ValueError:
            raise UsageError(f"--key-freqs must be comma-separated integers, got {args.key_freqs!r}") from None
    report = probe(args.run, names, args.steps, settings_from(parse_overrides(args.overrides)),
                   key_freqs=key_freqs, progress=not args.no_progress, engine=args.engine)
    print(report.summary())
    print(f"tables: {report.run.path / 'probes'}")
    return 1 if report.skipped else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.report import build_report

    result = build_report(args.run, formats=() if args.no_images else ("png", "svg", "pdf"), progress=True)
    if result.image_error:
        print(f"note: {result.image_error}", file=sys.stderr)
    print(f"{len(result.figures)} figures, {len(result.images)} image files")
    print(f"report: {result.index}")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from workbench.store import CONFIG, checkpoints_root, open_run

    root = checkpoints_root()
    names = sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []
    if not names:
        print(f"no runs in {root}; train one with `make train RUN=<name>`")
    for name in names:
        run = open_run(name)
        state = "complete" if run.is_complete else f"at step {run.state_step}"
        print(f"{name:20s} {run.config.operation} p={run.config.p}  {len(run.steps)} checkpoints  {state}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from workbench.store import open_run

    run = open_run(args.run)
    cfg = run.config
    steps = run.steps
    print(f"run {run.name}  ({run.path})")
    print(f"  task     {cfg.operation} mod {cfg.p}, {cfg.frac_train:.0%} train (split seed {cfg.split_seed})")
    print(f"  model    {cfg.n_layers} layer(s), d_model {cfg.d_model}, {cfg.n_heads}x{cfg.d_head} heads, d_mlp {cfg.d_mlp}, {cfg.act_fn}")
    print(f"  training AdamW lr {cfg.lr:g}, wd {cfg.weight_decay:g}, {cfg.epochs} epochs; "
          f"{'complete' if run.is_complete else f'resumable at step {run.state_step}'}")
    print(f"  checkpoints {len(steps)}" + (f" (steps {steps[0]}..{steps[-1]})" if steps else ""))
    rows = run.metrics_rows
    if rows:
        last = rows[-1]
        print(f"  last eval step {last['step']}: train loss {last['train_loss']:.3g} acc {last['train_acc']:.1%}, "
              f"test loss {last['test_loss']:.3g} acc {last['test_acc']:.1%}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from workbench.config import PRESET_DIR, preset_names

    for name in preset_names():
        print(f"== {name}")
        print((PRESET_DIR / f"{name}.toml").read_text().strip())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may sit anywhere on a train command line
        args.overrides = [e for e in extra if not e.startswith("-")]
        stray = [e for e in extra if e not in args.overrides or args.command not in ("train", "probe")]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        command = {"train": _cmd_train, "probe": _cmd_probe, "report": _cmd_report, "runs": _cmd_runs, "info": _cmd_info, "presets": _cmd_presets}[args.command]
        return command(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`
        return 0
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
