"""The grokking workbench: train small transformers on modular arithmetic, checkpoint them,
and load every checkpoint into TransformerLens to watch memorisation give way to an algorithm.

Public API (what notebooks, the CLI and tests share). Runs live under ``checkpoints/`` of the
source tree, or ``$WORKBENCH_CHECKPOINTS`` when it is set, unless a ``root=`` is given:

    >>> import workbench
    >>> run = workbench.train("api-demo", "smoke", progress=False)   # "fast" groks in ~30 s; or open one:
    >>> run = workbench.open_run("api-demo")
    >>> run.steps[-1], len(run.metrics)            # checkpoint steps; a metrics DataFrame
    (300, 61)
    >>> model = workbench.load_bridge(run, run.steps[-1])   # a TransformerLens TransformerBridge
    >>> logits, cache = model.run_with_cache(run.dataset.tokens)
    >>> results = workbench.probe(run, progress=False)      # every probe over every checkpoint (but llc)
    >>> results = workbench.probe(run, probes=["llc"], steps="last", progress=False)   # opt-in: λ̂
    >>> results.tables["progress"], results.key_frequencies, results.phases.steps
    >>> inp = workbench.evaluate_on_grid(run, run.steps[-1])   # what the probes read
    >>> workbench.explore(run)                     # notebook: a slider over the checkpoints
    >>> workbench.attention_view(run, run.steps[-1])   # circuitsvis, rendered offline
    >>> forecast = workbench.forecast(run)        # will it generalise, and when? (training-set signals only)
    >>> workbench.open_sweep  # many runs: workbench.sweep("frac-wd") trains, probes, tabulates (docs/sweeps.md)
    <function open_sweep at ...>
"""

from workbench import figures, random_features
from workbench.config import RunConfig, load_config, preset_names
from workbench.errors import UsageError
from workbench.forecasting import forecast
from workbench.importer import import_run
from workbench.model import load_bridge
from workbench.probing import ProbeOptions, ProbeResults, evaluate_on_grid, probe
from workbench.report import attention_view, explore, step_view
from workbench.store import Run, open_run
from workbench.sweeps import Sweep, open_sweep, probe_sweep
from workbench.sweeps import run_sweep as sweep
from workbench.training import train

__all__ = [
    "ProbeOptions", "ProbeResults", "Run", "RunConfig", "UsageError", "attention_view", "evaluate_on_grid", "explore",
    "figures", "forecast", "import_run", "random_features", "load_bridge", "load_config", "open_run", "open_sweep", "preset_names", "probe", "probe_sweep",
    "step_view", "Sweep", "sweep", "train",
]
