"""Figures: plotly figures from probe tables, one module per subject; every function here is public
and used by the report and in notebooks (``from workbench import figures``).

Modules: ``style`` (phase bands, the house style), ``curves`` (losses, progress measures),
``fourier``, ``attention``, ``complexity`` (weight norms, LLC), ``forecast`` (the forecast over training), ``clock_pizza``, ``sweep`` (a
sweep's figures), ``double_descent`` (random features, effective parameters, model-wise curves), ``offline`` (the offline notebook renderer).
"""

from __future__ import annotations

from workbench.figures.attention import attention_grids, attention_over_training
from workbench.figures.clock_pizza import DISTANCE_IRRELEVANCE_SPLIT, PAPER_CLOCK_PIZZA, clock_pizza_measures
from workbench.figures.complexity import complexity_panel, llc_curve, llc_trace
from workbench.figures.curves import loss_curves, progress_measures
from workbench.figures.double_descent import (
    complexity_axes,
    outcomes_by_width,
    rff_curves,
    rff_effective_parameters,
)
from workbench.figures.forecast import forecast_timeline
from workbench.figures.fourier import (
    cluster_sizes,
    embedding_norms_animation,
    embedding_norms_bar,
    embedding_norms_heatmap,
    key_frequency_emergence,
    logit_spectrum,
    neuron_fraction_histogram,
    neuron_grids,
    wl_fourier,
)
from workbench.figures.offline import OFFLINE_RENDERER, offline_notebook
from workbench.figures.style import NOT_APPLICABLE, PHASE_COLOURS, PHASE_LABELS, add_phase_bands
from workbench.figures.sweep import (
    CLASS_COLOURS,
    curves_overlaid,
    final_loss_lines,
    key_frequencies_across_seeds,
    loss_against_size_and_norm,
    loss_over_epochs,
    phase_diagram,
    steps_to_grok,
    test_loss_against,
)

__all__ = ["complexity_axes", "outcomes_by_width", "rff_curves", "rff_effective_parameters", "CLASS_COLOURS", "DISTANCE_IRRELEVANCE_SPLIT", "NOT_APPLICABLE", "OFFLINE_RENDERER", "PAPER_CLOCK_PIZZA", "PHASE_COLOURS", "PHASE_LABELS", "add_phase_bands", "attention_grids", "attention_over_training", "clock_pizza_measures", "cluster_sizes", "complexity_panel", "curves_overlaid", "final_loss_lines", "embedding_norms_animation", "embedding_norms_bar", "embedding_norms_heatmap", "forecast_timeline", "key_frequencies_across_seeds", "key_frequency_emergence", "llc_curve", "llc_trace", "logit_spectrum", "loss_against_size_and_norm", "loss_curves", "loss_over_epochs", "neuron_fraction_histogram", "neuron_grids", "offline_notebook", "phase_diagram", "progress_measures", "steps_to_grok", "test_loss_against", "wl_fourier"]
