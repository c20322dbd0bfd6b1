"""The training step: the table-lookup forward equals the plain forward, its gradients equal autograd's
through the plain forward, the flat AdamW equals torch's, the written-out float64 cross-entropy equals
F.cross_entropy's, and what a run saves reloads into the bridge with the training model's logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench.config import load_config
from workbench.model import (
    UNEMBED_BIAS,
    FastTransformer,
    block_key,
    initial_weights,
    load_bridge,
    trainable_names,
    updated_names,
)
from workbench.tasks import make_dataset, make_split
from workbench.training.flat import FlatAdamW, FlatWeights
from workbench.training.lookup import lookup_forward, step_flops, step_macs
from workbench.training.step import Batch, GroupStep, MeanCrossEntropy

CASES = [{}, {"attn_rate": 0.3}, {"act_fn": "gelu"}, {"n_heads": 2, "d_head": 24, "d_model": 40, "d_mlp": 96},
         {"attn_bias": False, "init": "nanda2023"}]


def _noisy(cfg, scale: float = 3.0, seed: int = 0) -> dict[str, torch.Tensor]:
    """The initial weights times ``scale`` plus noise in every tensor, biases included (so that
    every term of the forward is exercised and the check has teeth); the unembedding bias stays 0."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v if k == UNEMBED_BIAS else v * scale + 0.1 * torch.randn(v.shape, generator=gen)
            for k, v in initial_weights(cfg).items()}


def _stack(*members: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([m[k] for m in members]) for k in members[0]}


@pytest.mark.parametrize("overrides", CASES)
def test_lookup_forward_equals_the_plain_forward_on_every_input(overrides):
    cfg = load_config("smoke", overrides)
    tokens = make_dataset(cfg.operation, cfg.p).tokens
    members = [_noisy(cfg, seed=s) for s in range(2)]
    with torch.no_grad():
        plain = torch.stack([FastTransformer(cfg, w)(tokens) for w in members])
        looked_up = lookup_forward(cfg, _stack(*members), tokens[:, 0].expand(2, -1), tokens[:, 1].expand(2, -1))
    assert plain.abs().max() > 1.0
    assert (plain - looked_up).abs().max() <= 1e-5 * plain.abs().max()


def test_the_key_bias_changes_no_output_and_its_autograd_gradient_is_rounding_noise():
    cfg = load_config("smoke")
    w = _noisy(cfg)
    ds = make_dataset(cfg.operation, cfg.p)
    shifted = {**w, block_key(0, "attn.k.bias"): w[block_key(0, "attn.k.bias")] + 5.0}
    with torch.no_grad():
        a, b = FastTransformer(cfg, w)(ds.tokens), FastTransformer(cfg, shifted)(ds.tokens)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    model = FastTransformer(cfg, w)
    F.cross_entropy(model(ds.tokens).double(), ds.labels).backward()
    grads = {n: model.w(n).grad.abs().max().item() for n in trainable_names(cfg)}
    assert grads[block_key(0, "attn.k.bias")] < 1e-6 * grads[block_key(0, "attn.q.bias")]
    assert block_key(0, "attn.k.bias") not in updated_names(cfg)
    assert set(trainable_names(cfg)) - set(updated_names(cfg)) == {block_key(0, "attn.k.bias")}


@pytest.mark.parametrize(("overrides", "scale"), [({}, 3.0), ({"attn_rate": 0.3}, 3.0), ({"n_layers": 2}, 1.0)])
def test_step_gradients_equal_autograd_through_the_plain_forward(overrides, scale):
    """Each member's gradient of its own mean float64 loss, from the step, against autograd through
    `FastTransformer.forward` and ``F.cross_entropy`` on that member alone: float32 rounding, stated as
    |got - ref| / |ref| <= 1e-5 per weight tensor (Frobenius norms; weights ``scale`` x the init plus
    noise: at 3x a two-layer model's loss is ~360 and float32 rounding alone reaches 1.5e-5)."""
    cfg = load_config("smoke", overrides)
    ds = make_dataset(cfg.operation, cfg.p)
    splits = [make_split(ds.n_examples, f, 0) for f in (0.3, 0.5)]  # unequal sizes: one member padded
    members = [_noisy(cfg, scale, seed=s) for s in range(2)]
    step = GroupStep(cfg, [cfg, cfg], members, [{}, {}], [{}, {}], torch.device("cpu"))
    batch = Batch([ds.tokens[s.train] for s in splits], [ds.labels[s.train] for s in splits], len(splits[1].train))
    grad = step.flat.grad(batch.losses(step.logits(batch)).sum())
    for j, (w, split) in enumerate(zip(members, splits, strict=True)):
        model = FastTransformer(cfg, w)
        F.cross_entropy(model(ds.tokens[split.train]).double(), ds.labels[split.train]).backward()
        for name in updated_names(cfg):
            ref, got = model.w(name).grad, step.flat.columns(grad, name)[j]
            assert ref.abs().max() > 0, name
            assert ((got - ref).norm() / ref.norm()).item() <= 1e-5, name


