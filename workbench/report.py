"""The write-up report: ``checkpoints/<RUN>/report/index.html`` plus every figure as PNG, SVG, PDF.

The one place that writes plotly files. The page is self-contained (plotly.js inlined once,
the circuitsvis bundle once), so it opens from disk with no network, and it is deterministic
given the run: element ids are fixed and nothing random or time-stamped goes in.

Static images need a browser: kaleido drives Debian's Chromium (``make setup`` installs it).
Without one the report says so on the page and in the return value, and keeps the HTML.

Example:
    >>> result = build_report("demo")
    >>> result.index                       # .../checkpoints/demo/report/index.html
"""

from __future__ import annotations

import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from workbench import figures, store, visuals
from workbench.runner import load_checkpoint, probe

FORMATS = ("png", "svg", "pdf")


@dataclass
class ReportResult:
    index: Path
    figures: list[str]
    images: list[Path] = field(default_factory=list)
    image_error: str | None = None


def _nearest(steps: list[int], target: int | None) -> int | None:
    if target is None or not steps:
        return None
    return min(steps, key=lambda s: (abs(s - target), s))


def story_steps(run: store.Run, phases: dict) -> dict[str, int]:
    """Checkpoints to show before, during and after grokking (nearest available ones)."""
    steps = run.steps
    s = phases["steps"]
    chosen = {
        "before (memorised)": _nearest(steps, s.get("memorization")) or steps[min(1, len(steps) - 1)],
        "during (circuit formation)": _nearest(steps, s.get("circuit_formation")),
        "after (final)": steps[-1],
    }
    return {k: v for k, v in chosen.items() if v is not None}


def build_figures(run: store.Run, report=None) -> dict[str, tuple[go.Figure, str]]:
    """name -> (figure, one-line caption saying what to look for), for every figure of the report."""
    report = report or probe(run, progress=False)
    t = report.tables
    phases = report.phases
    keys = report.key_frequencies["key_freqs"]
    final = run.steps[-1]
    ckpt = load_checkpoint(run, final)
    out = {
        "loss_curves": (figures.loss_curves(run.metrics, phases),
                        "Train loss falls first (memorisation); test loss stays high, then collapses: grokking."),
        "progress_measures": (figures.progress_measures(t["progress"], t["weights"], t["fourier"], phases),
                              "Excluded loss rises and restricted loss falls while test loss is still high "
                              "(circuit formation); then the weight norm drops (cleanup)."),
        "embedding_norms": (figures.embedding_norms_bar(t["fourier"], final, keys),
                            "After grokking the embedding lives on a few key frequencies (red)."),
        "embedding_norms_heatmap": (figures.embedding_norms_heatmap(t["fourier"]),
                                    "Key frequencies brighten over training while the rest fade."),
        "embedding_norms_animation": (figures.embedding_norms_animation(t["fourier"]),
                                      "Drag the slider: a flat spectrum becomes a sparse one."),
        "key_frequency_emergence": (figures.key_frequency_emergence(t["fourier"], keys, phases),
                                    "Each key frequency's norm separates from the others before the test loss drops."),
        "neuron_grids": (figures.neuron_grids(ckpt, keys),
                         "Neurons of one cluster are periodic in a and b with that cluster's frequency."),
        "neuron_fraction_histogram": (figures.neuron_fraction_histogram(t["fourier"], final),
                                      "Most neurons are explained (>0.85) by a single frequency."),
        "cluster_sizes": (figures.cluster_sizes(t["fourier"], final),
                          "How many neurons serve each key frequency; few are unexplained."),
        "wl_fourier": (figures.wl_fourier(ckpt),
                       "Each neuron writes to the logits only along cos/sin of its own frequency."),
        "logit_spectrum": (figures.logit_spectrum(ckpt),
                           "The logits are built from the key frequencies' products over (a, b)."),
        "attention_grids": (figures.attention_grids(ckpt),
                            "Attention to a is itself a periodic function of (a, b)."),
        "attention_over_training": (figures.attention_over_training(t["attention"], phases),
                                    "How each head splits attention between a, b and '=' as training goes on."),
    }
    return out


def _circuitsvis_section(run: store.Run, phases: dict, n_inputs: int = 3) -> str:
    """circuitsvis attention patterns for a few test inputs (spread over the test set) at the
    story steps, read from the bridge's ``attn.hook_pattern``."""
    import torch

    cfg = run.config
    test = run.split.test
    picks = test[torch.linspace(0, len(test) - 1, n_inputs).round().long()]
    tokens = run.dataset.tokens[picks]
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}.get(cfg.operation)
    hook = f"blocks.{cfg.n_layers - 1}.attn.hook_pattern"
    parts = [visuals.bundle_script()]
    for label, step in story_steps(run, phases).items():
        with torch.no_grad():
            _, cache = run.model(step).run_with_cache(tokens, names_filter=lambda n: n == hook)
        parts.append(f"<h3>{html.escape(label)}: step {step}</h3><div class='cv-row'>")
        for j, (a, b, _) in enumerate(tokens.tolist()):
            text = f"{a} {symbol} {b}" if symbol else f"{cfg.operation}({a}, {b})"
            parts.append(f"<div class='cv-cell'><p>{html.escape(text)} (mod {cfg.p})</p>")
            parts.append(visuals.attention_patterns_element(f"cv-{step}-{j}", [f"a={a}", f"b={b}", "="], cache[hook][j]))
            parts.append("</div>")
        parts.append("</div>")
    return "\n".join(parts)


