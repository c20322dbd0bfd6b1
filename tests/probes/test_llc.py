"""The local learning coefficient probe: known answers, the loss it samples, seeding, health flags,
and the runner's opt-in, cached, parallel measurement of it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workbench
from probes import ProbeSettings, get_probe, llc
from probes.llc import LLCSampler, answer_input_ids, answer_loss, estimate_llc, trace_drift
from workbench.probing import GridEvaluator


class Quadratic(nn.Module):
    """L(w, u) = 1/2 sum_j h_j w_j^2, flat in u: a regular model in k = len(h) of its parameters.
    ``product``: L = 1/2 sum_i (w_2i w_2i+1)^2 instead (the h_j unused), independent copies of the
    simplest degenerate (singular) model; copies average the sampling noise down."""

    def __init__(self, h: list[float], flat: int = 2, product: bool = False):
        super().__init__()
        self.register_buffer("h", torch.tensor(h))
        self.w = nn.Parameter(torch.zeros(len(h)))
        self.u = nn.Parameter(torch.zeros(flat))
        self.product = product

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The loss of each example (all the same: no minibatch noise)."""
        if self.product:  # the h_j are unused
            loss = 0.5 * (self.w[0::2] * self.w[1::2]).pow(2).sum()
        else:
            loss = 0.5 * (self.h * self.w**2).sum()
        return loss.expand(input_ids.shape[0])


def _example_loss(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids)


IDS = torch.zeros(256, 2, dtype=torch.int64)  # 256 identical "examples": the loss has no minibatch noise


def _ar1_expectation(h: list[float], sampler: LLCSampler) -> float:
    """The expected λ̂ of SGLD on L = 1/2 sum_j h_j w_j^2 (no minibatch noise): each coordinate is
    an AR(1) chain w <- (1 - ε a / 2) w + N(0, ε) with a = nβ h + γ, whose stationary variance is
    1 / (a (1 - ε a / 4)); so E[nβ L] = sum_j nβ h_j / (2 a_j (1 - ε a_j / 4))."""
    eps, nb, g = sampler.step_size, sampler.nbeta, sampler.localization
    return sum(nb * hj / (2 * (nb * hj + g) * (1 - eps * (nb * hj + g) / 4)) for hj in h)


def test_regular_quadratic_gives_k_over_2():
    """λ = k/2 for a loss that is a non-degenerate quadratic in k parameters and flat in the rest
    (here k = 12 with Hessian eigenvalues 1..2, and 4 flat parameters). With nβ h >> γ and ε a
    small the chain's exact expectation is within 4% of k/2, and the pipeline returns it."""
    h = torch.linspace(1.0, 2.0, 12).tolist()
    sampler = LLCSampler(step_size=1e-4, nbeta=1000.0, localization=1.0, chains=4, draws=800, burnin=100,
                         batch_size=32, seed=0)
    est = estimate_llc(Quadratic(h, flat=4), IDS, _example_loss, sampler)
    expected = _ar1_expectation(h, sampler)
    assert expected == pytest.approx(len(h) / 2, rel=0.04)
    assert est.healthy, est.problems
    assert est.init_loss == 0.0
    assert est.mean == pytest.approx(expected, rel=0.08)


def _degenerate_expectation(nbeta: float, gamma: float, n: int = 1201) -> float:
    """E[nβ L] for L = 1/2 (w1 w2)^2 under exp(-nβ L - γ/2 |w|^2), by quadrature on a grid."""
    r = 7.0 / math.sqrt(gamma)
    w = torch.linspace(-r, r, n, dtype=torch.float64)
    w1, w2 = torch.meshgrid(w, w, indexing="ij")
    energy = nbeta * 0.5 * (w1 * w2) ** 2
    weight = torch.exp(-energy - 0.5 * gamma * (w1**2 + w2**2))
    return float((energy * weight).sum() / weight.sum())