def test_mean_cross_entropy_and_its_gradient_equal_f_cross_entropy_in_float64():
    gen = torch.Generator().manual_seed(0)
    logits = (20 * torch.randn(2, 50, 7, generator=gen)).requires_grad_()
    labels = torch.randint(0, 7, (2, 50), generator=gen)
    batch = Batch([torch.zeros(50, 3, dtype=torch.long), torch.zeros(30, 3, dtype=torch.long)], [labels[0], labels[1, :30]], 50)
    got = MeanCrossEntropy.apply(logits, batch.labels, batch.weight)
    ref = torch.stack([F.cross_entropy(logits[0].double(), labels[0]), F.cross_entropy(logits[1, :30].double(), labels[1, :30])])
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    g_got, = torch.autograd.grad(got @ torch.tensor([1.0, 3.0], dtype=torch.float64), logits)
    g_ref, = torch.autograd.grad(ref @ torch.tensor([1.0, 3.0], dtype=torch.float64), logits)
    assert torch.equal(g_got[1, 30:], torch.zeros(20, 7))  # padding gets no gradient
    torch.testing.assert_close(g_got, g_ref, rtol=1e-6, atol=1e-12)
    # a loss of 1e-9 keeps the correct logit's gradient (float32 softmax rounds it to exactly 0)
    sure = torch.tensor([[[30.0, 0.0, 0.0]]], requires_grad=True)
    one = Batch([torch.zeros(1, 3, dtype=torch.long)], [torch.tensor([0])], 1)
    g, = torch.autograd.grad(MeanCrossEntropy.apply(sure, one.labels, one.weight).sum(), sure)
    assert g[0, 0, 0] < 0 and (sure.softmax(-1)[0, 0, 0] - 1) == 0


def test_flat_adamw_equals_torch_adamw():
    cfg = load_config("smoke", {"lr": 3e-3, "weight_decay": 0.5, "beta2": 0.99})
    w = initial_weights(cfg)
    names = updated_names(cfg)
    flat = FlatWeights(names, [w], torch.device("cpu"))
    opt = FlatAdamW(flat, [cfg.beta1], [cfg.beta2], [cfg.weight_decay], [{}])
    ref = {n: w[n].clone().requires_grad_() for n in names}
    torch_opt = torch.optim.AdamW(ref.values(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        grads = {n: torch.randn(w[n].shape, generator=gen) for n in names}
        for n in names:
            ref[n].grad = grads[n].clone()
        torch_opt.step()
        opt.step(torch.cat([grads[n].reshape(1, -1) for n in names], 1), [cfg.lr])
    for n in names:
        torch.testing.assert_close(flat.views[n][0].detach(), ref[n].detach(), rtol=1e-5, atol=1e-7)
    state = opt.member_state(0)
    torch_state = torch_opt.state_dict()["state"]
    for i, n in enumerate(names):
        torch.testing.assert_close(state[n]["exp_avg_sq"], torch_state[i]["exp_avg_sq"], rtol=1e-5, atol=1e-12)
        assert float(state[n]["step"]) == float(torch_state[i]["step"]) == 20.0


def test_checkpoints_reload_into_the_bridge_with_the_training_models_logits(smoke_run):
    """The bound: on all p^2 inputs, |bridge - training model| <= 1e-5 x the largest logit, at an
    early and at the final checkpoint (float32 rounding of sums taken in other orders)."""
    cfg = smoke_run.config
    tokens = smoke_run.dataset.tokens
    for step in (smoke_run.steps[1], smoke_run.steps[-1]):
        weights = {k: v.unsqueeze(0) for k, v in smoke_run.weights(step).items()}
        with torch.no_grad():
            trained = lookup_forward(cfg, weights, tokens[None, :, 0], tokens[None, :, 1])[0]
            reloaded = load_bridge(smoke_run, step)(tokens)[:, -1]
        assert (trained - reloaded).abs().max() <= 1e-5 * max(1.0, trained.abs().max().item()), step


def test_the_key_bias_stays_exactly_zero_through_training(runs_root):
    run = workbench.train("kbias", "smoke", {"epochs": 60}, device="cpu", progress=False, root=runs_root)
    for step in run.steps:
        assert torch.equal(run.weights(step)[block_key(0, "attn.k.bias")], torch.zeros(cfg_d_attn(run.config)))


def cfg_d_attn(cfg) -> int:
    return cfg.n_heads * cfg.d_head


def test_flop_counts_are_the_formulas():
    cfg = load_config("fast")
    d, m, p = 64, 256, 59
    assert step_macs(cfg, 1, lookup=False) == 64 * 64 * 7 + 6 * 64 + 64 * 64 + 2 * d * m + d * p
    plain, lookup = step_macs(cfg, 1044, lookup=False), step_macs(cfg, 1044, lookup=True)
    assert 0.5 < lookup / plain < 0.6
    assert step_flops(cfg, 1044, lookup=False) == 6 * plain
