"""× and ÷ in discrete-log coordinates, and the even-order Fourier basis they need (Z_{p-1}).

Known answers: primitive roots of small primes; the log view turns the mul / div answer table
into (i ± j) mod (p − 1); the Nyquist term of an even order is a frequency like the others
(Parseval, a pure Nyquist neuron is fully explained by it, the logit fit matches brute force);
a hand-built multiplication (division) model's frequencies in log coordinates are recovered
exactly by every rule, and the token coordinates show none; an untrained model claims none."""

from __future__ import annotations

import math

import pytest
import torch

import workbench
from probes import ProbeSettings
from probes.coordinates import discrete_logs, group_view, powers, primitive_root
from probes.fourier import (
    fourier_basis,
    frequency_norms,
    key_frequencies,
    logit_fit,
    n_frequencies,
    neuron_frequency_fractions,
    sum_direction_basis,
)
from tests.constructed import write_constructed_run
from workbench import figures, tasks
from workbench.errors import UsageError
from workbench.tasks import coordinates_note, group_order


@pytest.mark.parametrize("p, g", [(3, 2), (7, 3), (23, 5), (59, 2), (97, 5), (113, 3)])
def test_primitive_root_is_the_smallest_generator(p, g):
    assert primitive_root(p) == g
    assert sorted(powers(p, g).tolist()) == list(range(1, p))
    for h in range(1, g):  # no smaller element generates the group
        assert len({pow(h, i, p) for i in range(p - 1)}) < p - 1


def test_discrete_logs_invert_the_powers_and_reject_composites():
    logs = discrete_logs(13, primitive_root(13))
    assert logs[0] == -1
    assert all(pow(2, int(logs[x]), 13) == x for x in range(1, 13))
    with pytest.raises(ValueError, match="prime"):
        primitive_root(12)


@pytest.mark.parametrize("operation, sign, n_layers", [("mul", 1, 1), ("div", -1, 2)])
def test_log_view_turns_the_task_into_addition_over_z_p_minus_1(runs_root, operation, sign, n_layers):
    run = workbench.train(f"view-{operation}", "smoke", {"operation": operation, "epochs": 1, "n_layers": n_layers},
                          device="cpu", progress=False, root=runs_root)
    token = workbench.evaluate_on_grid(run, 0, coordinates="token")
    view = group_view(token)
    p, n = token.p, token.p - 1
    assert (view.p, view.sign, view.coordinates, view.generator) == (n, sign, "log", primitive_root(p))
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(view.labels, (i + sign * j) % n), "log_g(a op b) = log_g a +- log_g b"
    g_pow = powers(p, view.generator)
    assert torch.equal(view.W_E, token.W_E[g_pow]) and torch.equal(view.W_U, token.W_U[:, g_pow])
    assert torch.equal(view.logits[2, 5], token.logits[g_pow[2], g_pow[5]][g_pow])
    # every input without a zero is kept, in the same split; the ones with a zero are left out
    group = (torch.arange(p) != 0)[:, None] & (torch.arange(p) != 0)[None, :]
    assert int(view.train_mask.sum()) == int((token.train_mask & group).sum())
    assert int(view.data_mask.sum()) == n * n

    def on_grid(x):  # [p, p, ...] in tokens -> [n, n, ...] in log coordinates
        return x[g_pow][:, g_pow]

    for name in ("train_mask", "test_mask", "neuron_acts", "attention"):
        assert torch.equal(getattr(view, name), on_grid(getattr(token, name))), name
    assert len(view.earlier_layers) == n_layers - 1  # every block is re-indexed the same way
    for seen, block in zip(view.earlier_layers, token.earlier_layers, strict=True):
        assert torch.equal(seen.neuron_acts, on_grid(block.neuron_acts))
        assert torch.equal(seen.attention, on_grid(block.attention)) and torch.equal(seen.W_out, block.W_out)
    assert group_view(view) is view
    assert group_order(operation, p) == n and f"Z_{n}" in coordinates_note(operation, p)


def test_other_operations_keep_their_token_coordinates(smoke_run):
    inp = workbench.evaluate_on_grid(smoke_run, 0, coordinates="token")
    assert group_view(inp) is inp and coordinates_note("add", 23) == ""
    assert "not applicable" in coordinates_note("x2+y2", 23)
    with pytest.raises(ValueError, match="coordinates"):
        workbench.evaluate_on_grid(smoke_run, 0, coordinates="log")


