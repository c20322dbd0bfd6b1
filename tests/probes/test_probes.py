"""Probe maths against answers known by construction, then the runner's caching and errors."""

from __future__ import annotations

import math

import pytest
import torch

import workbench
from probes import ProbeSettings, get_probe
from probes.fourier import (
    _fractions_2d,
    diagonal_sums,
    fourier_1d,
    fourier_2d,
    fourier_basis,
    frequency_norms,
    gini,
    key_frequencies_by_norm,
    logit_fit,
    neuron_frequency_fractions,
)
from probes.phases import detect_phases
from tests.constructed import write_constructed_run
from workbench.cli import main
from workbench.probing import evaluate_on_grid


# ------------------------------------------------------------------------------------ analytic
@pytest.mark.parametrize("p", [5, 13, 113, 12])
def test_basis_is_orthonormal(p):
    F = fourier_basis(p)
    assert F.shape == (p, p)
    assert torch.allclose(F @ F.T, torch.eye(p, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("k", [1, 5, 56])
def test_pure_cosine_embedding_puts_all_its_norm_at_k(k):
    p = 113
    x = torch.arange(p, dtype=torch.float64)
    W = torch.cos(2 * math.pi * k * x / p)[:, None] * torch.randn(1, 16, dtype=torch.float64)
    norms = frequency_norms(W)
    assert norms.argmax() == k
    assert norms[k] ** 2 == pytest.approx(float((W**2).sum()), rel=1e-10), "Parseval: all of it at k"
    assert (norms.pow(2).sum() - norms[k] ** 2) < 1e-20


def test_2d_transform_preserves_norm_and_inverts():
    g = torch.randn(13, 13, 4, dtype=torch.float64)
    G = fourier_2d(g)
    assert torch.allclose(G.pow(2).sum((0, 1)), g.pow(2).sum((0, 1)))
    F = fourier_basis(13)
    assert torch.allclose(torch.einsum("xa,xyn,yb->abn", F, G, F), g)
    # along axis 1 alone: coefficient k of row a is sum_b F[k, b] g[a, b]
    assert torch.allclose(fourier_1d(g, 1), torch.einsum("kb,abn->akn", F, g))
    assert not torch.allclose(fourier_1d(g, 1), fourier_1d(g, 0)), "the axis matters"


def test_neuron_of_one_frequency_is_fully_explained_by_it():
    p, k = 31, 6
    a = torch.arange(p, dtype=torch.float64)[:, None]
    b = torch.arange(p, dtype=torch.float64)[None, :]
    w = 2 * math.pi * k / p
    acts = torch.stack([torch.cos(w * (a + b)), torch.cos(w * a) + 2 * torch.sin(w * b), torch.randn(p, p, dtype=torch.float64)], -1)
    fr = neuron_frequency_fractions(acts)
    assert fr[k - 1, 0] == pytest.approx(1.0) and fr[k - 1, 1] == pytest.approx(1.0)
    assert fr[:, 2].max() < 0.3, "random activations spread over every frequency"
    assert fr.shape == (15, 3)


def test_gini_limits():
    assert gini(torch.ones(10)) == pytest.approx(0.0)
    assert gini(torch.tensor([0.0] * 9 + [1.0])) == pytest.approx(0.9)
    assert 0 < gini(torch.rand(100)) < 0.5


@pytest.mark.parametrize("sign", [1, -1])
def test_diagonal_sums_match_a_loop(sign):
    p = 7
    g = torch.randn(p, p, 3, dtype=torch.float64)
    expected = torch.zeros(p, 3, dtype=torch.float64)
    for a in range(p):
        for b in range(p):
            expected[(a + sign * b) % p] += g[a, b]
    assert torch.allclose(diagonal_sums(g, sign), expected, atol=1e-12)


@pytest.mark.parametrize("p", [13, 113])
def test_neuron_fractions_shortcut_equals_the_full_2d_transform(p):
    """The O(p^2) route through row, column and diagonal sums gives the 2-D transform's numbers."""
    torch.manual_seed(p)
    x = torch.arange(p, dtype=torch.float64)
    a, b = x[:, None], x[None, :]
    w = 2 * math.pi * 3 / p
    cols = [torch.cos(w * a) * torch.sin(w * b), torch.cos(w * (a - b)) + 0.3 * torch.cos(w * a), 1.0 + 0 * a * b]
    acts = torch.stack(cols + [torch.randn(p, p, dtype=torch.float64).relu() for _ in range(5)], -1)
    fast, full = neuron_frequency_fractions(acts), _fractions_2d(acts)
    assert torch.allclose(fast, full, atol=1e-10)
    assert fast[2, :2].min() > 1 - 1e-9 and fast[:, 2].abs().max() == 0  # pure k=3; constant neuron -> 0
    acts32 = acts.float()
    assert torch.allclose(neuron_frequency_fractions(acts32), full, atol=1e-5)


@pytest.mark.parametrize("sign", [1, -1])
def test_logit_fit_matches_brute_force_on_the_cube(sign):
    p = 11
    x = torch.arange(p, dtype=torch.float64)
    a, b, c = x[:, None, None], x[None, :, None], x[None, None, :]
    L = 3 * torch.cos(2 * math.pi * 2 * (a + sign * b - c) / p) - torch.cos(2 * math.pi * 5 * (a + sign * b - c) / p)
    L = L + 0.1 * torch.randn(p, p, p, dtype=torch.float64)
    alpha, explained = logit_fit(L, sign)
    Lc = L - L.mean(2, keepdim=True)
    for w in range(1, (p - 1) // 2 + 1):
        basis = torch.cos(2 * math.pi * w * (a + sign * b - c) / p)
        brute = float((Lc * basis).sum() / (basis**2).sum())
        assert alpha[w - 1] == pytest.approx(brute, abs=1e-10)
        assert explained[w - 1] == pytest.approx(brute**2 * float((basis**2).sum() / (Lc**2).sum()), abs=1e-10)
    assert alpha[1] == pytest.approx(3, abs=0.05) and alpha[4] == pytest.approx(-1, abs=0.05)


def test_flat_spectrum_claims_no_key_frequencies():
    torch.manual_seed(0)
    W = torch.randn(113, 128, dtype=torch.float64)
    assert key_frequencies_by_norm(frequency_norms(W), 0.1, 1.5) == []


# --------------------------------------------------------------------------- constructed model
@pytest.fixture
def constructed(runs_root):
    return write_constructed_run(runs_root, "constructed", 31, (3, 7, 11))


def test_constructed_model_probes_find_exactly_its_frequencies(constructed):
    report = workbench.probe(constructed, progress=False)
    assert report.key_frequencies["key_freqs"] == [3, 7, 11]
    assert report.key_frequencies["by_rule"] == {"neurons": [3, 7, 11], "embed": [3, 7, 11], "wl": [3, 7, 11]}
    f = report.tables["fourier"]
    explained = f[f.measure == "logit_explained_key"].value.item()
    assert explained > 0.99
    alpha = f[f.measure == "logit_alpha"].set_index("frequency").value
    assert alpha.loc[[3, 7, 11]].min() > 7.5 and alpha.drop([3, 7, 11]).abs().max() < 0.1

    prog = report.tables["progress"].set_index("measure").value
    full = prog["test_loss"]
    assert prog["restricted_loss"] == pytest.approx(full, rel=0.2), "the key frequencies are the whole model"
    assert prog["excluded_loss"] > 20 * prog["train_loss"], "removing them destroys performance"
    assert prog["restricted_acc"] == 1.0
    assert prog["neuron_excluded_loss"] > 20 * prog["train_loss"]

    att = report.tables["attention"].pivot_table(index="head", columns="measure", values="value")
    assert att.loc[0, "to_a"] > 0.999 and att.loc[1, "to_b"] > 0.999


def test_neuron_excluded_loss_equals_patching_hook_post(constructed):
    """The neuron-level excluded loss computed on tensors is the loss of the real model run with
    TransformerLens's run_with_hooks replacing mlp.hook_post by the ablated activations."""
    from probes.progress import key_directions, project
    from workbench.model import load_bridge
    from workbench.tasks import grid_tokens

    ckpt = evaluate_on_grid(constructed, 0)
    p = ckpt.p
    U = key_directions(p, 1, (3, 7, 11)).float()
    model = load_bridge(constructed, 0)
    tokens = grid_tokens(p)

    def ablate(acts, hook):
        last = acts[:, -1]
        acts[:, -1] = last - project(last.double(), U.double()).float()
        return acts

    patched = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.mlp.hook_post", ablate)])[:, -1]
    train = ckpt.train_mask.flatten()
    labels = ckpt.labels.flatten()
    expected = torch.nn.functional.cross_entropy(patched[train].double(), labels[train]).item()
    measured = get_probe("progress").fn(ckpt, (3, 7, 11), ProbeSettings()).set_index("measure").value
    assert measured["neuron_excluded_loss"] == pytest.approx(expected, rel=1e-4)


def test_factored_engine_matches_the_bridge_hook_values(smoke_run):
    """The runner's default engine (the factored forward) gives TransformerBridge.run_with_cache's
    values to float32 rounding; the probes read the same numbers either way."""
    step = smoke_run.steps[-1]
    fast = evaluate_on_grid(smoke_run, step, engine="factored")
    bridge = evaluate_on_grid(smoke_run, step, engine="bridge")
    for name in ("logits", "neuron_acts", "attention"):
        ref = getattr(bridge, name)
        err = (getattr(fast, name) - ref).abs().max().item()
        assert err <= 1e-5 * max(1.0, ref.abs().max().item()), (name, err)
    for name in ("fourier", "progress", "attention"):
        a = get_probe(name).fn(fast, (1, 2), ProbeSettings()).value.to_numpy()
        b = get_probe(name).fn(bridge, (1, 2), ProbeSettings()).value.to_numpy()
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6), name


def test_fast_transformer_activations_are_bit_identical_to_the_bridge(smoke_run):
    """The training module's activations (the engine for deeper models) equal run_with_cache bit for bit."""
    from workbench.model import FastTransformer, bridge_activations, build_bridge

    cfg = smoke_run.config
    weights = smoke_run.weights(smoke_run.steps[-1])
    tokens = smoke_run.dataset.tokens
    fast = FastTransformer(cfg, weights).activations(tokens)
    bridge = bridge_activations(build_bridge(cfg, weights), cfg, tokens)
    for name in ("logits", "neuron_acts", "attention"):
        assert torch.equal(fast[name], bridge[name]), name


# ---------------------------------------------------------------------------------------- null
def test_random_model_has_no_key_frequencies(runs_root):
    run = workbench.train("untrained", "fast", {"epochs": 1}, device="cpu", progress=False, root=runs_root)
    report = workbench.probe(run, steps="0", progress=False)
    assert report.key_frequencies["by_rule"] == {"neurons": [], "embed": [], "wl": []}
    assert report.phases.steps["grokked"] is None and report.phases.steps["circuit_formation"] is None






# -------------------------------------------------------------------------------------- runner
def test_rerun_is_cached_and_new_checkpoints_alone_are_computed(runs_root):
    run = workbench.train("cache", "smoke", {"epochs": 50, "ckpt_every": 10}, device="cpu", progress=False, root=runs_root)
    first = workbench.probe(run, progress=False)
    assert first.computed == {"fourier": 6, "progress": 6, "weights": 6, "attention": 6, "clock_pizza": 6,
                              "complexity": 6, "effective": 6}
    assert set(first.tables) == set(first.computed), "the opt-in llc probe was not measured and has no table"
    tables = {n: (run.path / "probes" / f"{n}.csv").read_bytes() for n in first.tables}
    again = workbench.probe(run, progress=False)
    assert again.computed == dict.fromkeys(first.computed, 0)
    assert {n: (run.path / "probes" / f"{n}.csv").read_bytes() for n in first.tables} == tables
    # a run that gains a checkpoint: only it is measured (key frequencies are from the final step;
    # here they stay empty, so the other tables stay valid)
    from workbench import store

    store.append_metrics(run.path, {**run.metrics_rows[-1], "step": 55})  # training logs each checkpoint's step first
    store.write_checkpoint(run, 55, run.weights(50))
    more = workbench.probe(run, probes=["weights"], progress=False)
    assert more.computed == {"weights": 1}
    assert sorted(more.tables["weights"].step.unique()) == [0, 10, 20, 30, 40, 50, 55]
    # another engine is another measurement: activation probes recompute, weights stay cached
    bridge = workbench.probe(run, engine="bridge", progress=False)
    assert bridge.computed == {"fourier": 7, "progress": 7, "weights": 0, "attention": 7, "clock_pizza": 7,
                               "complexity": 7, "effective": 7}


def test_corrupt_checkpoint_is_named_and_the_rest_still_run(runs_root, capsys):
    run = workbench.train("corrupt", "smoke", {"epochs": 30, "ckpt_every": 10}, device="cpu", progress=False, root=runs_root)
    path = run.step_path(10)
    path.write_bytes(path.read_bytes()[:100])
    assert main(["probe", "corrupt", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "SKIPPED step 10" in out and "step_0000010.safetensors" in out
    table = run.probe_table("weights")
    assert sorted(table.step.unique()) == [0, 20, 30]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["probe", "nope"], "no run at"),
        (["probe", "cli", "--probes", "fourier,bogus"], "unknown probe 'bogus'; valid probes: fourier, progress"),
        (["probe", "cli", "neuron_threshold=2"], "neuron_threshold must lie in [0, 1]"),
        (["probe", "cli", "key_rule=magic"], "unknown key_rule 'magic'"),
        (["probe", "cli", "thresh=1"], "unknown probe setting 'thresh'"),
        (["probe", "cli", "--steps", "7"], "no checkpoint at step(s) 7"),
    ],
)
def test_probe_bad_input_is_one_line_exit_2(runs_root, capsys, argv, message):
    workbench.train("cli", "smoke", {"epochs": 10}, device="cpu", progress=False, root=runs_root)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (runs_root / "cli" / "probes" / "fourier.csv").exists()


def test_two_probe_processes_leave_whole_tables(runs_root):
    import os
    import subprocess
    import sys
    from pathlib import Path

    workbench.train("twice", "smoke", {"epochs": 40, "ckpt_every": 5}, device="cpu", progress=False, root=runs_root)
    env = {**os.environ, "WORKBENCH_CHECKPOINTS": str(runs_root)}
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-m", "workbench", "probe", "twice", "--no-progress"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    run = workbench.open_run("twice", runs_root)
    for name in ("fourier", "progress", "weights", "attention"):
        table = run.probe_table(name)
        assert sorted(table.step.unique()) == run.steps and table.value.notna().all()


def test_phases_need_memorisation_first():
    import pandas as pd

    metrics = pd.DataFrame({"step": [0, 10], "train_acc": [0.1, 0.5], "test_acc": [0.1, 0.1], "test_loss": [4.0, 4.0]})
    assert set(detect_phases(metrics).steps.values()) == {None}
