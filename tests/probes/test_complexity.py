"""The cheap complexity measures: known answers by construction, and what the runner stores."""

from __future__ import annotations

import math

import pytest
import torch

from probes import complexity
from probes.complexity import active_fractions, weight_entropy


def test_active_fraction_counts_neurons_that_fire():
    acts = torch.tensor([[1.0, 0.0, -2.0, 3.0],
                         [0.5, 0.0, -1.0, -3.0]])  # neuron 1 and 2 never fire
    active, dead = active_fractions(acts)
    assert active == pytest.approx(3 / 8)
    assert dead == pytest.approx(2 / 4)


def test_weight_entropy_limits():
    """Equal magnitudes (any signs): log N; one non-zero weight: 0; two equal halves: log 2."""
    n = 1000
    equal = {"a": torch.ones(600), "b": -torch.ones(400)}
    assert weight_entropy(equal) == (pytest.approx(math.log(n)), n)
    one = {"a": torch.zeros(10), "b": torch.tensor([0.0, 5.0])}
    assert weight_entropy(one)[0] == pytest.approx(0.0, abs=1e-12)
    halves = {"a": torch.tensor([2.0, 0.0, 0.0, -2.0])}
    assert weight_entropy(halves)[0] == pytest.approx(math.log(2))


def test_probe_rows_on_a_checkpoint(smoke_run):
    from workbench.probing import evaluate_on_grid

    inp = evaluate_on_grid(smoke_run, smoke_run.steps[-1])
    values = complexity.probe(inp).set_index("measure").value
    assert set(values.index) == set(complexity.MEASURES)
    n = sum(t.numel() for t in inp.params.values())
    assert values["param_count"] == n
    assert values["weight_entropy_norm"] == pytest.approx(values["weight_entropy"] / math.log(n))
    assert 0 < values["active_fraction"] < 1 and 0 <= values["dead_fraction"] < 1
    # by hand on the task's inputs
    acts = inp.neuron_acts[inp.data_mask]
    assert values["active_fraction"] == pytest.approx(float((acts > 0).double().mean()))


def test_random_init_has_near_maximal_weight_entropy_and_half_active_relu(smoke_run):
    """Gaussian weights have spread-out magnitudes: H = log N - O(1), so H / log N is close to 1;
    ReLU on zero-mean pre-activations fires for about half the inputs."""
    from workbench.probing import evaluate_on_grid

    values = complexity.probe(evaluate_on_grid(smoke_run, 0)).set_index("measure").value
    assert 0.9 < values["weight_entropy_norm"] < 1.0
    assert values["active_fraction"] == pytest.approx(0.5, abs=0.1)


def test_frozen_biases_are_not_counted(runs_root):
    import workbench
    from workbench.probing import evaluate_on_grid

    run = workbench.train("frozen", "smoke", {"epochs": 10, "freeze_biases": True, "ckpt_every": 10}, device="cpu",
                          progress=False, root=runs_root)
    inp = evaluate_on_grid(run, run.steps[-1], with_model=True)
    values = complexity.probe(inp).set_index("measure").value
    assert values["param_count"] == sum(p.numel() for p in inp.model.parameters() if p.requires_grad)
    assert not any(name.endswith("bias") for name in inp.params)
