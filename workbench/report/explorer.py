"""The checkpoint explorer for notebooks: pick a step with a slider, see that step's circuit.

For the chosen checkpoint it shows the forecast made at that step from training alone
(`workbench.forecasting`: regime, p_generalise, grok step and its 80% interval), the phase the step falls in (`Phases.phase_at`, from the
run's ``phases.json`` criteria), the embedding's Fourier spectrum (the norm of W_E along each
frequency, key frequencies marked; Nanda et al. 2023 Fig. 3), a grid of key-frequency neurons
(activation over all (a, b), one cluster per key frequency) and the attention from ``=`` to a, b
and ``=`` over the whole input grid, per head. It reads the cached probe tables (running the
probes first if the run has none: cached, so only new checkpoints cost anything) and evaluates
the chosen checkpoint on the grid, so it works on any run directory, including an imported one.

`step_view` is the pure part (figures for one step, testable without a browser); `explore`
wraps it in ipywidgets. All figures are plotly and render offline.

Example (in a notebook):
    >>> run = workbench.open_run("demo")
    >>> workbench.explore(run)                       # a slider over run.steps
    >>> view = workbench.step_view(run, run.steps[-1])   # or one step's figures directly
    >>> view.phase, view.spectrum, view.neurons, view.attention
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench import figures, model, store
from workbench.errors import UsageError
from workbench.forecasting import forecast
from workbench.probing import ProbeResults, evaluate_on_grid, probe
from workbench.report import circuitsvis


@dataclass(frozen=True)
class StepView:
    """One checkpoint seen by the explorer: its step, phase and three figures."""

    step: int
    phase: str
    key_freqs: list[int]
    spectrum: object  # plotly Figure: embedding Fourier norms at this step
    neurons: object  # plotly Figure: key-frequency neuron activations over (a, b)
    attention: object  # plotly Figure: attention from "=" over (a, b), per head
    forecast: str = ""  # the forecast made at this step from training alone (`Forecast.short`, p_generalise)

    def caption(self) -> str:
        return (f"step {self.step}: {self.phase.replace('_', ' ')}  (key frequencies {', '.join(map(str, self.key_freqs)) or 'none'})"
                + (f"; forecast at this step: {self.forecast}" if self.forecast else ""))


def _results(run: store.Run, results: ProbeResults | None) -> ProbeResults:
    return results if results is not None else probe(run, progress=False)


def step_view(run: store.Run | str, step: int, results: ProbeResults | None = None, root=None) -> StepView:
    """The explorer's figures for checkpoint ``step`` of ``run`` (a `Run`, a name or a path)."""
    run = run if isinstance(run, store.Run) else store.open_run(run, root)
    if step not in run.steps:
        raise ValueError(f"run {run.name!r} has no checkpoint at step {step}")
    results = _results(run, results)
    key_freqs = list(results.key_frequencies["key_freqs"])
    threshold = results.options.settings.neuron_threshold
    inp = evaluate_on_grid(run, step)
    return StepView(step=step, phase=results.phases.phase_at(step), key_freqs=key_freqs,
                    spectrum=figures.embedding_norms_bar(results.tables["fourier"], step, key_freqs),
                    neurons=figures.neuron_grids(inp, key_freqs, threshold),
                    attention=figures.attention_grids(inp), forecast=_forecast_line(run, step))


def _forecast_line(run: store.Run, step: int) -> str:
    """The forecast at ``step`` in a line, or why there is none (fewer than two checkpoints by then)."""
    if len([s for s in run.steps if s <= step]) < 2:
        return "none yet (a forecast needs two checkpoints)"
    made = forecast(run, step)
    return f"{made.short()} (p_generalise {made.p_generalise:.2f} by step {made.horizon:,})"


def explore(run: store.Run | str, results: ProbeResults | None = None, root=None):
    """An ipywidgets panel: a slider over the run's checkpoint steps, the phase of the chosen step,
    and `step_view`'s three figures, redrawn when the slider moves."""
    import ipywidgets as widgets

    run = run if isinstance(run, store.Run) else store.open_run(run, root)
    results = _results(run, results)
    slider = widgets.SelectionSlider(options=run.steps, value=run.steps[-1], description="step",
                                     continuous_update=False, layout=widgets.Layout(width="90%"))
    caption = widgets.HTML()
    out = widgets.Output()

    def draw(step: int) -> None:
        view = step_view(run, step, results)
        caption.value = f"<b>{view.caption()}</b>"
        # The figures go into the widget's state as mime bundles from plotly's default renderers
        # rather than captured with `with out: display(...)`: a capturing Output makes headless
        # runners (nbclient) echo every captured output back to the kernel, which stalled them for
        # their whole cell timeout.
        out.outputs = tuple({"output_type": "display_data", "data": fig._repr_mimebundle_(), "metadata": {}}
                            for fig in (view.spectrum, view.neurons, view.attention))

    slider.observe(lambda change: draw(change["new"]), names="value")
    draw(slider.value)
    return widgets.VBox([slider, caption, out])


def attention_view(run: store.Run | str, step: int | None = None, a: int | None = None, b: int | None = None,
                   root=None, layer: int | None = None):
    """circuitsvis attention patterns (every head of block ``layer``, default the last) of
    checkpoint ``step`` (default: the last) on the input ``a b =`` (default: the first test
    input), read from the bridge's own hook: an `OfflineView`, which renders with no network."""
    import torch

    run = run if isinstance(run, store.Run) else store.open_run(run, root)
    step = run.steps[-1] if step is None else step
    if a is None or b is None:
        a, b, _ = run.dataset.tokens[run.split.test[0]].tolist()
    tokens = torch.tensor([[a, b, run.config.p]])
    if layer is not None and not 0 <= layer < run.config.n_layers:
        raise UsageError(f"layer {layer} does not exist; run {run.name!r} has layers 0..{run.config.n_layers - 1}")
    patterns = model.bridge_attention(model.load_bridge(run, step), run.config, tokens, layer)  # [1, heads, 3, 3]
    return circuitsvis.pattern_view([f"a={a}", f"b={b}", "="], patterns[0])