def test_degenerate_products_have_a_smaller_known_coefficient():
    """L = 1/2 (w1 w2)^2 has λ = 1/2 against 2/2 = 1 for a regular model in two parameters
    (ten independent copies here: 5 against 10). At finite nβ/γ^2 the estimator's target is
    E[nβ L] under the localised posterior, computed by quadrature (0.263 per copy at nβ = 10,
    γ = 1); the pipeline returns it, and the regular model of the same size its own value."""
    sampler = LLCSampler(step_size=5e-3, nbeta=10.0, localization=1.0, chains=4, draws=1500, burnin=600,
                         batch_size=32, seed=0)  # burn-in: 3 relaxation times 1 / (ε γ) of the flat directions
    degenerate = estimate_llc(Quadratic([1.0] * 20, product=True), IDS, _example_loss, sampler)
    regular = estimate_llc(Quadratic([1.0] * 20), IDS, _example_loss, sampler)
    expected = 10 * _degenerate_expectation(sampler.nbeta, sampler.localization)
    assert 2.0 < expected < 3.0
    assert degenerate.healthy and regular.healthy, (degenerate.problems, regular.problems)
    assert degenerate.mean == pytest.approx(expected, rel=0.12)
    assert regular.mean == pytest.approx(_ar1_expectation([1.0] * 20, sampler), rel=0.08)
    assert degenerate.mean < 0.4 * regular.mean


def test_drift_is_zero_for_a_flat_trace_and_large_for_a_climbing_one():
    flat = torch.full((2, 100), 1.0) + 0.01 * torch.randn(2, 100, generator=torch.Generator().manual_seed(0))
    assert abs(trace_drift(flat, init_loss=0.5)) < 0.05
    climbing = torch.linspace(0.6, 2.0, 100).expand(2, 100)
    assert trace_drift(climbing, init_loss=0.5) > llc.DRIFT_LIMIT
    # flagged when the chains agree on it; noise that averages to a drift is not
    assert llc.check_health([5.0, 5.0], climbing, 0, 0.5, 0)
    gen = torch.Generator().manual_seed(1)
    noisy = 1.0 + torch.randn(3, 100, generator=gen) * torch.tensor([[0.05], [0.8], [0.05]])
    noisy[1, 50:] += 0.6  # one chain jumps, the others do not
    assert trace_drift(noisy, init_loss=0.5) > llc.DRIFT_LIMIT
    assert llc.check_health([5.0, 5.0, 5.0], noisy, 0, 0.5, 0) == ()


def _checkpoint(run: workbench.Run, step: int):
    return GridEvaluator(run, with_model=True)(step)


def test_devinterp_initial_loss_is_the_trainers_cross_entropy(smoke_run):
    """Each example a b = c gives devinterp 3 positions; it averages over them. The answer loss
    on every position keeps the average equal to the answer's cross-entropy: one full batch,
    so devinterp's initial loss and the project's own loss are over the same examples."""
    inp = _checkpoint(smoke_run, smoke_run.steps[-1])
    ids = answer_input_ids(inp)
    n = ids.shape[0]
    assert n == int(inp.train_mask.sum()) and (ids[:, 2] == inp.p).all()
    sampler = LLCSampler(chains=1, draws=2, burnin=0, batch_size=n)
    est = estimate_llc(inp.model, ids, answer_loss, sampler)
    with torch.no_grad():
        own = F.cross_entropy(inp.model(ids[:, :3]).double(), ids[:, 3]).item()
    assert est.init_loss == pytest.approx(own, rel=1e-5)
    # and the sampled loss of the first step (before any move) is that same loss
    assert float(est.trace[0, 0]) == pytest.approx(own, rel=1e-5)


def test_same_checkpoint_and_settings_give_the_same_estimate(smoke_run):
    inp = _checkpoint(smoke_run, smoke_run.steps[-1])
    settings = ProbeSettings(llc_chains=2, llc_draws=20, llc_burnin=10, llc_batch_size=32)
    first = llc.probe(inp, (), settings)
    again = llc.probe(_checkpoint(smoke_run, smoke_run.steps[-1]), (), settings)
    assert first.equals(again)
    other = llc.probe(inp, (), ProbeSettings(llc_chains=2, llc_draws=20, llc_burnin=10, llc_batch_size=32, llc_seed=1))
    assert not other.set_index("measure").value["llc"] == first.set_index("measure").value["llc"]
    values = first.set_index("measure").value
    assert values["nbeta"] == pytest.approx(int(inp.train_mask.sum()) / math.log(int(inp.train_mask.sum())))
    assert values["init_loss"] == pytest.approx(values["train_loss"], rel=0.5), "init loss over minibatches"


