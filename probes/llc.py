"""The local learning coefficient λ̂: the effective complexity of the solution a checkpoint is in.

Lau et al. 2023 ("Quantifying degeneracy in singular models via the learning coefficient")
estimate Watanabe's learning coefficient λ locally, at trained weights w*, by sampling a
tempered posterior localised at w* with SGLD and measuring how far the loss rises:

    λ̂(w*) = nβ · ( E_w[ L_n(w) ] − L_n(w*) ),
    w ~ p(w) ∝ exp( −nβ L_n(w) − γ/2 ||w − w*||² ),         nβ = n / log n by default

where L_n is the training loss (cross-entropy at the answer position, the loss the trainer
minimises) over the n training examples, β the inverse temperature and γ the localisation.
Sampling uses devinterp's SGLD (Timaeus; `devinterp.slt.sampling.sample`), one step per
minibatch of ``batch_size`` examples,

    Δw = ε/2 · ( −nβ ∇L_batch(w) − γ (w − w*) ) + N(0, ε),

over ``chains`` independent chains of ``burnin + draws`` steps. λ̂ of a chain is nβ times its
mean minibatch loss over the draws after burn-in, minus L_n(w*) (devinterp's ``compute_llc``
averages over the burn-in too; dropping the transient is Lau et al.'s estimator). A regular
model with d parameters has λ = d/2; a degenerate (singular) one less: on modular addition
λ̂ rises while the network memorises and falls as the Fourier circuit replaces the
memorising solution, with no test set and no knowledge of the circuit (the shape devinterp's
modular-addition example reports; measured here on the ``fast`` run: docs/results/llc.md).

Each example ``a b = c`` is one sequence of ``input_ids``; devinterp averages its per-token
loss over the positions it is given, so every position carries the example's answer loss:
their mean is the answer loss itself (zeros elsewhere would divide λ̂ by the number of
positions). Tested: devinterp's initial loss equals the project's own cross-entropy on the
same batch. Each chain runs through its own shuffle of the training set (batches cycle over
one epoch of n - n mod batch_size examples, over which its L_n(w*) is taken), so the spread
over chains includes the minibatch noise.

Defaults (`ProbeSettings.llc_*`), calibrated on the ``fast`` preset's checkpoints (p = 59,
d_model 64, d_mlp 256, n = 1,044 training pairs) as devinterp advises: sweep the step size ε
and the localisation γ, keep the loss trace stationary and free of divergence. λ̂ at steps
100 / 600 / 3000 (memorised / circuit forming / final), 2 chains x 200 draws, no burn-in:

    ε      γ     nβ    λ̂ at 100 / 600 / 3000   loss trace
    1e-3   10    100   NaN                      diverges at every checkpoint
    1e-5   10    100   47 / 25 / 0.7            still rising 7x at the end of the chain
    1e-4   100   150   332 / 267 / 27           rising through the whole chain (λ̂ set by its length)
    3e-5   100   150   159 / 106 / 8            rising through the whole chain
    3e-5   1000  150   50 / 17 / 0.07           flat after ~100 steps
    1e-4   1000  150   64 / 26 / 0.15           flat after ~50 steps       <- the defaults

    nβ = n / log n  Watanabe's WBIC temperature β = 1 / log n, as Lau et al. 2023 (150 at n = 1,044)
    chains 3, draws 100, burn-in 50, batch 64
                    a flat trace over the draws and a spread over chains of a few percent
                    of λ̂ (4 chains give the same λ̂ within that spread at 60, 620, 1460
                    and 3000, for a third more time), ~1.7-2.7 s per checkpoint on one core
                    (`make bench`; the machine's speed varies)

A chain's estimate is trusted only if it stayed healthy (`check_health`): finite losses, a
positive λ̂ (a negative one means the sampler found lower loss than the checkpoint: w* is not
a local minimum at this temperature), and a stationary trace (the second half of the draws
within ``DRIFT_LIMIT`` of the first, relative to the excess loss, unless the chains disagree on
the drift by more than it: a noisy trace is not a drifting one). The table flags the rest.

Example:
    >>> results = workbench.probe("demo", probes=["llc"], steps="last", progress=False)  # the probe calls it
    >>> sorted(set(results.tables["llc"].measure))[:2]   # λ̂ and its diagnostics, one row each
    ['drift', 'failed_chains']
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import nn

from probes.grid import CheckpointOnGrid
from probes.table import tidy

DRIFT_LIMIT = 0.25  # |mean(second half) - mean(first half)| of the draws, relative to the excess loss

ExampleLoss = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""(model, input_ids [batch, seq]) -> loss per example [batch]."""


