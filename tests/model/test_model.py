"""The training module and the TransformerLens bridge are the same function of the same weights."""

import pytest
import torch
from safetensors.torch import load_file

from workbench.config import load_config
from workbench.model import (
    UNEMBED_BIAS,
    FastTransformer,
    build_bridge,
    initial_shapes,
    initial_weights,
    load_bridge,
    weight_names,
)
from workbench.tasks import make_dataset


def _scaled(weights, factor):
    return {k: v if k == UNEMBED_BIAS else v * factor for k, v in weights.items()}


@pytest.mark.parametrize(
    "overrides",
    [{}, {"act_fn": "gelu"}, {"n_layers": 2}, {"n_heads": 2, "d_head": 24, "d_model": 40, "d_mlp": 96}],
)
def test_fast_forward_matches_the_bridge_on_every_input(overrides):
    cfg = load_config("smoke", overrides)
    weights = _scaled(initial_weights(cfg), 3.0)  # larger than init, so the check has teeth
    tokens = make_dataset(cfg.operation, cfg.p).tokens
    with torch.no_grad():
        bridge_logits = build_bridge(cfg, weights)(tokens)[:, -1]
        fast_logits = FastTransformer(cfg, weights)(tokens)
    assert bridge_logits.shape == fast_logits.shape == (cfg.p**2, cfg.p)
    assert bridge_logits.abs().max() > 1.0
    assert (bridge_logits - fast_logits).abs().max() <= 1e-5


def test_weights_use_bridge_state_dict_names_and_shapes():
    cfg = load_config("smoke")
    bridge = build_bridge(cfg)
    state = bridge.state_dict()
    assert sorted(state) == sorted(weight_names(cfg))
    assert {k: v.shape for k, v in state.items()} == initial_shapes(cfg)
    model = FastTransformer(cfg, initial_weights(cfg))
    for name, tensor in model.bridge_weights().items():
        assert tensor.shape == state[name].shape, name


def test_initial_weights_are_transformerlens_seeded_init():
    a, b = initial_weights(load_config("smoke")), initial_weights(load_config("smoke"))
    c = initial_weights(load_config("smoke", {"model_seed": 1}))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embed.weight"], c["embed.weight"])


def test_bridge_weights_are_copies_not_aliases():
    cfg = load_config("smoke")
    model = FastTransformer(cfg, initial_weights(cfg))
    saved = model.bridge_weights()
    with torch.no_grad():
        model.w("embed.weight").add_(1.0)
    assert not torch.equal(saved["embed.weight"], model.w("embed.weight"))


def test_checkpoint_reloads_into_a_fresh_bridge_with_logit_parity(smoke_run):
    """The acceptance check: every saved step, reloaded through TransformerLens, gives the
    training model's logits on all p^2 inputs to within 1e-5."""
    cfg = smoke_run.config
    tokens = smoke_run.dataset.tokens
    for step in (smoke_run.steps[1], smoke_run.steps[-1]):
        weights = load_file(smoke_run.step_path(step))
        with torch.no_grad():
            trained = FastTransformer(cfg, weights)(tokens)
            reloaded = load_bridge(smoke_run, step)(tokens)[:, -1]
        assert (trained - reloaded).abs().max() <= 1e-5
    logits, cache = load_bridge(smoke_run).run_with_cache(tokens)
    assert cache["blocks.0.mlp.hook_post"].shape == (len(tokens), 3, cfg.d_mlp)
    assert cache["blocks.0.attn.hook_pattern"].shape == (len(tokens), cfg.n_heads, 3, 3)


def test_training_gradients_are_deterministic_at_fast_preset_size():
    """Bit-identical resume needs a deterministic backward; indexing W_E[tokens] was not (its
    CPU scatter-add runs in parallel), F.embedding is."""
    import torch.nn.functional as F

    from workbench.tasks import make_split

    cfg = load_config("fast")
    ds = make_dataset(cfg.operation, cfg.p)
    train = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed).train
    grads = []
    for _ in range(3):
        model = FastTransformer(cfg, initial_weights(cfg))
        F.cross_entropy(model(ds.tokens[train]).double(), ds.labels[train]).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for g in grads[1:]:
        assert all(torch.equal(g[n], grads[0][n]) for n in g)


def test_source_initialisations_are_the_sources_own_draws():
    """init=nanda2023 / tl2 give, bit for bit, the weights the sources' own constructors draw
    (tests/legacy_sources.py re-implements them) after seeding torch with model_seed."""
    from tests.legacy_sources import HookedTransformerConfig, NandaTransformer, TL2Transformer
    from workbench.model import convert_nanda2023_state_dict, convert_tl2_state_dict

    cfg = load_config("smoke", {"init": "nanda2023", "model_seed": 5})
    torch.manual_seed(5)
    theirs = NandaTransformer(cfg.p, cfg.d_model, cfg.n_heads, cfg.d_mlp).state_dict()
    ours = initial_weights(cfg)
    assert all(torch.equal(ours[k], v) for k, v in convert_nanda2023_state_dict(cfg, theirs).items())
    assert float(ours["unembed.weight"].std()) == pytest.approx(1 / (cfg.p + 1) ** 0.5, rel=0.1)

    cfg = load_config("smoke", {"init": "tl2", "model_seed": 7})
    tl2 = HookedTransformerConfig(n_layers=1, d_model=cfg.d_model, n_ctx=3, d_head=cfg.d_head, n_heads=cfg.n_heads,
                                  d_mlp=cfg.d_mlp, act_fn="relu", d_vocab=cfg.p + 1, d_vocab_out=cfg.p,
                                  normalization_type=None, seed=7, initializer_range=0.8 / cfg.d_model ** 0.5)
    theirs = TL2Transformer(tl2).state_dict()
    ours = initial_weights(cfg)
    assert all(torch.equal(ours[k], v) for k, v in convert_tl2_state_dict(cfg, theirs).items())
    # TL 4.x's boot_native draws W_O and W_out at 1/sqrt(2) of TL 2.x's scale
    tl4 = initial_weights(load_config("smoke", {"model_seed": 7}))
    ratio = float(tl4["blocks.0.attn.o.weight"].std() / ours["blocks.0.attn.o.weight"].std())
    assert ratio == pytest.approx(2 ** -0.5, rel=0.1)