def _summary_html(run: store.Run, report) -> str:
    cfg = run.config
    kf = report.key_frequencies
    rows = run.metrics_rows
    last = rows[-1] if rows else {}
    phase_rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{'—' if v is None else v}</td>"
                         f"<td>{html.escape(report.phases['criteria'][k])}</td></tr>"
                         for k, v in report.phases["steps"].items())
    by_rule = ", ".join(f"{r}: {', '.join(map(str, f)) or 'none'}" for r, f in kf.get("by_rule", {}).items())
    final = (f"step {last.get('step')}: train loss {last.get('train_loss', float('nan')):.3g} "
             f"(acc {last.get('train_acc', 0):.1%}), test loss {last.get('test_loss', float('nan')):.3g} "
             f"(acc {last.get('test_acc', 0):.1%})") if last else "no metrics"
    config = json.dumps(cfg.to_dict(), indent=1)
    return f"""
<h2>Summary</h2>
<p><b>Task</b>: {html.escape(cfg.operation)} mod {cfg.p}, {cfg.frac_train:.0%} train.
<b>Key frequencies</b> ({html.escape(kf['rule'])}, step {kf['step']}): {', '.join(map(str, kf['key_freqs'])) or 'none'}
<span class="muted">({html.escape(by_rule)})</span>.<br><b>Final</b>: {final}.</p>
<table><tr><th>phase</th><th>begins at step</th><th>criterion</th></tr>{phase_rows}</table>
<details><summary>config</summary><pre>{html.escape(config)}</pre></details>
"""


CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
.caption { color: #444; margin: 0 0 2.2em 0; font-style: italic; }
.muted { color: #777; } table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 0.9em; }
.cv-row { display: flex; flex-wrap: wrap; gap: 12px; } .cv-cell { min-width: 280px; }
"""


def _export_images(figs: dict[str, tuple[go.Figure, str]], out: Path, formats) -> tuple[list[Path], str | None]:
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
    except Exception as exc:  # no kaleido, no browser
        return [], f"static images skipped: {exc}"
    written: list[Path] = []
    try:
        for name, (fig, _) in figs.items():
            for fmt in formats:
                path = out / f"{name}.{fmt}"
                tmp = out / f".{name}.tmp.{fmt}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fig.write_image(str(tmp), format=fmt)
                tmp.replace(path)
                written.append(path)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return written, (f"static images failed ({first_line}); install Chromium (make setup does) "
                         "for PNG/SVG/PDF, the HTML report is complete without them")
    finally:
        try:
            kaleido.stop_sync_server(silence_warnings=True)
        except Exception:
            pass
    return written, None


def build_report(run: str | store.Run, formats=FORMATS, progress: bool = False) -> ReportResult:
    """Probe the run if needed (cached), then write ``report/index.html`` and the static images."""
    from plotly.offline import get_plotlyjs

    run = run if isinstance(run, store.Run) else store.open_run(run)
    report = probe(run, progress=progress)
    figs = build_figures(run, report)
    out = run.path / store.REPORT_DIR
    out.mkdir(exist_ok=True)
    images, error = _export_images(figs, out, formats) if formats else ([], None)

    body = [f"<h1>Grokking report: {html.escape(run.name)}</h1>", _summary_html(run, report)]
    if error:
        body.append(f"<p class='muted'>{html.escape(error)}</p>")
    for name, (fig, caption) in figs.items():
        body.append(f"<h2>{html.escape(fig.layout.title.text or name)}</h2>")
        body.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                                config={"displaylogo": False}))
        body.append(f"<p class='caption'>{html.escape(caption)}"
                    + (f" <span class='muted'>[{name}.png / .svg / .pdf]</span>" if not error else "") + "</p>")
    body.append("<h2 id='circuitsvis'>Attention patterns (circuitsvis)</h2><p class='caption'>Per head, from each token to the "
                "earlier ones, for a few test inputs before, during and after grokking.</p>")
    body.append(_circuitsvis_section(run, report.phases))
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(run.name)} — grokking report"
            f"</title><style>{CSS}</style>\n<script>{get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    index = out / "index.html"
    store.write_text(index, page)
    return ReportResult(index=index, figures=list(figs), images=images, image_error=error)
