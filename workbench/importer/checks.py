"""What an import must pass before it is written: shapes, logit parity with the source's own forward, the split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from workbench import model
from workbench.config import RunConfig
from workbench.importer.readers import Source, _loss
from workbench.importer.safe_load import ImportRefused
from workbench.model import FastTransformer, convert_nanda2023_state_dict, convert_tl2_state_dict
from workbench.tasks import Split, grid_tokens

PARITY_ATOL = 1e-5

SPLIT_RTOL = 1e-2

PARITY_CHECKS = 5  # checkpoints whose logits are compared with the source architecture's


def _to_bridge(source: Source, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if source.format == "nanda2023":
        return convert_nanda2023_state_dict(source.config, state_dict)
    return convert_tl2_state_dict(source.config, state_dict)


def _source_logits(source: Source, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """The source architecture's logits over the p answer tokens, float64."""
    cfg = source.config
    if source.format == "nanda2023":
        return model.nanda2023_logits(cfg, source.checkpoints[step], tokens)
    return model.tl2_logits(cfg, source.checkpoints[step], tokens)


def _ours(cfg: RunConfig, weights: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    return FastTransformer(cfg, weights).activations(tokens)["logits"]


def _check_parity(path: Path, source: Source, weights: dict[int, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """The converted weights' logits (`FastTransformer`, the bridge's operations) against the source
    architecture's on every input, in float64, at up to `PARITY_CHECKS` checkpoints over the run."""

    cfg = source.config
    tokens = grid_tokens(cfg.p)
    steps = sorted(weights)
    picks = sorted({steps[round(i * (len(steps) - 1) / max(PARITY_CHECKS - 1, 1))] for i in range(PARITY_CHECKS)})
    worst = 0.0
    for step in picks:
        theirs = _source_logits(source, step, tokens)[:, : cfg.p]
        ours = _ours(cfg, {k: v.double() for k, v in weights[step].items()}, tokens)
        diff = float((ours - theirs).abs().max())
        worst = max(worst, diff)
        if not diff <= PARITY_ATOL:
            raise ImportRefused(f"cannot import {path}: at step {step} the converted model's logits differ from the "
                                f"{source.format} architecture's by {diff:.3g} (> {PARITY_ATOL:g}); the config or the "
                                "name mapping does not fit this file")
    return {"steps": picks, "inputs": cfg.p * cfg.p, "max_abs_logit_diff": worst, "atol": PARITY_ATOL,
            "dtype": "float64"}



def _check_split(path: Path, source: Source, weights, dataset, split: Split) -> dict[str, Any]:
    """The source's logged losses reproduced on ``split`` at the checkpoint with the widest logged
    test/train gap (the source's full logits: Nanda's model scores p+1 tokens). Where no checkpoint's
    step has both losses logged (a source that logs the test loss every 10 epochs and checkpoints at
    others), the train loss alone is checked, at the checkpoint where it is largest; where neither
    can be, the check says why it was skipped (the CLI prints it; the provenance keeps it)."""
    both = [s for s in weights if s in source.train_losses and s in source.test_losses and source.train_losses[s] > 0]
    train_only = [s for s in weights if s in source.train_losses and source.train_losses[s] > 0]
    if both:
        step = max(both, key=lambda s: source.test_losses[s] / source.train_losses[s])
        parts = ("train", "test")
    elif train_only:
        step = max(train_only, key=lambda s: source.train_losses[s])
        parts = ("train",)
    else:
        return {"skipped": "the source logged no loss at any checkpoint's step: the split could not be checked "
                           "against the source's own numbers"}
    logits = _source_logits(source, step, dataset.tokens)
    ours = {part: _loss(logits[idx], dataset.labels[idx])
            for part, idx in (("train", split.train), ("test", split.test)) if part in parts}
    logged = {"train": source.train_losses[step], **({"test": source.test_losses[step]} if "test" in parts else {})}
    for part in parts:
        if not math.isclose(ours[part], logged[part], rel_tol=SPLIT_RTOL, abs_tol=1e-6):
            raise ImportRefused(
                f"cannot import {path}: the rebuilt split does not reproduce the source's {part} loss at step {step} "
                f"({ours[part]:.4g} here, {logged[part]:.4g} logged); give the source's split (split_seed=..., "
                "split_rule=..., frac_train=...) on the command line")
    check = {"step": step, "logged": logged, "recomputed": ours, "rtol": SPLIT_RTOL}
    if parts == ("train",):
        check["only"] = ("train loss only: the source logged no test loss at any checkpoint's step, so the test set "
                         "was not checked")
    return check


def refuse_aliased(path: Path, source: Source) -> None:
    """Refuse a file whose checkpoints are one and the same tensors: a trainer that kept references
    to its live ``state_dict()`` instead of copies saved the final weights under every step."""
    states = [source.checkpoints[s] for s in sorted(source.checkpoints)]
    if len(states) < 2:
        return
    key = next(iter(states[0]))
    same_storage = len({sd[key].untyped_storage().data_ptr() for sd in states}) == 1
    same_values = all(sd.keys() == states[0].keys() and all(torch.equal(sd[k], states[0][k]) for k in sd)
                      for sd in states[1:])
    if same_storage or same_values:
        raise ImportRefused(f"cannot import {path}: its {len(states)} checkpoints are one and the same weights (the "
                            "trainer kept references to its live state_dict() instead of copies, so every step holds "
                            "the final model); save copies (copy.deepcopy(model.state_dict())) and export again, or "
                            "import the final model alone")


def _metrics_rows(source: Source, weights, dataset, split: Split) -> list[dict[str, Any]]:
    """One row per logged step: the source's losses; at checkpoints also accuracy (and any loss
    the source did not log there), computed from the imported weights."""
    rows: dict[int, dict[str, Any]] = {}
    for step, value in source.train_losses.items():
        rows.setdefault(step, {"step": step})["train_loss"] = value
    for step, value in source.test_losses.items():
        rows.setdefault(step, {"step": step})["test_loss"] = value
    for step, w in weights.items():
        logits = _ours(source.config, w, dataset.tokens)
        row = rows.setdefault(step, {"step": step})
        for part, idx in (("train", split.train), ("test", split.test)):
            row[f"{part}_acc"] = float((logits[idx].argmax(-1) == dataset.labels[idx]).double().mean())
            row.setdefault(f"{part}_loss", _loss(logits[idx], dataset.labels[idx]))
    return [rows[s] for s in sorted(rows) if s <= source.config.epochs]
