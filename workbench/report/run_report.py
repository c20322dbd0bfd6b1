"""The write-up report: ``checkpoints/<RUN>/report/index.html`` plus every figure as PNG, SVG, PDF.

The one place that writes plotly files. The page is self-contained (plotly.js inlined once,
the circuitsvis bundle once), so it opens from disk with no network, and it is deterministic
given the run: element ids are fixed and nothing random or time-stamped goes in.

Static images need a browser: kaleido drives Debian's Chromium (``make setup`` installs it).
Without one the report says so on the page and in the return value, and keeps the HTML.

The report shows the run as probed with its current probe options (`ProbeOptions`: what
`make probe` last used), or with the options given to it (``SET=``, ``ENGINE=``), which then
become the run's current ones; the page states which, and lists them.

Example:
    >>> result = build_report("demo", formats=())      # formats=(): no PNG/SVG/PDF
    >>> result.index.relative_to(result.index.parents[2])
    PosixPath('demo/report/index.html')
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from probes import KEY_RULES, ProbeSettings
from probes.outcome import outcome
from workbench import figures, model, store
from workbench.errors import UsageError
from workbench.forecasting import forecast_history
from workbench.monitor import Monitor
from workbench.probing import ProbeOptions, ProbeResults, evaluate_on_grid, probe
from workbench.report import circuitsvis
from workbench.report.page import IMAGE_FORMATS, export_images, figure_sections, page_html
from workbench.report.text import metrics_line
from workbench.tasks import coordinates_note, has_sum_direction


@dataclass
class ReportResult:
    index: Path
    figures: list[str]
    options: ProbeOptions
    images: list[Path] = field(default_factory=list)
    image_error: str | None = None
    skipped: dict[int, str] = field(default_factory=dict)  # checkpoints the probes could not read: step -> why


def _nearest(steps: list[int], target: int | None) -> int | None:
    if target is None or not steps:
        return None
    return min(steps, key=lambda s: (abs(s - target), s))


def story_steps(steps: list[int], phase_steps: dict[str, int | None]) -> dict[str, int]:
    """Checkpoints to show before, during and after grokking (the nearest of ``steps``)."""
    s = phase_steps
    chosen = {
        "before (memorised)": _nearest(steps, s.get("memorization")) or steps[min(1, len(steps) - 1)],
        "during (circuit formation)": _nearest(steps, s.get("circuit_formation")),
        "after (final)": steps[-1],
    }
    return {k: v for k, v in chosen.items() if v is not None}


def _note_html(cfg) -> str:
    note = coordinates_note(cfg.operation, cfg.p)
    return f" <i>{html.escape(note)}.</i>" if note else ""


def run_figures(run: store.Run, results: ProbeResults | None = None) -> dict[str, tuple[go.Figure, str]]:
    """name -> (figure, one-line caption saying what to look for), for every figure of the report."""
    results = results or probe(run, progress=False)
    t = results.tables
    phases = results.phases.to_dict()
    keys = results.key_frequencies["key_freqs"]
    # every set a figure draws is named with the rule that chose it: the rules can disagree (the TL
    # demo's embedding rule gives 1, 2, 13, 17 where its neuron clusters give 1, 13, 17)
    named = f"the key frequencies by the {results.key_frequencies['rule']} rule ({', '.join(map(str, keys)) or 'none'})"
    threshold = results.options.settings.neuron_threshold
    final = readable_steps(run, results)[-1]
    ckpt = evaluate_on_grid(run, final, results.options.engine)
    applies = has_sum_direction(run.config.operation, run.config.p)  # the a ± b measures
    out = {
        "loss_curves": (figures.loss_curves(run.metrics, phases),
                        "Train loss falls first (memorisation); test loss stays high, then collapses: grokking."),
        "progress_measures": (figures.progress_measures(t["progress"], t["weights"], t["fourier"], phases, applies),
                              "Excluded loss rises and restricted loss falls while test loss is still high "
                              "(circuit formation); then the weight norm drops (cleanup)."),
        "embedding_norms": (figures.embedding_norms_bar(t["fourier"], final, keys),
                            f"After grokking the embedding lives on a few frequencies: in red, {named}."),
        "embedding_norms_heatmap": (figures.embedding_norms_heatmap(t["fourier"]),
                                    "Key frequencies brighten over training while the rest fade."),
        "embedding_norms_animation": (figures.embedding_norms_animation(t["fourier"]),
                                      "Drag the slider: a flat spectrum becomes a sparse one."),
        "key_frequency_emergence": (figures.key_frequency_emergence(t["fourier"], keys, phases),
                                    f"Each of {named} separates from the others before the test loss drops."),
        "neuron_grids": (figures.neuron_grids(ckpt, keys, threshold),
                         f"Neurons of one cluster are periodic in a and b with that cluster's frequency (clusters of {named})."),
        "neuron_fraction_histogram": (figures.neuron_fraction_histogram(t["fourier"], final, threshold),
                                      f"Most neurons are explained (>= {threshold:g}) by a single frequency."),
        "cluster_sizes": (figures.cluster_sizes(t["fourier"], final),
                          "How many neurons serve each key frequency; few are unexplained."),
        "wl_fourier": (figures.wl_fourier(ckpt, threshold),
                       "Each neuron writes to the logits only along cos/sin of its own frequency."),
        "logit_spectrum": (figures.logit_spectrum(ckpt),
                           "The logits are built from the key frequencies' products over (a, b)."),
        "attention_grids": (figures.attention_grids(ckpt),
                            "Attention to a is itself a periodic function of (a, b)."),
        "attention_over_training": (figures.attention_over_training(t["attention"], phases),
                                    "How each head splits attention between a, b and '=' as training goes on."),
    }
    if len(readable_steps(run, results)) >= 2:
        measured = outcome(run.metrics).get("gen_step")
        out["forecast"] = (figures.forecast_timeline(forecast_history(run, steps=readable_steps(run, results)[1:]), measured),
                           "The forecast made at each checkpoint from training alone (no test numbers) against "
                           "the grok step the test curve measured (red).")
    if t.get("clock_pizza") is not None and len(t["clock_pizza"]):
        out["clock_pizza"] = (
            figures.clock_pizza_measures(t["clock_pizza"], phases, run.config.attn_rate, applies),
            "Clock (Nanda et al.'s algorithm): gradient symmetricity near 0, distance irrelevance near 1. Pizza "
            "(the operands' embeddings averaged): symmetricity near 1, irrelevance near 0 (Zhong et al. 2023).")
    if t.get("complexity") is not None:
        out["complexity_measures"] = (
            figures.complexity_panel(t["weights"], t["fourier"], t["complexity"], t.get("llc"), phases),
            "The parameter count never moves; the weight norm, the Fourier Gini, the active neurons, the weight "
            "entropy" + (" and λ̂" if t.get("llc") is not None else "") + " track memorisation and its replacement.")
    if t.get("llc") is not None and len(t["llc"]):
        out["llc"] = (figures.llc_curve(t["llc"], run.metrics, phases),
                      "λ̂ rises while the network memorises and falls as the general circuit replaces memorisation "
                      "(measured on the training set alone; red crosses: chains that were not healthy).")
    return out


def readable_steps(run: store.Run, results: ProbeResults) -> list[int]:
    """The run's steps less the checkpoints the probes could not read (those are named in the summary)."""
    steps = [s for s in run.steps if s not in results.skipped]
    if not steps:
        raise UsageError(f"run {run.name!r} has no readable checkpoint to report on")
    return steps


