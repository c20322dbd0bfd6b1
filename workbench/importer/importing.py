"""Import the runs researchers already have: a legacy file becomes an ordinary run directory.

Three sources (`SOURCE_FORMATS`), detected from the file's contents:

* ``nanda2023`` — ``full_run_data.pth`` of Nanda et al. 2023 (progress-measures-paper): a dict
  with ``state_dicts`` (their transformer's names, `workbench.model.foreign`), ``epochs``,
  ``train_losses``, ``test_losses`` and ``config``. The split is rebuilt with their rule
  (``split_rule = "nanda2023"``: ``random.seed(seed)``, ``random.shuffle`` of the pairs).
* ``tl-demo`` — the file the TransformerLens Grokking demo saves: ``model``, ``config`` (a pickled
  TL 2.x ``HookedTransformerConfig``), ``checkpoints``, ``checkpoint_epochs`` (99, 199, ...),
  ``train_losses``, ``test_losses`` and ``train_indices``/``test_indices`` (or ``train_idx``/
  ``test_idx``, or neither: then the demo's ``torch.randperm`` split with ``split_seed``, 598).
* ``tl2`` — a bare TL 2.x ``HookedTransformer`` state dict, or a list of them; the config comes from
  the command line (``p=113 d_model=128 ...``) or a preset.

What is checked before anything is written, each failure one line naming the file (exit 2):

* **safety** — the file is read with ``torch.load(weights_only=True)`` and an allowlist: tensors,
  plain containers, torch dtypes/devices, and the few config classes these files pickle, which
  are read as plain data by an inert stand-in (`LegacyObject`) and never imported. Any other type
  (a pickled object whose reduction would call a shell command, say) is refused by name;
* **shapes** — every checkpoint fits the inferred config;
* **parity** — on all p² inputs the converted model's logits equal, within `PARITY_ATOL`, the
  source architecture's own forward pass (`workbench.model.foreign`, written from the source's formulas),
  both in float64 so that only the conversion is tested (it moves numbers, never rounds them), at
  the first, last and a few checkpoints between (in float32, as trained, the two differ by float32
  rounding: ~1e-5 at logits of ~50);
* **split** — at the checkpoint where the source logged the widest train/test gap, the losses the
  source logged are reproduced on the rebuilt split (`SPLIT_RTOL`): a wrong split cannot hide there.

Steps: "step s" means the weights after s updates (as in training here). The TL demo records
``train_losses[e]`` before the update of epoch e (step e), ``test_losses[e]`` after it (step e+1),
and checkpoint ``e`` after it (step e+1). Logged losses are imported at their steps; accuracies,
which the sources do not log, are computed at every checkpoint. The source file's SHA-256, its
format, the config fields read from it and those assumed are recorded in ``provenance.json``.

Example:
    >>> import torch
    >>> from workbench.config import load_config
    >>> from workbench.model import tl2_init
    >>> torch.save(tl2_init(load_config("smoke", {"init": "tl2"})), "model.pt")   # a bare TL 2.x state dict
    >>> run = import_run("model.pt", "bare", overrides={"operation": "add"})   # sizes read from the shapes
    >>> run.config.p, len(run.steps)          # one state dict: one checkpoint
    (23, 1)

    The published files are imported the same way: ``import_run("full_run_data.pth",
    "nanda-original")``, ``import_run("grokking_demo.pth", "tl-demo")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench import store
from workbench.errors import UsageError
from workbench.importer.checks import _check_parity, _check_split, _metrics_rows, _to_bridge, refuse_aliased
from workbench.importer.readers import detect_format, read_nanda2023, read_tl2, read_tl_demo
from workbench.importer.safe_load import ImportRefused, safe_load, sha256
from workbench.store import new_provenance
from workbench.tasks import make_dataset, make_split
from workbench.training import check_fits


# ------------------------------------------------------------------------------ checks and writing
def import_run(src: str | Path, run: str, overrides: Mapping[str, Any] | None = None, preset: str | None = None,
               root: Path | None = None) -> store.Run:
    """Import legacy file ``src`` as run ``<root>/<run>/`` (module docstring); return the `Run`.

    ``overrides`` fix config fields the file lacks or gets wrong (``split_seed=598``); for a bare
    state dict they, with ``preset``, are the config. Nothing is written unless every check passes.
    """

    path = Path(src).expanduser()
    target = store.run_path(run, root)
    if target.exists():
        raise UsageError(f"run {run!r} already exists ({target}); choose another RUN name")
    data = safe_load(path)
    try:
        fmt = detect_format(data)
        if preset is not None and fmt != "tl2":
            raise ValueError(f"--preset applies to bare state dicts only; this is a {fmt} file, which carries its "
                             "config (fix single fields with key=value)")
        overrides = dict(overrides or {})
        if fmt == "nanda2023":
            source = read_nanda2023(data, overrides)
        elif fmt == "tl-demo":
            source = read_tl_demo(data, overrides)
        else:
            source = read_tl2(data, overrides, preset)
        cfg = source.config
        check_fits(cfg, target.parent, what=f"run {run!r}")  # before the conversions allocate
        weights = {step: _to_bridge(source, sd) for step, sd in sorted(source.checkpoints.items())}
        if max(weights) > cfg.epochs:
            raise ValueError(f"a checkpoint at step {max(weights)} lies beyond epochs={cfg.epochs}")
        dataset = make_dataset(cfg.operation, cfg.p, cfg.table_seed)
        split = source.split or make_split(dataset.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    except UsageError as exc:
        raise ImportRefused(f"cannot import {path}: {exc}") from None
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise ImportRefused(f"cannot import {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    refuse_aliased(path, source)
    parity = _check_parity(path, source, weights)
    split_check = _check_split(path, source, weights, dataset, split)
    prov = new_provenance(cfg)
    prov["imported_from"] = {
        "file": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256(path), "format": source.format,
        "config_read": source.read, "config_assumed": {k: v for k, v in source.assumed.items() if k not in overrides},
        "config_overrides": dict(overrides), "notes": source.notes,
        "parity": parity, "split_check": split_check,
        "step_rule": "step s = the weights after s updates (see workbench.importer)",
    }

    rows = _metrics_rows(source, weights, dataset, split)
    prov["imported_from"]["logged_until"] = max((r["step"] for r in rows), default=0)  # `train` never rewrites these

    def fill(tmp: store.Run) -> None:
        for step, w in weights.items():
            store.write_checkpoint(tmp, step, w)
        store.rewrite_metrics(tmp.path, rows)

    final = max(weights)  # the readers keep every checkpoint within epochs
    state = store.ResumeState(step=final, weights=weights[final], adam={}, rng=torch.get_rng_state())
    return store.create_run(target, cfg, prov, split, state, fill=fill)
