"""The double-descent commands: the random-feature experiment and the results page.

Example:
    $ python -m workbench rff --dataset digits --out checkpoints/rff-digits
    $ python -m workbench double-descent --out docs/results/double-descent.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from workbench.cli.shell import runs_root
from workbench.errors import UsageError
from workbench.random_features import DATASETS, MAX_FEATURES, digits_task, double_descent, modular_task
from workbench.report import IMAGE_FORMATS, build_rff_report, double_descent_page, results_header
from workbench.store import TABLE, ensure_output_dir, write_text
from workbench.sweeps import open_sweep, probe_sweep


def add_commands(sub) -> dict:
    """Register this module's subcommands on ``sub``; returns {command: function}."""
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
    return {"rff": _cmd_rff, "double-descent": _cmd_double_descent}


def _feature_counts(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--features takes comma-separated whole numbers, e.g. 50,100,500; got {text!r}") from None


MAX_RFF_P = 127  # p = 127: ~4,800 training rows, a 4,800 x 48,000 float64 design matrix (~1.8 GB)


def _cmd_rff(args: argparse.Namespace) -> int:
    counts = _feature_counts(args.features)  # every option is checked, and the task built, before --out is made
    if counts is not None and (not counts or min(counts) < 1 or max(counts) > MAX_FEATURES):
        raise UsageError(f"--features must be whole numbers in 1..{MAX_FEATURES:,}, got {args.features!r}")
    if not (0.0 <= args.ridge < float("inf")):
        raise UsageError(f"--ridge must be a finite number >= 0 (0: the minimum-norm solution), got {args.ridge}")
    if args.dataset == "modular" and not 2 <= args.p <= MAX_RFF_P:
        raise UsageError(f"--p must lie in 2..{MAX_RFF_P} for the random-feature experiment (its design matrix has "
                         f"about p^2 rows and up to 10x as many columns), got {args.p}")
    if args.dataset == "modular":
        task = modular_task(args.operation, args.p, args.frac_train, args.seed, args.label_noise)
    else:
        task = digits_task(args.n_train, args.seed, args.label_noise)
    ensure_output_dir(Path(args.out))  # before the work: a bad --out is one line, at once
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


WIDTH_AXES = ("d_model", "frac_train")  # model-wise (width) or sample-wise (training fraction)


def _check_page_out(out: Path) -> None:
    """`UsageError` unless ``out`` can take the page: not a folder, its folder not a file."""
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the markdown page's path, e.g. {out / 'double-descent.md'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise UsageError(f"--out's folder {out.parent} is a file; give a page in a folder")


def _cmd_double_descent(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_page_out(out)  # everything is checked before any sweep is probed (minutes) or a file is written
    names = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    if not names:
        raise UsageError("--sweeps names no sweep; give complete width sweeps, e.g. --sweeps model-wise,sample-wise")
    opened = [open_sweep(name, runs_root()) for name in names]
    for sweep in opened:
        d = sweep.definition
        varied = set(d.axes) | {k for case in d.cases.values() for k in case}
        if not varied & set(WIDTH_AXES):
            raise UsageError(f"sweep {sweep.path.name!r} varies no {' or '.join(WIDTH_AXES)} (it varies: "
                             f"{', '.join(sorted(varied)) or 'nothing'}); double descent is read along the width or the data")
    sweeps = []
    for sweep in opened:
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
    ensure_output_dir(out.parent)
    write_text(out, page)
    print(f"-> {out}")
    return 0
