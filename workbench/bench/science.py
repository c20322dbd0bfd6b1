"""The science section: the presets end to end with the training step's science checks.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

import workbench
from probes.outcome import outcome
from workbench.bench.measure import device_name, table
from workbench.config import load_config
from workbench.training import lookup_forward, stacked_forward, start_run, train_group

SEEDS_SPREAD = (1_030, 2_880)  # the `fast` preset's grok step over model and split seeds 0-7 (docs/results/sweeps.md)


def bench_science(device: torch.device, small: bool = False) -> str:
    """The presets end to end on ``device``, with the training step's science checks (docs/model.md,
    the trainer): the memorisation and grok steps (the `fast` preset's against its seeds' spread);
    a checkpoint reloaded into the TransformerLens bridge (on the CPU) against the training model on
    ``device``, on all p^2 inputs (bound: 1e-5 of the largest logit); a member trained in a group of
    3 on ``device`` against its solo run; and the probes over the trained run's checkpoints.
    ``small``: the smoke preset only (the check of this section itself, on any machine)."""
    rows = [("device", device_name(device))]
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
    return table("Science checks of the training step, end to end", rows)


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