def _circuitsvis_section(run: store.Run, steps: list[int], phase_steps: dict[str, int | None], n_inputs: int = 3) -> str:
    """circuitsvis attention patterns for a few test inputs (spread over the test set) at the
    story steps, read from the bridge's own attention-pattern hook."""
    import torch

    cfg = run.config
    test = run.split.test
    picks = test[torch.linspace(0, len(test) - 1, n_inputs).round().long()]
    tokens = run.dataset.tokens[picks]
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}.get(cfg.operation)
    parts = [circuitsvis.bundle_script()]
    for label, step in story_steps(steps, phase_steps).items():
        bridge = model.load_bridge(run, step)
        for layer in range(cfg.n_layers):  # a deeper model: one row of views per block
            patterns = model.bridge_attention(bridge, cfg, tokens, layer)
            block = f", layer {layer}" if cfg.n_layers > 1 else ""
            parts.append(f"<h3>{html.escape(label)}: step {step}{block}</h3><div class='cv-row'>")
            for j, (a, b, _) in enumerate(tokens.tolist()):
                text = f"{a} {symbol} {b}" if symbol else f"{cfg.operation}({a}, {b})"
                parts.append(f"<div class='cv-cell'><p>{html.escape(text)} (mod {cfg.p})</p>")
                parts.append(circuitsvis.attention_patterns_element(
                    f"cv-{step}-{layer}-{j}", [f"a={a}", f"b={b}", "="], patterns[j]))
                parts.append("</div>")
            parts.append("</div>")
    return "\n".join(parts)


