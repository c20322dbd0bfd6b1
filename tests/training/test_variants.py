"""Training variants: each one's defining property, exact resume, and group = solo."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench import store
from workbench.cli import main
from workbench.config import load_config
from workbench.training import (
    GradFilter,
    orthogonal_grad,
    stablemax_cross_entropy,
    start_run,
    train_group,
    training_loss,
)


def test_stablemax_matches_its_formula_and_stays_finite_where_softmax_collapses():
    x = torch.tensor([[2.0, -1.0, 0.0]])
    s = torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64)  # s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0)
    expected = -torch.log(s[0] / s.sum())
    assert stablemax_cross_entropy(x, torch.tensor([0])).item() == pytest.approx(expected.item(), rel=1e-12)
    huge = torch.tensor([[1e30, 0.0, -1e30]], dtype=torch.float32)
    assert not torch.isfinite(huge.exp()).all()  # a naive softmax overflows here
    assert torch.isfinite(stablemax_cross_entropy(huge, torch.tensor([1])))
    # softmax collapse: a confident correct answer gets loss and gradient exactly 0 in float32
    logits = torch.tensor([[120.0, 0.0, 0.0]], requires_grad=True)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0])).backward()
    assert logits.grad.abs().max() == 0
    logits.grad = None
    stablemax_cross_entropy(logits, torch.tensor([0])).backward()
    assert logits.grad.abs().max() > 0, "StableMax keeps a gradient where softmax has none"
    assert torch.equal(training_loss("stablemax", x, torch.tensor([0])), stablemax_cross_entropy(x, torch.tensor([0])))


def test_orthograd_update_has_no_component_along_the_weights():
    gen = torch.Generator().manual_seed(0)
    w, g = torch.randn(3, 40, 8, generator=gen), torch.randn(3, 40, 8, generator=gen)
    perp = orthogonal_grad(w, g, batch_dims=1)
    for m in range(3):
        cos = (perp[m] * w[m]).sum() / (perp[m].norm() * w[m].norm())
        assert abs(cos.item()) < 1e-6
        assert perp[m].norm().item() == pytest.approx(g[m].norm().item(), rel=1e-6)  # rescaled to |g|
        assert torch.allclose(perp[m], orthogonal_grad(w[m], g[m]), atol=1e-6)  # per member = alone


@pytest.mark.parametrize("kind", ["ema", "ma"])
def test_grokfast_filter_follows_its_recurrence(kind):
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(5, generator=gen) for _ in range(8)]
    alpha, lamb, window = 0.9, 2.0, 3
    filt = GradFilter(kind, alpha, lamb, window)
    h = None
    for t, g in enumerate(grads):
        out = filt({"w": g})["w"]
        if kind == "ema":
            h = g.clone() if h is None else alpha * h + (1 - alpha) * g
            expected = g + lamb * h
        else:
            held = grads[max(0, t - window + 1): t + 1]
            expected = g + lamb * torch.stack(held).mean(0) if len(held) == window else g  # warm-up: unchanged
        assert torch.allclose(out, expected, atol=1e-6), t
    assert torch.equal(GradFilter("none", alpha, lamb, window)({"w": grads[0]})["w"], grads[0])


@pytest.mark.parametrize("variant", [{"grokfast": "ma", "grokfast_window": 7}, {"grokfast": "ema"},
                                     {"loss": "stablemax", "optimizer": "orthograd"}])
def test_variant_run_resumes_bit_identically_and_trains_the_same_in_a_group(runs_root, variant):
    common = {"epochs": 60, "ckpt_every": 20, "lr": 1e-4, "attn_bias": False, **variant}
    whole = workbench.train("whole", "smoke", common, device="cpu", progress=False, root=runs_root)
    workbench.train("cut", "smoke", common, device="cpu", progress=False, root=runs_root, stop_after=30)
    cut = workbench.train("cut", device="cpu", progress=False, root=runs_root)
    for step in whole.steps:
        a, b = whole.weights(step), cut.weights(step)
        assert all(torch.equal(a[k], b[k]) for k in a), f"step {step} differs after resume"
    if "grokfast" in variant:
        assert store.read_state(cut).grad_filter, "the filter's state is part of the resume state"
    grouped = [start_run(runs_root / f"g{i}", load_config("smoke", {**common, "model_seed": i}))
               for i in range(2)]
    train_group(grouped)
    a = torch.cat([v.flatten() for v in store.Run(runs_root / "g0").weights(60).values()])
    b = torch.cat([v.flatten() for v in whole.weights(60).values()])
    assert ((a - b).norm() / b.norm()).item() < 1e-4


def test_variant_fields_refuse_unknown_values(runs_root, capsys):
    assert main(["train", "x", "--preset", "smoke", "grokfast=fast"]) == 2
    assert "unknown grokfast 'fast'; valid: none, ema, ma" in capsys.readouterr().err
    assert main(["train", "x", "--preset", "smoke", "optimizer=sgd"]) == 2
    assert "valid: adamw, orthograd" in capsys.readouterr().err
    assert not (runs_root / "x").exists()


def test_progress_ratio_of_a_restricted_loss_that_underflows_to_zero_is_inf_not_a_crash():
    """Seen in the `variants` sweep: a ⊥Grad run's restricted loss rounds to exactly 0 in float64."""
    from probes.progress import _ratio

    assert _ratio(2.0, 0.0) == float("inf") and _ratio(2.0, 4.0) == 0.5
    assert _ratio(0.0, 0.0) != _ratio(0.0, 0.0)  # NaN
