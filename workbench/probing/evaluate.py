"""One checkpoint evaluated on every input of its task: the `probes.CheckpointOnGrid` probes read.

Evaluating means loading the checkpoint, checking it fits the run's model, and running its
forward pass over all p^2 sequences ``a b =`` with the chosen engine (`workbench.model`):
``factored`` (the default; equal to TransformerLens's ``run_with_cache`` to float32 rounding,
tested) or ``bridge`` (a TransformerBridge ``run_with_cache`` itself).

Example:
    >>> import workbench
    >>> run = workbench.open_run("demo")
    >>> inp = evaluate_on_grid(run, run.steps[-1])            # notebooks call probes on it directly
    >>> from probes import fourier
    >>> fourier.neuron_frequency_fractions(inp.neuron_acts).shape   # [frequencies, d_mlp]
    torch.Size([11, 64])
"""

from __future__ import annotations

from probes import CheckpointOnGrid, group_view
from probes.grid import LayerOnGrid
from workbench import model, store
from workbench.probing.engines import DEFAULT_ENGINE, check_engine, grid_activations
from workbench.tasks import make_grid


class GridEvaluator:
    """Evaluates one run's checkpoints one after another, sharing what does not change between
    them: the grid, the bridge (engine ``bridge``) and the activation buffers (engine
    ``factored``). With ``reuse_buffers`` a returned value is only valid until the next call; with
    ``with_model`` it carries the trainer's module at the checkpoint (for the ``llc`` probe)."""

    def __init__(self, run: store.Run, engine: str = DEFAULT_ENGINE, reuse_buffers: bool = False,
                 with_model: bool = False):
        self.run, self.engine, self.with_model = run, check_engine(engine), with_model
        self.grid = make_grid(run.dataset, run.split)
        self.bridge = None  # built at the first bridge evaluation (TransformerLens costs seconds to load)
        self.workspace: dict | None = {} if reuse_buffers else None

    def __call__(self, step: int) -> CheckpointOnGrid:
        """`store.CorruptCheckpoint` if the file is unreadable or does not fit the run's model."""
        cfg, grid = self.run.config, self.grid
        weights = self.run.weights(step)
        problem = model.misfit_weights(cfg, weights)
        if problem:
            raise store.CorruptCheckpoint(f"checkpoint {self.run.step_path(step)} does not fit this run's model ({problem})")
        if self.engine == "bridge" and self.bridge is None:
            self.bridge = model.build_bridge(cfg)
        acts = grid_activations(cfg, weights, grid.tokens, self.engine, self.workspace, self.bridge)
        p = grid.p
        return CheckpointOnGrid(
            step=step, p=p, sign=grid.sign, operation=cfg.operation, **model.probe_weights(cfg, weights),
            logits=acts["logits"].reshape(p, p, p), neuron_acts=acts["neuron_acts"].reshape(p, p, -1),
            attention=acts["attention"].reshape(p, p, cfg.n_heads, 3),
            resid_final=acts["resid_final"].reshape(p, p, -1),
            labels=grid.labels, train_mask=grid.train, test_mask=grid.test,
            model=model.trainable_module(cfg, weights) if self.with_model else None,
            earlier_layers=tuple(
                LayerOnGrid(neuron_acts=block["neuron_acts"].reshape(p, p, -1),
                            attention=block["attention"].reshape(p, p, cfg.n_heads, 3),
                            W_out=model.W_out(weights, layer))
                for layer, block in enumerate(acts["earlier"])),
        )


def evaluate_on_grid(run: store.Run, step: int, engine: str = DEFAULT_ENGINE, with_model: bool = False,
                     coordinates: str = "group") -> CheckpointOnGrid:
    """The checkpoint at ``step`` evaluated on every (a, b); ``with_model``: with the trainer's
    module in ``.model`` (what `probes.llc` samples). ``coordinates`` "group" (the default):
    as the Fourier probes read it, in the coordinates where the operation is addition (discrete
    logs for mul and div, `probes.coordinates.group_view`; the tokens themselves otherwise);
    "token": as the model sees it (what `probes.llc` needs)."""
    if coordinates not in ("group", "token"):
        raise ValueError(f"coordinates must be 'group' or 'token', got {coordinates!r}")
    inp = GridEvaluator(run, engine, with_model=with_model)(step)
    return group_view(inp) if coordinates == "group" else inp