def test_a_diverging_sampler_is_flagged_not_raised(smoke_run):
    inp = _checkpoint(smoke_run, smoke_run.steps[-1])
    frame = llc.probe(inp, (), ProbeSettings(llc_step_size=10.0, llc_chains=2, llc_draws=20, llc_burnin=0))
    values = frame.set_index("measure").value
    assert values["healthy"] == 0.0 and values["failed_chains"] > 0


def test_only_trained_parameters_are_sampled_and_the_caller_keeps_its_model(runs_root):
    """With frozen biases the chains move only the weights the run trained; the model given,
    its flags and mode, and the caller's random generators are as they were."""
    import random

    import numpy as np

    from probes.llc import _Sampled

    run = workbench.train("frozen", "smoke", {"epochs": 20, "freeze_biases": True, "ckpt_every": 10}, device="cpu",
                          progress=False, root=runs_root)
    inp = _checkpoint(run, run.steps[-1])
    model = inp.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any(n.endswith("bias") for n in trainable)
    assert _Sampled(model, trainable).flat.numel() == sum(p.numel() for p in model.parameters() if p.requires_grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    model.eval()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    est = estimate_llc(model, answer_input_ids(inp), answer_loss, LLCSampler(chains=2, draws=10, burnin=5))
    assert est.healthy or est.problems  # it ran
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags and not model.training
    # (Python's own generator is checked on the context manager alone: beartype, which checks
    # the tests' type hints, draws from it when a checked function returns)
    draws = (torch.rand(1).item(), np.random.rand())
    torch.manual_seed(123), np.random.seed(123)
    assert draws == (torch.rand(1).item(), np.random.rand()), "global generators untouched"
    from probes.llc import _own_random_state

    random.seed(5)
    with _own_random_state():
        random.seed(0), np.random.seed(0), torch.manual_seed(0)
    first = random.random()
    random.seed(5)
    assert first == random.random()


def test_llc_is_opt_in_cached_and_the_same_in_worker_processes(runs_root):
    run = workbench.train("llc", "smoke", {"epochs": 40, "ckpt_every": 20}, device="cpu", progress=False, root=runs_root)
    small = {"llc_chains": "2", "llc_draws": "10", "llc_burnin": "5", "llc_batch_size": "32"}
    default = workbench.probe(run, progress=False)
    assert "llc" not in default.computed and "llc" not in default.tables
    alone = workbench.probe(run, probes=["llc"], overrides=small, progress=False, workers=1)
    assert alone.computed == {"llc": len(run.steps)}
    table = alone.tables["llc"]
    assert set(table.measure) == set(llc.MEASURES) and sorted(table.step.unique()) == run.steps
    # cached: the default probes keep it, an llc setting invalidates only it
    again = workbench.probe(run, progress=False)
    assert again.tables["llc"].equals(table)
    reseeded = workbench.probe(run, probes=["llc"], overrides={"llc_seed": "3"}, progress=False, workers=2)
    assert reseeded.computed == {"llc": len(run.steps)}
    # two worker processes give exactly the in-process numbers
    back = workbench.probe(run, probes=["llc"], overrides={"llc_seed": "0"}, progress=False, workers=2)
    assert back.tables["llc"].reset_index(drop=True).equals(table.reset_index(drop=True))


def test_llc_spec_declares_what_it_reads():
    spec = get_probe("llc")
    assert not spec.default and spec.parallel and spec.reads_model
    assert not spec.reads_activations and not spec.reads_key_freqs
    assert set(spec.settings) == {n for n in ProbeSettings().to_dict() if n.startswith("llc_")}


def test_bad_sampler_settings_are_one_line_errors(smoke_run, capsys):
    from workbench.cli import main

    assert main(["probe", str(smoke_run.path), "--probes", "llc", "llc_chains=2.5"]) == 2
    assert "llc_chains must be a whole number" in capsys.readouterr().err
    assert main(["probe", str(smoke_run.path), "--probes", "llc", "llc_step_size=0"]) == 2
    assert "llc_step_size must be > 0" in capsys.readouterr().err
    assert main(["probe", str(smoke_run.path), "--probes", "llc", "llc_seed=-1"]) == 2
    assert "llc_seed must lie in" in capsys.readouterr().err
    n = len(smoke_run.split.train)
    assert main(["probe", str(smoke_run.path), "--probes", "llc", f"llc_batch_size={n + 1}"]) == 2
    assert f"exceeds the run's {n} training examples" in capsys.readouterr().err
    assert main(["probe", str(smoke_run.path), "--probes", "llc", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def _nearest(steps: list[int], target: int) -> int:
    return min(steps, key=lambda s: (abs(s - target), s))


def _llc_at(run: workbench.Run, steps: list[int]):
    result = workbench.probe(run, probes=["llc"], steps=",".join(map(str, steps)), progress=False, workers=2)
    wide = result.tables["llc"].pivot_table(index="step", columns="measure", values="value")
    return wide.loc[steps]






def test_trace_figure_shows_every_chain_and_the_verdict(smoke_run):
    from workbench import figures

    inp = workbench.evaluate_on_grid(smoke_run, smoke_run.steps[-1], with_model=True)
    est = estimate_llc(inp.model, answer_input_ids(inp), answer_loss, LLCSampler(chains=2, draws=10, burnin=5))
    fig = figures.llc_trace(est)
    assert len(fig.data) == 2 and len(fig.data[0].y) == 15
    verdict = "; healthy)" if est.healthy else "NOT healthy"
    assert verdict in fig.layout.title.text and f"{est.mean:.3g}" in fig.layout.title.text


def test_a_stale_llc_table_is_no_table_and_nothing_breaks(runs_root):
    """Changing an llc setting while probing without llc makes every llc row stale: the run
    then has no llc table, and the summary and the report go on without it."""
    from workbench.report import build_report

    run = workbench.train("stale", "smoke", {"epochs": 40, "ckpt_every": 20}, device="cpu", progress=False, root=runs_root)
    small = {"llc_chains": "2", "llc_draws": "10", "llc_burnin": "5", "llc_batch_size": "32"}
    workbench.probe(run, probes=["llc"], overrides=small, progress=False, workers=1)
    stale = workbench.probe(run, overrides={"llc_draws": "11"}, progress=False)
    assert "llc" not in stale.tables and "llc:" not in stale.summary()
    assert "llc" not in build_report(run, formats=()).figures


def test_an_interrupted_probe_keeps_what_it_measured(runs_root, monkeypatch):
    """Ctrl-C half-way through: the checkpoints already measured are saved and valid, and the
    same command again measures only the rest."""
    import dataclasses

    from probes import REGISTRY

    run = workbench.train("cut", "smoke", {"epochs": 60, "ckpt_every": 20}, device="cpu", progress=False, root=runs_root)
    small = {"llc_chains": "2", "llc_draws": "10", "llc_burnin": "5", "llc_batch_size": "32"}
    spec, calls = REGISTRY["llc"], []

    def interrupted(inp, key_freqs, settings):
        calls.append(inp.step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return spec.fn(inp, key_freqs, settings)

    monkeypatch.setitem(REGISTRY, "llc", dataclasses.replace(spec, fn=interrupted))
    with pytest.raises(KeyboardInterrupt):
        workbench.probe(run, probes=["llc"], overrides=small, progress=False, workers=1)
    monkeypatch.setitem(REGISTRY, "llc", spec)
    assert sorted(run.probe_table("llc").step.unique()) == run.steps[:2]
    again = workbench.probe(run, probes=["llc"], progress=False, workers=1)
    assert again.computed == {"llc": len(run.steps) - 2}