@dataclass(frozen=True)
class LLCSampler:
    """SGLD hyperparameters (Lau et al. 2023 notation): step size ε, inverse temperature nβ
    (0: n / log n), localisation γ, chains, draws kept per chain, burn-in steps dropped,
    minibatch size, seed (the same seed and weights give the same λ̂)."""

    step_size: float = 1e-4
    nbeta: float = 0.0
    localization: float = 1000.0
    chains: int = 3
    draws: int = 100
    burnin: int = 50
    batch_size: int = 64
    seed: int = 0

    def nbeta_for(self, n: int) -> float:
        """nβ for n training examples: the given value, or n / log n (β = 1 / log n, WBIC)."""
        return self.nbeta if self.nbeta > 0 else n / math.log(n)


@dataclass(frozen=True)
class LLCEstimate:
    """λ̂ per chain and its summary; ``trace`` is the mean minibatch loss of every SGLD step
    [chains, burnin + draws]; ``init_loss`` is devinterp's L_n(w*) estimate."""

    per_chain: list[float]
    init_loss: float
    nbeta: float
    trace: torch.Tensor
    burnin: int
    failed_chains: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def mean(self) -> float:
        return float(torch.tensor(self.per_chain, dtype=torch.float64).mean())

    @property
    def std(self) -> float:
        """Spread over chains (sample standard deviation; 0 for one chain)."""
        if len(self.per_chain) < 2:
            return 0.0
        return float(torch.tensor(self.per_chain, dtype=torch.float64).std())

    @property
    def drift(self) -> float:
        return trace_drift(self.trace[:, self.burnin:], self.init_loss)

    @property
    def healthy(self) -> bool:
        return not self.problems


class _Sampled(nn.Module):
    """The sampled parameters of ``net`` as one flat vector: devinterp's SGLD step loops over
    parameter tensors in Python, so one tensor instead of sixteen saves ~13% of an estimate at
    the fast preset's sizes; the update is elementwise, so the chain is the same in law. Calling it
    runs ``net`` with its parameters replaced by views of the vector (``functional_call``);
    the parameters not sampled stay at w*. (Wrapping also keeps devinterp from taking any
    module with ``cfg.n_heads`` for a TransformerLens model.)"""

    def __init__(self, net: nn.Module, names: list[str]):
        super().__init__()
        own = dict(net.named_parameters())
        self.net, self.names = net, names
        self.shapes = [own[name].shape for name in names]
        self.flat = nn.Parameter(torch.cat([own[name].detach().reshape(-1) for name in names]).clone())

    def weights(self) -> dict[str, torch.Tensor]:
        parts = torch.split(self.flat, [math.prod(shape) for shape in self.shapes])
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.net, self.weights(), args)


def answer_loss(model: nn.Module, input_ids: Int[torch.Tensor, "batch 4"]) -> Float[torch.Tensor, " batch"]:
    """Cross-entropy of the answer ``c`` given ``a b =``, per example: ``model`` maps tokens
    [batch, 3] to the logits at ``=`` [batch, p] (the trainer's module)."""
    return F.cross_entropy(model(input_ids[:, :-1]).float(), input_ids[:, -1], reduction="none")


def answer_input_ids(inp: CheckpointOnGrid) -> Int[torch.Tensor, "n 4"]:
    """The training examples as sequences ``a b = c`` (``=`` is token p), a-major order."""
    if inp.coordinates != "token":
        raise ValueError("llc samples the model on its own tokens: give it the checkpoint in token coordinates")
    a, b = torch.nonzero(inp.train_mask, as_tuple=True)
    eq = torch.full_like(a, inp.p)
    return torch.stack([a, b, eq, inp.labels[a, b]], dim=1)


