"""The sweep commands: train and probe a sweep, write its report, list the shipped definitions.

Example:
    $ python -m workbench sweep frac-wd --workers 2
    $ python -m workbench sweep-report frac-wd
"""

from __future__ import annotations

import argparse
import sys

from workbench.cli.shell import console, runs_root
from workbench.config import parse_overrides
from workbench.report import IMAGE_FORMATS, build_sweep_report
from workbench.store import TABLE
from workbench.sweeps import SWEEP_DIR, definition_names, open_sweep, phase_table, run_sweep
from workbench.training import FAILED, PENDING, status_kind


def add_commands(sub) -> dict:
    """Register this module's subcommands on ``sub``; returns {command: function}."""
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
    p.add_argument("--stop-hopeless", type=float, default=None, metavar="P", nargs="?", const=0.05,
                   help="stop members whose forecast gives p_generalise < P (default 0.05) in a regime that cannot "
                        "generalise, at --patience forecasts in a row; they are marked 'stopped: forecast'")
    p.add_argument("--patience", type=int, default=3, help="with --stop-hopeless: forecasts in a row (default: %(default)s)")
    p.add_argument("--extend", action="store_true", help="train on the members --stop-hopeless stopped")
    p.add_argument("--no-progress", action="store_true", help="no per-member lines")
    p.epilog = ("Overrides follow as key=value (a field for every member), key=v1,v2 (an axis) or seeds=N, "
                "e.g. epochs=1000 weight_decay=0.3,1 seeds=2.")

    p = sub.add_parser("sweep-report", help="write checkpoints/<sweep>/report/index.html (probing the sweep if needed)")
    p.add_argument("sweep", help="sweep name or path")
    p.add_argument("--no-images", action="store_true", help="HTML only, no static images")

    p = sub.add_parser("sweeps", help="list the shipped sweep definitions")

    return {"sweep": _cmd_sweep, "sweep-report": _cmd_sweep_report, "sweeps": _cmd_sweeps}


def _cmd_sweep(args: argparse.Namespace) -> int:
    sweep = run_sweep(args.sweep, parse_overrides(args.overrides), root=runs_root(), executor=args.executor,
                      workers=args.workers, group_size=args.group_size, device=args.device,
                      probe=not args.no_probe, progress=False if args.no_progress else console(args),
                      sweep_name=args.name, shared_disk=not args.no_shared_disk, stop_hopeless=args.stop_hopeless,
                      patience=args.patience, extend=args.extend)
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
