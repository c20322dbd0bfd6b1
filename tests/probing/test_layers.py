"""Deeper models (n_layers >= 2): every block is measured, and the probes say which block holds
which part of the circuit.

Known answers: the engines record every block's activations equal to TransformerLens's own
hooks (bit for bit for the trainer's module); a hand-built clock whose frequencies are split
over two blocks is recovered block by block (each block's key frequencies are exactly its own,
the model's are all of them, the attention of each block is where it was built); an untrained
two-layer model claims no key frequency in any block."""

from __future__ import annotations

import pytest
import torch

import workbench
from tests.constructed import constructed_config, constructed_weights, split_over_layers, write_run
from workbench import figures
from workbench.config import load_config
from workbench.model import FastTransformer, bridge_activations, build_bridge, initial_weights
from workbench.tasks import grid_tokens

FREQS = (3, 7, 10)


def test_every_block_is_recorded_as_transformer_lens_hooks_it():
    """FastTransformer.activations (the engine for deeper models) equals run_with_cache bit for
    bit in every block, not only the last."""
    cfg = load_config("fast", {"p": 11, "n_layers": 3})
    weights = initial_weights(cfg)
    tokens = grid_tokens(cfg.p)
    fast = FastTransformer(cfg, weights).activations(tokens)
    bridge = bridge_activations(build_bridge(cfg, weights), cfg, tokens)
    assert len(fast["earlier"]) == len(bridge["earlier"]) == 2
    for name in ("logits", "neuron_acts", "attention"):
        assert torch.equal(fast[name], bridge[name]), name
    for layer in range(2):
        for name in ("neuron_acts", "attention"):
            assert torch.equal(fast["earlier"][layer][name], bridge["earlier"][layer][name]), (layer, name)
    assert not torch.equal(fast["earlier"][0]["neuron_acts"], fast["neuron_acts"]), "each block its own"


def _split_run(root, name: str, layer_of: dict[int, int]):
    cfg = constructed_config(23, FREQS)
    weights = constructed_weights(cfg, FREQS)
    deep, split = split_over_layers(cfg, weights, FREQS, layer_of)
    return write_run(root, name, deep, split), (cfg, weights)


@pytest.mark.parametrize("engine", ["factored", "bridge"])
def test_constructed_circuit_split_over_two_blocks_is_located(runs_root, engine):
    layer_of = {3: 0, 7: 1, 10: 1}
    run, (cfg1, weights1) = _split_run(runs_root, "split", layer_of)
    report = workbench.probe(run, engine=engine, progress=False)
    kf = report.key_frequencies
    assert kf["by_rule"] == {"neurons": list(FREQS), "embed": list(FREQS), "wl": list(FREQS)}
    assert kf["by_layer"] == [{"neurons": [3], "wl": [3]}, {"neurons": [7, 10], "wl": [7, 10]}]
    assert "layer 0: neurons 3; wl 3" in report.summary() and "layer 1: neurons 7, 10; wl 7, 10" in report.summary()

    f = report.tables["fourier"]
    clusters = f[(f.measure == "cluster_size") & f.frequency.notna() & (f.value > 0)]
    assert {(int(r.layer), int(r.frequency)): r.value for r in clusters.itertuples()} == {
        (0, 3): 36.0, (1, 7): 36.0, (1, 10): 36.0}
    keys = f[f.measure.isin(["key_neurons", "key_wl"])]
    assert sorted(set(zip(keys.layer.astype(int), keys.frequency.astype(int), strict=True))) == [(0, 3), (1, 7), (1, 10)]
    assert f[f.measure == "embed_norm"].layer.isna().all(), "the embedding belongs to no block"
    assert f[f.measure == "logit_explained_key"].value.item() > 0.99

    att = report.tables["attention"].set_index(["layer", "head", "measure"]).value
    assert att[(0, 0, "to_a")] > 0.999 and att[(0, 1, "to_b")] > 0.999  # block 0 copies a and b
    for head in (0, 1):  # block 1's attention is zero-weighted: uniform over a, b, "="
        assert [att[(1, head, m)] for m in ("to_a", "to_b", "to_eq")] == pytest.approx([1 / 3] * 3)

    prog = report.tables["progress"].set_index("measure").value
    assert prog["restricted_acc"] == 1.0, "progress measures read the final logits: the whole circuit"
    one = workbench.evaluate_on_grid(write_run(runs_root, "one", cfg1, weights1), 0)
    two = workbench.evaluate_on_grid(run, 0, engine=engine)
    torch.testing.assert_close(two.logits, one.logits, rtol=1e-4, atol=1e-4)


def test_a_block_without_neurons_claims_no_frequency(runs_root):
    """Every frequency in block 1: block 0 holds only the attention (its MLP is dead) and claims none."""
    run, _ = _split_run(runs_root, "late", {k: 1 for k in FREQS})
    kf = workbench.probe(run, probes=["fourier"], progress=False).key_frequencies
    assert kf["by_layer"] == [{"neurons": [], "wl": []}, {"neurons": list(FREQS), "wl": list(FREQS)}]
    assert kf["key_freqs"] == list(FREQS)


def test_untrained_two_layer_model_has_no_key_frequencies(runs_root):
    run = workbench.train("untrained2", "fast", {"epochs": 1, "n_layers": 2}, device="cpu", progress=False,
                          root=runs_root)
    kf = workbench.probe(run, steps="0", progress=False).key_frequencies
    assert kf["by_rule"] == {"neurons": [], "embed": [], "wl": []}
    assert kf["by_layer"] == [{"neurons": [], "wl": []}] * 2


def test_per_block_figures_have_a_layer_dimension(runs_root):
    run, _ = _split_run(runs_root, "figs", {3: 0, 7: 1, 10: 1})
    report = workbench.probe(run, progress=False)
    t, inp = report.tables, workbench.evaluate_on_grid(run, 0)
    assert [tr.name for tr in figures.cluster_sizes(t["fourier"], 0).data] == ["layer 0", "layer 1"]
    assert len(figures.neuron_fraction_histogram(t["fourier"], 0).data) == 2
    titles = [a.text for a in figures.attention_over_training(t["attention"]).layout.annotations]
    assert "layer 0 head 0" in titles and "layer 1 head 1" in titles
    assert len(figures.attention_grids(inp).data) == 4  # 2 blocks x 2 heads
    assert len(figures.wl_fourier(inp).data) == 2
    grid_titles = [a.text for a in figures.neuron_grids(inp, [3, 7, 10]).layout.annotations]
    assert any(t.startswith("L0 ") and "k = 3" in t for t in grid_titles)
    assert any(t.startswith("L1 ") and "k = 7" in t for t in grid_titles)
    gini = [tr.name for tr in figures.progress_measures(t["progress"], t["weights"], t["fourier"]).data]
    assert "Gini W_L (layer 0)" in gini and "Gini W_L (layer 1)" in gini
    from workbench.report import overview_html

    summary = overview_html(run, report, options_given=False)  # the report says where the circuit lives
    assert "layer 0: neurons 3; wl 3" in summary and "layer 1: neurons 7, 10; wl 7, 10" in summary