# ------------------------------------------------------------------ even order: the Nyquist term
@pytest.mark.parametrize("n", [22, 58])
def test_even_order_norms_keep_parseval_and_count_nyquist_as_frequency_n_over_2(n):
    assert n_frequencies(n) == n // 2
    M = torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    norms = frequency_norms(M)
    assert norms.shape == (n // 2 + 1,)
    assert norms.pow(2).sum().item() == pytest.approx(M.pow(2).sum().item(), rel=1e-12)
    alternating = torch.cos(math.pi * torch.arange(n, dtype=torch.float64))[:, None] * torch.ones(1, 3)
    norms = frequency_norms(alternating)
    assert norms[n // 2].item() == pytest.approx(alternating.norm().item()) and norms[: n // 2].abs().max() < 1e-9
    U = sum_direction_basis(n, 1)
    assert U.shape == (n - 1, n * n)
    assert torch.allclose(U @ U.T, torch.eye(n - 1, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(fourier_basis(n) @ fourier_basis(n).T, torch.eye(n, dtype=torch.float64), atol=1e-10)


def test_a_nyquist_neuron_is_fully_explained_by_it():
    n = 22
    x = torch.arange(n, dtype=torch.float64)
    acts = torch.stack([torch.cos(math.pi * (x[:, None] + x[None, :])),  # (-1)^(i + j)
                        torch.cos(2 * math.pi * 4 * x[:, None] / n) + torch.cos(math.pi * x[None, :])], dim=-1)
    fractions = neuron_frequency_fractions(acts)  # [11, 2]
    assert fractions[n // 2 - 1, 0].item() == pytest.approx(1.0)
    # cos(w_4 i) has variance 1/2 and (-1)^j variance 1: a third and two thirds of the neuron
    assert fractions[4 - 1, 1].item() == pytest.approx(1 / 3) and fractions[n // 2 - 1, 1].item() == pytest.approx(2 / 3)


@pytest.mark.parametrize("sign", [1, -1])
def test_even_order_logit_fit_matches_brute_force(sign):
    n = 12
    L = torch.randn(n, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    alpha, explained = logit_fit(L, sign)
    a, b, c = (torch.arange(n, dtype=torch.float64).view(*s) for s in ((n, 1, 1), (1, n, 1), (1, 1, n)))
    Lc = L - L.mean(2, keepdim=True)
    for k in range(1, n // 2 + 1):
        cos = torch.cos(2 * math.pi * k * (a + sign * b - c) / n)
        brute = (Lc * cos).sum() / cos.pow(2).sum()
        assert alpha[k - 1].item() == pytest.approx(brute.item(), abs=1e-12)
        assert explained[k - 1].item() == pytest.approx((brute**2 * cos.pow(2).sum() / Lc.pow(2).sum()).item(), rel=1e-9)


# --------------------------------------------------------------- hand-built x and / circuits
@pytest.mark.parametrize("operation", ["mul", "div"])
def test_constructed_log_circuit_is_recovered_exactly(runs_root, operation):
    freqs = (3, 7, 10)  # frequencies of Z_22 (p = 23), in log coordinates
    run = write_constructed_run(runs_root, f"constructed-{operation}", 23, freqs, operation=operation)
    report = workbench.probe(run, progress=False)
    assert report.key_frequencies["by_rule"] == {"neurons": list(freqs), "embed": list(freqs), "wl": list(freqs)}
    f = report.tables["fourier"]
    assert f[f.measure == "logit_explained_key"].value.item() > 0.99
    alpha = f[f.measure == "logit_alpha"].set_index("frequency").value
    assert alpha.loc[list(freqs)].min() > 7.5 and alpha.drop(list(freqs)).abs().max() < 0.1
    prog = report.tables["progress"].set_index("measure").value
    assert prog["restricted_acc"] == 1.0
    assert prog["restricted_loss"] == pytest.approx(prog["test_loss"], rel=0.2), "the key frequencies are the whole model"
    assert prog["excluded_loss"] > 1000 * prog["train_loss"] and prog["neuron_excluded_loss"] > 1000 * prog["train_loss"]
    assert "discrete-log coordinates" in report.summary()
    # the same checkpoint read in token coordinates shows no Fourier structure at all
    token = workbench.evaluate_on_grid(run, 0, coordinates="token")
    assert key_frequencies(token, ProbeSettings()) == {"neurons": [], "embed": [], "wl": [],
                                                       "layers": [{"neurons": [], "wl": []}]}
    with pytest.raises(ValueError, match="token coordinates"):
        from probes.llc import answer_input_ids

        answer_input_ids(group_view(token))


@pytest.mark.parametrize(("p", "freqs", "gains", "amplitudes"), [
    (23, (3, 7, 10), (1, 4, 1), None),
    (59, (5, 13, 20), (1, 4, 4), None),          # the planted set that W_L alone cut to {5}
    (83, (3, 17, 40), (5, 1, 1), None),          # ... and to {17, 40}
    (97, (6, 29, 41, 47), (3, 1, 0.5, 2), None),
    (59, (5, 13, 20), None, (1.0, 0.6, 0.4)),    # frequencies of unequal weight in the logits
    (83, (3, 17, 40), (1, 3, 1), (0.5, 1.0, 0.7)),
])
def test_every_rule_recovers_planted_mul_circuits_with_unbalanced_neurons_and_unequal_weights(runs_root, p, freqs, gains,
                                                                                              amplitudes):
    """Hand-built × circuits in discrete-log coordinates at several primes. ``gains``: the neurons of
    each frequency rescaled (inputs x c, outputs / c: the same function, other W_L norms);
    ``amplitudes``: each frequency's weight in the logits (the smallest squared weight is 0.16 of the
    largest, above the rules' 0.1). Every rule, W_L's included, finds exactly the planted set."""
    from tests.constructed import constructed_config, constructed_weights, write_run

    cfg = constructed_config(p, freqs, operation="mul")
    weights = constructed_weights(cfg, freqs, amplitudes=amplitudes, neuron_gains=gains)
    run = write_run(runs_root, f"planted-{p}", cfg, weights)
    inp = group_view(workbench.evaluate_on_grid(run, 0))
    keys = key_frequencies(inp, ProbeSettings())
    assert {rule: keys[rule] for rule in ("neurons", "embed", "wl")} == dict.fromkeys(("neurons", "embed", "wl"), list(freqs))
    if gains is not None:  # the raw W_L, which the rescaling changes while the function stays, would not
        from probes.fourier import W_L, key_frequencies_by_norm

        raw = frequency_norms(W_L(inp.W_out, inp.W_U).T)
        assert key_frequencies_by_norm(raw, 0.1, 1.5) != list(freqs) or max(gains) / min(gains) < 4


def test_mul_mod_a_composite_is_probed_in_tokens(runs_root):
    """× mod 9 has no cyclic group of units to take logs in: the probes read its tokens (sign 0)."""
    run = workbench.train("mul-9", "smoke", {"operation": "mul", "p": 9, "epochs": 1}, device="cpu", progress=False,
                          root=runs_root)
    inp = workbench.evaluate_on_grid(run, 0)
    assert (inp.coordinates, inp.p, inp.sign) == ("token", 9, 0) and group_order("mul", 9) == 9
    summary = workbench.probe(run, progress=False).summary()
    assert "mul mod 9 (not prime) is no group's addition" in summary


@pytest.mark.parametrize("operation", ["x2+y2", "x2+xy+y2", "x3+xy"])
def test_measures_that_do_not_apply_say_so(runs_root, operation):
    """A polynomial task has no a ± b direction: every measure that needs one is a NaN row in its
    table (not a missing one), the summary names each and why, and the figures say so in the panel."""
    from probes import not_applicable

    run = workbench.train(operation.replace("+", "p"), "smoke", {"operation": operation, "epochs": 1}, device="cpu",
                          progress=False, root=runs_root)
    results = workbench.probe(run, progress=False)
    for probe, measures in not_applicable().items():
        table = results.tables[probe]
        for measure in measures:
            rows = table[table.measure == measure]
            assert len(rows) == len(run.steps) and rows.value.isna().all(), (probe, measure)
        applies = table[~table.measure.isin(measures)]
        assert len(applies) and applies.value.notna().all(), probe
    summary = results.summary()
    assert "not applicable (NaN in the tables)" in summary and "restricted_loss" in summary
    assert "distance_irrelevance" in summary and "circuit formation and cleanup" in summary
    assert results.phases.steps["circuit_formation"] is None
    t = results.tables
    for fig in (figures.progress_measures(t["progress"], t["weights"], t["fourier"]),
                figures.clock_pizza_measures(t["clock_pizza"])):
        assert any(a.text.endswith(figures.NOT_APPLICABLE) for a in fig.layout.annotations)
    applicable = workbench.probe(workbench.train("add", "smoke", {"epochs": 1}, device="cpu", progress=False,
                                                 root=runs_root), progress=False).tables
    fig = figures.progress_measures(applicable["progress"], applicable["weights"], applicable["fourier"])
    assert not any(figures.NOT_APPLICABLE in a.text for a in fig.layout.annotations)
    # the task decides, not NaN alone: an undefined distance irrelevance of an addition run is not "not applicable"
    assert tasks.has_sum_direction("add", 23) and tasks.has_sum_direction("mul", 23)
    assert not tasks.has_sum_direction("mul", 22) and not tasks.has_sum_direction("x2+y2", 23)
    undefined = t["clock_pizza"].assign(value=float("nan"))
    fig = figures.clock_pizza_measures(undefined, applies=True)
    assert not any(figures.NOT_APPLICABLE in a.text for a in fig.layout.annotations)


def test_untrained_mul_model_claims_no_key_frequencies(runs_root):
    run = workbench.train("untrained-mul", "mul", {"epochs": 1}, device="cpu", progress=False, root=runs_root)
    report = workbench.probe(run, steps="0", progress=False)
    assert report.key_frequencies["by_rule"] == {"neurons": [], "embed": [], "wl": []}


def test_key_frequencies_given_for_mul_are_checked_against_z_p_minus_1(runs_root):
    run = write_constructed_run(runs_root, "constructed-range", 23, (3, 7, 10), operation="mul")
    assert workbench.probe(run, key_freqs=[11], progress=False).key_frequencies["key_freqs"] == [11]  # Nyquist of Z_22
    with pytest.raises(UsageError, match=r"Z_22.*1\.\.11"):
        workbench.probe(run, key_freqs=[12], progress=False)
