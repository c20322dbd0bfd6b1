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

Modules: ``measure`` (the results pages' header, tables, alternated timing, the matrix-product
peak), one per section: ``train``, ``sweep``, ``probe``, ``preset``, ``llc``, ``science``; and
``sections`` (the command, `main`), run by ``__main__`` (``python -m workbench.bench``).

Example:
    $ python -m workbench.bench --only train
"""

from __future__ import annotations

from workbench.bench.measure import matmul_peak, provenance_header
from workbench.bench.sections import SECTIONS, main

__all__ = ["SECTIONS", "main", "matmul_peak", "provenance_header"]