def trace_drift(draws: torch.Tensor, init_loss: float) -> float:
    """(mean of the second half of the draws - mean of the first half) / (mean - init_loss):
    0 for a stationary trace; large when the chains are still climbing or escaping."""
    n = draws.shape[-1]
    if n < 2:
        return 0.0
    first, second = draws[..., : n // 2].mean().item(), draws[..., n // 2:].mean().item()
    excess = draws.mean().item() - init_loss
    if not math.isfinite(first + second + excess):
        return math.inf
    return (second - first) / excess if excess > 0 else 0.0


def _beyond_noise(draws: torch.Tensor, init_loss: float) -> bool:
    """Whether the chains agree on the drift: its mean over chains is more than 3 standard errors
    from 0 (with one chain there is no error to compare with, and any drift past the limit counts)."""
    if draws.shape[0] < 2:
        return True
    per_chain = torch.tensor([trace_drift(row[None], init_loss) for row in draws], dtype=torch.float64)
    if not torch.isfinite(per_chain).all():
        return True
    return bool(per_chain.mean().abs() > 3 * per_chain.std() / math.sqrt(len(per_chain)))


def check_health(per_chain: list[float], trace: torch.Tensor, burnin: int, init_loss: float,
                 failed_chains: int) -> tuple[str, ...]:
    """Why the estimate should not be trusted (empty: healthy)."""
    problems = []
    if failed_chains or not torch.isfinite(trace).all():
        problems.append(f"{max(failed_chains, 1)} chain(s) diverged (non-finite loss); lower llc_step_size")
    elif any(v <= 0 for v in per_chain):
        problems.append("lambda-hat <= 0 in a chain: the sampler found lower loss than the checkpoint; "
                        "raise llc_localization or lower llc_step_size")
    else:
        drift = trace_drift(trace[:, burnin:], init_loss)
        if abs(drift) > DRIFT_LIMIT and _beyond_noise(trace[:, burnin:], init_loss):
            problems.append(f"loss trace not stationary (drift {drift:+.2f} of the excess loss, limit "
                            f"{DRIFT_LIMIT}); raise llc_localization or llc_burnin")
    return tuple(problems)


@contextlib.contextmanager
def _frozen_heap():
    """devinterp calls ``gc.collect()`` twice per chain; with torch, transformers and datasets
    loaded each call walks ~10^6 objects (~0.2 s). Freezing the objects that exist now (and
    unfreezing after) makes those calls cheap without changing what they collect."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def estimate_llc(model: nn.Module, input_ids: Int[torch.Tensor, "n seq"], loss: ExampleLoss,
                 sampler: LLCSampler, params: list[str] | None = None) -> LLCEstimate:
    """λ̂ at ``model``'s current weights, sampled with devinterp's SGLD over the dataset
    ``input_ids`` with the per-example ``loss(model, input_ids)``. ``params``: the parameter
    names to sample (default: those with ``requires_grad``); the others stay at w*. ``model``
    is not changed.

    Runs on the CPU in the calling thread; devinterp's progress bars are silenced and a chain
    that fails is reported in ``problems``, not raised."""
    n = input_ids.shape[0]
    if sampler.batch_size > n:
        raise ValueError(f"llc_batch_size {sampler.batch_size} exceeds the {n} training examples")
    names = params if params is not None else [k for k, v in model.named_parameters() if v.requires_grad]
    if not names:
        raise ValueError("no parameters to sample: every parameter is frozen")
    nbeta = sampler.nbeta_for(n)
    flags = {name: param.requires_grad for name, param in model.named_parameters()}
    mode = model.training
    # devinterp seeds the global generators (and datasets draws a fingerprint): the caller's stay as they were
    with _own_random_state():
        from datasets import Dataset  # imported here: devinterp and datasets cost seconds to load

        data = Dataset.from_dict({"input_ids": input_ids.numpy()}).with_format("torch")
        try:
            for param in model.parameters():  # only the flat copy is sampled
                param.requires_grad_(False)
            trace, init_losses, caught = _sample(_Sampled(model, names), data, loss, nbeta, sampler)
        finally:
            for name, param in model.named_parameters():
                param.requires_grad_(flags[name])
            model.train(mode)
    failed = sum("Chain failed" in str(w.message) for w in caught)
    per_chain = [float(nbeta * (row[sampler.burnin:].double().mean() - init))
                 for row, init in zip(trace, init_losses, strict=True)]
    init_loss = float(torch.tensor(init_losses, dtype=torch.float64).mean())
    problems = check_health(per_chain, trace, sampler.burnin, init_loss, failed)
    return LLCEstimate(per_chain=per_chain, init_loss=init_loss, nbeta=nbeta, trace=trace, burnin=sampler.burnin,
                       failed_chains=failed, problems=problems)


@contextlib.contextmanager
def _own_random_state():
    """Restore torch's, numpy's and Python's global random state afterwards."""
    import random

    import numpy as np

    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def _sample(wrapped: _Sampled, data, loss: ExampleLoss, nbeta: float, sampler: LLCSampler):
    """devinterp's sampling: (mean minibatch loss per chain and step [chains, steps], each
    chain's initial loss L_n(w*) over the batches of its epoch, the warnings it raised).

    Every chain draws its own minibatch order (devinterp's default gives all chains the same
    one, and the spread over chains would then leave out the minibatch noise)."""
    from devinterp.slt.sampling import sample

    def per_token(m: nn.Module, ids: torch.Tensor) -> torch.Tensor:  # devinterp averages over positions
        return loss(m, ids)[:, None].expand(-1, ids.shape[1] - 1)

    with tempfile.TemporaryDirectory(prefix="llc-") as tmp, warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stderr(io.StringIO()), _frozen_heap():
        warnings.simplefilter("always")
        samples = sample(
            wrapped, data, {}, lr=sampler.step_size, n_beta=nbeta, localization=sampler.localization,
            param_masks={"flat": None}, num_chains=sampler.chains, num_draws=sampler.draws,
            num_burnin_steps=sampler.burnin, batch_size=sampler.batch_size,
            num_init_loss_batches=max(1, len(data) // sampler.batch_size), init_seed=sampler.seed,
            loss_fn=per_token, device="cpu", output_path=Path(tmp) / "samples.zarr",
            match_sampling_input_ids_across_chains=False,
        )
        ds = samples.dataset
        trace = ds.sampling_loss_micro.mean(dim=["batch_sampling", "token_pos"], skipna=False).values
        trace = torch.from_numpy(trace.copy())
        init_losses = ds.init_loss.mean(dim="token_pos", skipna=False).values.astype(float).tolist()
        samples.close()
    return trace, init_losses, caught


def sampler_from(settings) -> LLCSampler:
    """The `LLCSampler` a `ProbeSettings` describes (its ``llc_*`` fields)."""
    return LLCSampler(step_size=settings.llc_step_size, nbeta=settings.llc_nbeta,
                      localization=settings.llc_localization, chains=int(settings.llc_chains),
                      draws=int(settings.llc_draws), burnin=int(settings.llc_burnin),
                      batch_size=int(settings.llc_batch_size), seed=int(settings.llc_seed))


MEASURES = ("llc", "llc_std", "init_loss", "train_loss", "nbeta", "drift", "failed_chains", "healthy")


def by_step(table):
    """The llc table one row per step, one column per measure of `MEASURES` (NaN kept: a
    diverged chain's λ̂ is NaN, and its row says healthy = 0)."""
    wide = table.pivot_table(index="step", columns="measure", values="value", dropna=False)
    return wide.reindex(columns=list(MEASURES)).sort_index()


def probe(inp: CheckpointOnGrid, key_freqs=(), settings=None):
    """Rows ``step, measure, value`` with measure in `MEASURES`: λ̂ (mean over chains) and its
    spread, devinterp's initial loss beside the trainer's own cross-entropy on the whole
    training set (float64), nβ, the trace drift, failed chains, and healthy (1) or not (0).

    Needs ``inp.model`` (the trainer's module at this checkpoint; the parameters the run
    trained have ``requires_grad``)."""
    if inp.model is None:
        raise ValueError("the llc probe needs the checkpoint's model (CheckpointOnGrid.model)")
    ids = answer_input_ids(inp)
    est = estimate_llc(inp.model, ids, answer_loss, sampler_from(settings))
    with torch.no_grad():
        train_loss = float(F.cross_entropy(inp.model(ids[:, :-1]).double(), ids[:, -1]))
    values = {"llc": est.mean, "llc_std": est.std, "init_loss": est.init_loss, "train_loss": train_loss,
              "nbeta": est.nbeta, "drift": est.drift, "failed_chains": float(est.failed_chains),
              "healthy": float(est.healthy)}
    return tidy(inp.step, [(m, values[m]) for m in MEASURES], ("measure",))