def _options_html(options: ProbeOptions, given: bool) -> str:
    source = ("given to this report (and now the run's current probe options)" if given
              else "the run's current probe options, as last used by <code>make probe</code>")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in options.settings.to_dict().items())
    return (f"<p><b>Probe options</b> ({source}): {html.escape(options.describe())}.</p>"
            f"<details><summary>probe settings</summary><table>{rows}</table></details>")


def overview_html(run: store.Run, results: ProbeResults, options_given: bool = False) -> str:
    """The report's opening section as HTML: the config, the final metrics, the phase steps, the key
    frequencies per block and the probe options (``options_given``: set on the command line)."""
    cfg = run.config
    kf = results.key_frequencies
    last = run.last_metrics
    phase_rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{'—' if v is None else v}</td>"
                         f"<td>{html.escape(results.phases.criteria[k])}</td></tr>"
                         for k, v in results.phases.steps.items())
    rules = kf.get("by_rule", {})
    by_rule = ", ".join(f"{r}: {', '.join(map(str, rules[r])) or 'none'}" for r in KEY_RULES if r in rules)
    by_layer = kf.get("by_layer", [])
    blocks = "".join(  # where the circuit lives, block by block (the model's sets are their union)
        f"<br>&nbsp;&nbsp;layer {layer}: "
        + html.escape("; ".join(f"{r} {', '.join(map(str, freqs)) or 'none'}" for r, freqs in keys.items()))
        for layer, keys in enumerate(by_layer)) if len(by_layer) > 1 else ""
    final = html.escape(metrics_line(last)) if last else "no metrics"
    config = json.dumps(cfg.to_dict(), indent=1)
    return f"""
<h2>Summary</h2>
<p><b>Task</b>: {html.escape(cfg.operation)} mod {cfg.p}, {cfg.frac_train:.0%} train.{_note_html(cfg)}
<b>Key frequencies</b> ({html.escape(kf['rule'])}, step {kf['step']}): {', '.join(map(str, kf['key_freqs'])) or 'none'}
<span class="muted">({html.escape(by_rule)})</span>.{blocks}<br><b>Final</b>: {final}.</p>
{_options_html(results.options, options_given)}
<table><tr><th>phase</th><th>begins at step</th><th>criterion</th></tr>{phase_rows}</table>
<details><summary>config</summary><pre>{html.escape(config)}</pre></details>
"""


def build_report(
    run: str | Path | store.Run,
    formats: Sequence[str] = IMAGE_FORMATS,
    progress: bool | Monitor = False,
    root: Path | None = None,
    settings: ProbeSettings | None = None,
    overrides: Mapping[str, Any] | None = None,
    engine: str | None = None,
    key_freqs: Sequence[int] | str | None = None,
) -> ReportResult:
    """Probe the run if needed (cached; with its current probe options, or the ones given),
    then write ``report/index.html`` and the static images."""
    run = run if isinstance(run, store.Run) else store.open_run(run, root)
    given = settings is not None or bool(overrides) or engine is not None or key_freqs is not None
    results = probe(run, settings=settings, overrides=overrides, engine=engine, key_freqs=key_freqs, progress=progress)
    figs = run_figures(run, results)
    out = store.report_dir(run)
    images, error = export_images(figs, out, formats) if formats else ([], None)

    body = [f"<h1>Grokking report: {html.escape(run.name)}</h1>", overview_html(run, results, given)]
    if results.skipped:  # the figures leave these steps out: say which, and why
        body.append("<p><b>Checkpoints left out (unreadable)</b>: " + "; ".join(
            f"step {step}: {html.escape(why)}" for step, why in sorted(results.skipped.items())) + "</p>")
    if error:
        body.append(f"<p class='muted'>{html.escape(error)}</p>")
    body += figure_sections(figs, error)
    body.append("<h2 id='circuitsvis'>Attention patterns (circuitsvis)</h2><p class='caption'>Per head, from each token to the "
                "earlier ones, for a few test inputs before, during and after grokking.</p>")
    body.append(_circuitsvis_section(run, readable_steps(run, results), results.phases.steps))
    index = store.write_report_page(run, page_html(f"{run.name} — grokking report", body))
    return ReportResult(index=index, figures=list(figs), options=results.options, images=images, image_error=error,
                        skipped=dict(results.skipped))
