"""Clock versus pizza (Zhong et al. 2023): the attention rate and the two measures that tell the
algorithms apart.

Known answers: the attention rate gives the same forward pass in all three engines, and constant
attention at rate 0; distance irrelevance is 0 for a correct logit that is a function of the
distance and 1 for one that is a function of the sum; a hand-built pizza has gradient symmetricity
1 and distance irrelevance 0 and is 100% accurate; a hand-built clock whose correct logit depends
on a + b alone has distance irrelevance 1 and the gradient symmetricity its ReLU network's
gradients give (near the ideal clock's 0); any model at rate 0 has gradient symmetricity 1."""

from __future__ import annotations

import json
import math

import pytest
import torch

import workbench
from probes import clock_pizza
from probes.clock_pizza import distance_irrelevance, gradient_symmetricity
from tests.constructed import constructed_config, constructed_weights, pizza_config, pizza_weights, write_run
from workbench.config import load_config
from workbench.model import (
    FastTransformer,
    bridge_activations,
    build_bridge,
    factored_grid_activations,
    initial_weights,
    rated_pattern,
)
from workbench.tasks import grid_tokens

P, FREQS = 23, (3, 7)


def _measures(inp) -> dict[str, float]:
    return clock_pizza.probe(inp).set_index("measure").value.to_dict()


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_attention_rate_is_the_same_in_every_engine(rate):
    cfg = load_config("fast", {"p": 11, "attn_rate": rate})
    weights = initial_weights(cfg)
    for name in ("blocks.0.attn.q.weight", "blocks.0.attn.k.weight"):
        weights[name] = weights[name] * 5  # a pattern far from uniform, so the rate matters
    tokens = grid_tokens(cfg.p)
    bridge = bridge_activations(build_bridge(cfg, weights), cfg, tokens)
    fast = FastTransformer(cfg, weights).activations(tokens)
    factored = factored_grid_activations(cfg, weights)
    plain = FastTransformer(load_config("fast", {"p": 11}), weights).activations(tokens)
    for key in ("logits", "neuron_acts", "attention"):
        assert torch.equal(bridge[key], fast[key]), key
        torch.testing.assert_close(factored[key], bridge[key], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(plain["logits"], fast["logits"]), "the rate changes the model"
    expected = rate * plain["attention"] + (1 - rate)  # the "=" row of rate A + (1 - rate) J
    torch.testing.assert_close(fast["attention"], expected)


def test_rated_pattern_keeps_the_causal_mask():
    pattern = torch.tensor([[1.0, 0, 0], [0.25, 0.75, 0], [0.2, 0.3, 0.5]])
    assert torch.equal(rated_pattern(pattern, 0.0), torch.ones(3, 3).tril())
    assert torch.equal(rated_pattern(pattern, 1.0), pattern)
    torch.testing.assert_close(rated_pattern(pattern[-1:], 0.5), torch.tensor([[0.6, 0.65, 0.75]]))


def test_distance_irrelevance_of_known_correct_logits():
    i = torch.arange(P, dtype=torch.float64)
    a, b = i[:, None], i[None, :]
    mask = torch.ones(P, P, dtype=torch.bool)
    of_distance = torch.cos(2 * math.pi * 3 * (a - b) / P).abs()  # the pizza's amplitude
    of_sum = torch.cos(2 * math.pi * ((a + b) % P) / P)
    assert distance_irrelevance(of_distance, mask, +1) < 1e-12
    assert distance_irrelevance(of_sum, mask, +1) == pytest.approx(1.0, abs=1e-12)
    # for a - b the other combination, a + b, is the "distance"
    assert distance_irrelevance(of_sum, mask, -1) < 1e-12
    assert math.isnan(distance_irrelevance(torch.ones(P, P), mask, +1)), "a constant logit has no spread to explain"


def test_gradient_symmetricity_is_a_mean_cosine():
    ga = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    gb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # cosines 1, 0; the last pair has a zero gradient
    assert gradient_symmetricity(torch.stack([ga, gb], dim=1)) == pytest.approx(0.5)


def test_hand_built_pizza(runs_root):
    cfg = pizza_config(P, FREQS)
    run = write_run(runs_root, "pizza", cfg, pizza_weights(cfg, FREQS))
    inp = workbench.evaluate_on_grid(run, 0, with_model=True)
    assert bool((inp.logits.argmax(-1) == inp.labels).all()), "the pizza is exact"
    measures = _measures(inp)
    assert measures["gradient_symmetricity"] == pytest.approx(1.0, abs=1e-6)
    assert measures["distance_irrelevance"] < 1e-5
    # and the Fourier probes find its frequencies, as for the clock
    kf = workbench.probe(run, progress=False).key_frequencies
    assert kf["key_freqs"] == list(FREQS)


def test_hand_built_clock(runs_root):
    cfg = constructed_config(P, FREQS, grid=8)
    gain = 1 + 0.1 * torch.cos(2 * math.pi * torch.arange(P) / P)  # the correct logit varies with a + b only
    weights = constructed_weights(cfg, FREQS, class_gain=gain)
    # neurons whose input is exactly 0 (at a + b = 0 and a = b) would take their ReLU branch from
    # float32 rounding; a small bias settles it, so the float64 reference below takes the same one
    weights["blocks.0.mlp.in.bias"] += 1e-3
    run = write_run(runs_root, "clock", cfg, weights)
    inp = workbench.evaluate_on_grid(run, 0, with_model=True)
    assert bool((inp.logits.argmax(-1) == inp.labels).all())
    measures = _measures(inp)
    # 1 up to the ReLU read-out's residual (~1% of the logits here), part of which follows a - b
    assert measures["distance_irrelevance"] == pytest.approx(1.0, abs=3e-3)

    # gradient symmetricity from the construction itself, in float64: heads 0 and 1 copy E_a[T]
    # and E_b[T] into A and B (weight 1 - e^-40), so dQ_c/dE_a[T] = sum_n M[c, n] 1[pre_n > 0] W_in[n, A]
    # with M = W_U W_out the neurons' read-out (likewise for b); the same classes as the probe draws
    w = {k: v.double() for k, v in weights.items()}
    e = 2 * len(FREQS)
    T, A, B = 0, e, 2 * e
    E, W_in, b_in = w["embed.weight"][:P, T:T + e], w["blocks.0.mlp.in.weight"], w["blocks.0.mlp.in.bias"]
    M = w["unembed.weight"] @ w["blocks.0.mlp.out.weight"]  # [p, d_mlp]
    a, b = torch.ones(P, P, dtype=torch.bool).nonzero(as_tuple=True)
    c = torch.randint(0, P, (len(a),), generator=torch.Generator().manual_seed(0))
    pre = E[a] @ W_in[:, A:A + e].T + E[b] @ W_in[:, B:B + e].T + b_in
    read = M[c] * (pre > 0)
    ga, gb = read @ W_in[:, A:A + e], read @ W_in[:, B:B + e]
    expected = float((torch.nn.functional.cosine_similarity(ga, gb, dim=1)).mean())
    assert measures["gradient_symmetricity"] == pytest.approx(expected, abs=1e-4)
    # the ideal clock, bilinear in the rotations, has cos(w(a - b)) between the gradients: mean 0
    assert abs(expected) < 0.1


def test_constant_attention_is_symmetric_for_any_weights(runs_root):
    """The null case: at rate 0 the model sees a and b only through E_a + E_b, trained or not."""
    run = workbench.train("uniform", "smoke", {"attn_rate": 0.0, "epochs": 1}, device="cpu", progress=False,
                          root=runs_root)
    measures = _measures(workbench.evaluate_on_grid(run, 0, with_model=True))
    assert measures["gradient_symmetricity"] == pytest.approx(1.0, abs=1e-5)
    assert json.loads((run.path / "config.json").read_text())["attn_rate"] == 0.0, "the checkpoint's config has it"


def test_symmetricity_reads_tokens_in_log_coordinates(runs_root):
    """× is read in discrete-log coordinates; the gradients are taken at the tokens g^i, g^j."""
    run = workbench.train("mul-cp", "smoke", {"operation": "mul", "epochs": 1}, device="cpu", progress=False,
                          root=runs_root)
    view = workbench.evaluate_on_grid(run, 0, with_model=True)
    assert view.coordinates == "log"
    tokens, eq = clock_pizza.operand_tokens(view)
    assert eq == run.config.p and sorted(tokens.tolist()) == list(range(1, run.config.p))
    measures = _measures(view)
    assert -1 <= measures["gradient_symmetricity"] <= 1 and 0 <= measures["distance_irrelevance"]
