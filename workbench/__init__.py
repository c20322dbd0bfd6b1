"""The grokking workbench: train small transformers on modular arithmetic, checkpoint them,
and load every checkpoint into TransformerLens to watch memorisation give way to an algorithm.

Public API (what notebooks, the CLI and tests share):

    >>> import workbench
    >>> run = workbench.train("demo", "fast")      # or open an existing one:
    >>> run = workbench.open_run("demo")
    >>> run.steps, run.metrics                     # checkpoint steps; a metrics DataFrame
    >>> model = run.model(run.steps[-1])           # a TransformerLens TransformerBridge
    >>> logits, cache = model.run_with_cache(run.dataset.tokens)
    >>> report = workbench.probe(run)              # every probe over every checkpoint
    >>> report.tables["progress"], report.key_frequencies, report.phases
"""

from workbench.config import RunConfig, load_config, preset_names
from workbench.errors import UsageError
from workbench.runner import ProbeReport, load_checkpoint, probe
from workbench.store import Run, open_run
from workbench.train import train

__all__ = [
    "ProbeReport", "Run", "RunConfig", "UsageError", "load_checkpoint", "load_config", "open_run", "preset_names",
    "probe", "train",
]
