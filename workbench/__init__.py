"""The grokking workbench: train small transformers on modular arithmetic, checkpoint them,
and load every checkpoint into TransformerLens to watch memorisation give way to an algorithm.

Public API (what notebooks, the CLI and tests share). Runs live under ``checkpoints/`` of the
source tree unless a ``root=`` is given:

    >>> import workbench
    >>> run = workbench.train("demo", "fast")      # or open an existing one:
    >>> run = workbench.open_run("demo")
    >>> run.steps, run.metrics                     # checkpoint steps; a metrics DataFrame
    >>> model = workbench.load_bridge(run, run.steps[-1])   # a TransformerLens TransformerBridge
    >>> logits, cache = model.run_with_cache(run.dataset.tokens)
    >>> results = workbench.probe(run)             # every probe over every checkpoint (but llc)
    >>> results = workbench.probe(run, probes=["llc"], steps="0:1500")   # opt-in: λ̂, seconds per checkpoint
    >>> results.tables["progress"], results.key_frequencies, results.phases.steps
    >>> inp = workbench.evaluate_on_grid(run, run.steps[-1])   # what the probes read
    >>> workbench.explore(run)                     # notebook: a slider over the checkpoints
    >>> workbench.attention_view(run, 1460)        # circuitsvis, rendered offline
    >>> run = workbench.import_run("full_run_data.pth", "nanda-original")   # a legacy run
    >>> sw = workbench.sweep("frac-wd")             # many runs: train in batched groups, probe, tabulate
    >>> sw = workbench.open_sweep("frac-wd"); sw.table   # one row per member, with its outcome class
"""

from workbench.config import RunConfig, load_config, preset_names
from workbench.errors import UsageError
from workbench.evaluate import evaluate_on_grid
from workbench.explorer import attention_view, explore, step_view
from workbench.importer import import_run
from workbench.model import load_bridge
from workbench.probe_options import ProbeOptions
from workbench.runner import ProbeResults, probe
from workbench.store import Run, open_run
from workbench.sweep import Sweep, open_sweep
from workbench.sweep import run_sweep as sweep
from workbench.sweep_probe import probe_sweep
from workbench.train import train

__all__ = [
    "ProbeOptions", "ProbeResults", "Run", "RunConfig", "UsageError", "attention_view", "evaluate_on_grid", "explore",
    "import_run", "load_bridge", "load_config", "open_run", "open_sweep", "preset_names", "probe", "probe_sweep",
    "step_view", "Sweep", "sweep", "train",
]
