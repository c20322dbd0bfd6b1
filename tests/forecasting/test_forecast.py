"""The forecaster: its estimators against known answers, planted runs, the information barrier, hostile input."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import cli, store
from workbench.config import load_config
from workbench.errors import UsageError
from workbench.forecasting import (
    SHIPPED_CALIBRATION,
    Calibration,
    auroc,
    check_calibration,
    evidence,
    fit_calibration,
    forecast,
    implied_delays,
    training_view,
)
from workbench.forecasting.calibration import (
    COMPREHENSION_FEATURES,
    DELAY_FEATURES,
    GENERALISE_FEATURES,
    GENERALISED_FEATURES,
    STAGES,
)
from workbench.forecasting.estimators import (
    early_loss_energy,
    fourier_gini,
    logit_scale,
    norm_law_delay,
    norm_law_remaining,
    restricted_losses,
    slingshots,
    time_to_reach,
    trend,
)
from workbench.forecasting.regression import Linear, fit_logistic, fit_ridge
from workbench.forecasting.signals import SignalCache, group_grid
from workbench.model import EMBED, initial_weights
from workbench.training import StopRule, start_run


# ----------------------------------------------------------------------------- estimators
def test_fourier_gini_is_maximal_for_one_frequency_and_low_for_noise():
    p, d = 23, 16
    a = torch.arange(p, dtype=torch.float64)
    one = torch.cos(2 * math.pi * 5 * a / p)[:, None] * torch.randn(d, dtype=torch.float64)[None]
    K = (p - 1) // 2
    assert fourier_gini(torch.cat([one, torch.zeros(1, d)]), "add", p) == pytest.approx((K - 1) / K)
    noise = torch.randn(p + 1, 64, generator=torch.Generator().manual_seed(0))
    assert fourier_gini(noise, "add", p) < 0.3


def test_fourier_gini_reads_multiplication_in_discrete_log_coordinates():
    from probes.coordinates import discrete_logs, primitive_root

    p, d = 23, 8
    logs = discrete_logs(p, primitive_root(p)).double()  # log of each residue (0 has none: -1)
    rows = torch.cos(2 * math.pi * 3 * logs / (p - 1))[:, None] * torch.ones(d, dtype=torch.float64)
    embed = torch.cat([rows, torch.zeros(1, d)])
    K = (p - 1) // 2  # frequencies 1..11 of Z_22, the Nyquist 11 included
    assert fourier_gini(embed, "mul", p) == pytest.approx((K - 1) / K)
    assert fourier_gini(embed, "add", p) < (K - 1) / K - 0.2  # not sparse in the additive coordinates


def test_the_other_estimators_on_known_answers():
    assert early_loss_energy([0, 100, 200, 400], [2.0, 2.0, 2.0, 9.0], upto=200) == pytest.approx(4.0 * 200)
    slope, se = trend([0, 10, 20, 30, 40], [1, 3, 5, 7, 9], window=100)
    assert slope == pytest.approx(0.2) and se == pytest.approx(0.0, abs=1e-12)
    assert trend([0, 10, 20, 30, 40], [9, 0, 5, 10, 15], window=25)[0] == pytest.approx(0.5)  # the last 25 steps only
    assert math.isnan(trend([0, 10], [0, 1], window=100)[0])
    assert time_to_reach(0.2, 0.001, 0.5, at_step=100) == pytest.approx(400)
    assert time_to_reach(0.2, -0.001, 0.5, at_step=100) == math.inf
    assert norm_law_delay(math.e**2 * 10, 10, lr=1e-3, weight_decay=1.0, kappa=0.25) == pytest.approx(2 / (2 * 0.25 * 1e-3))
    assert norm_law_delay(5, 10, 1e-3, 1.0) == 0.0 and norm_law_delay(50, 10, 1e-3, 0.0) == math.inf
    assert norm_law_remaining(math.log(100), math.log(10), rate=0.01) == pytest.approx(math.log(10) / 0.01)
    assert norm_law_remaining(1.0, 2.0, 0.01) == 0.0 and norm_law_remaining(3.0, 2.0, -0.01) == math.inf
    logits = torch.tensor([[1.0, -1.0], [3.0, 1.0]])  # centred: +-1 in both rows
    assert logit_scale(logits) == pytest.approx(1.0)
    assert auroc([0.9, 0.2, 0.5], [True, False, True]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    acc = [0.1, 1.0, 1.0, 0.5, 1.0, 0.7, 0.6, 1.0]  # fitted at step 10; falls below 90% twice after it
    assert slingshots(range(0, 80, 10), acc, fit_step=10) == 2 and slingshots(range(0, 80, 10), acc, None) == 0


def _fourier_logits(p: int, keys: dict[int, float], sign: int = 1) -> torch.Tensor:
    """The Fourier circuit's logits exactly: z(a, b, c) = Σ_k A_k cos(w_k (a + sign b − c))."""
    a = torch.arange(p, dtype=torch.float64)
    grid = a[:, None, None] + sign * a[None, :, None] - a[None, None, :]
    return sum(A * torch.cos(2 * math.pi * k * grid / p) for k, A in keys.items())


def test_restricted_and_excluded_loss_of_a_pure_circuit_and_of_a_lookup_table():
    p = 23
    L = _fourier_logits(p, {3: 6.0, 7: 4.0})  # a planted circuit with keys 3 and 7
    train = torch.randperm(p * p, generator=torch.Generator().manual_seed(0))[:200]
    a, b = train // p, train % p
    labels = (a + b) % p
    full = float(torch.nn.functional.cross_entropy(L.reshape(p * p, p)[train], labels))
    restricted, excluded, ratio = restricted_losses(L, train, labels, 1, (3, 7))
    assert restricted == pytest.approx(full, rel=1e-9)  # the circuit is all there is
    assert excluded == pytest.approx(math.log(p), rel=1e-9) and ratio == pytest.approx(0.0, abs=1e-20)
    lookup = torch.zeros(p, p, p, dtype=torch.float64)  # a lookup table: +10 on each training answer only
    lookup.reshape(p * p, p)[train, labels] = 10.0
    r2, e2, ratio2 = restricted_losses(lookup, train, labels, 1, (3, 7))
    assert e2 < r2 and ratio2 > 5  # the table lives outside the key directions
    assert restricted_losses(L, train, labels, 1, ())[2] == math.inf  # no key frequency: no circuit to compare with


def test_the_group_grid_of_multiplication_is_addition_of_discrete_logs():
    from probes.coordinates import primitive_root

    p = 11
    grid = group_grid("mul", p)
    g = primitive_root(p)
    assert grid.n == p - 1 and grid.sign == 1 and grid.position[0] == -1
    i, j = 3, 5  # tokens g^3 and g^5: their product is g^8, at class position 8
    row = grid.tokens[i * grid.n + j]
    assert row[0] == pow(g, 3, p) and row[1] == pow(g, 5, p) and grid.classes[8] == pow(g, 8, p)
    assert group_grid("x2+y2", p) is None


def test_ridge_and_logistic_fits_on_known_answers():
    rng = np.random.default_rng(0)
    X = np.c_[np.ones(200), rng.normal(size=(200, 2))]
    y = X @ np.array([1.0, 2.0, -3.0])
    model = fit_ridge(X, y, np.ones(200), ["1", "a", "b"], alpha=0.0)
    assert model.predict(X) == pytest.approx(y, abs=1e-8)
    labels = (X[:, 1] > 0).astype(float)
    clf = fit_logistic(X, labels, np.ones(200), ["1", "a", "b"], alpha=1e-3)
    assert auroc(clf.probability(X), labels.astype(bool)) == 1.0
    assert Linear.from_dict(clf.to_dict()).probability(X) == pytest.approx(clf.probability(X))


# ----------------------------------------------------------------------------- planted runs
FIT = 20


def _planted_run(root, gini_at, name="planted", grok=None, last=600, norm_at=None, **overrides) -> store.Run:
    """A run whose embedding's Fourier Gini follows ``gini_at(step)`` at checkpoints every 50 steps to
    ``last`` and whose metrics log V = ``norm_at(step)`` every 10 steps, fitted from step FIT; test
    accuracy 1 from ``grok`` on, else chance."""
    cfg = load_config("smoke", {"epochs": 1000, **overrides})
    run = start_run(root / name, cfg)
    base = initial_weights(cfg)
    p, d = cfg.p, cfg.d_model
    a = torch.arange(p, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * 4 * a / p)[:, None] * torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(p, d, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) / math.sqrt(p)
    wave = wave / wave.norm() * noise.norm()

    def embed(mix: float) -> torch.Tensor:
        rows = mix * wave + (1 - mix) * noise
        return torch.cat([rows, base[EMBED][p:].double()]).float()

    for step in range(0, last + 1, 50):
        lo, hi = 0.0, 1.0  # bisection on the mix for the planted Gini
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if fourier_gini(embed(mid), "add", p) < gini_at(step) else (lo, mid)
        store.write_checkpoint(run, step, {**base, EMBED: embed((lo + hi) / 2)})
    for step in range(0, last + 1, 10):
        grokked = grok is not None and step >= grok
        store.append_metrics(run.path, {"step": step, "train_loss": 1e-3 if step >= FIT else 3.0,
                                        "train_acc": 1.0 if step >= FIT else 0.1, "test_loss": 0.01 if grokked else 4.0,
                                        "test_acc": 1.0 if grokked else 0.05,
                                        "weight_norm": norm_at(step) if norm_at else 500.0, "lr": cfg.lr, "wall_s": 0.0})
    (run.path / "state.safetensors").unlink(missing_ok=True)  # start_run's step-0 state would be 12 checkpoints behind
    return run


def _only(estimator: str) -> Linear:
    """A delay model that is one estimator alone: log Δ = log Δ_estimator."""
    coef = np.zeros(len(DELAY_FEATURES))
    coef[DELAY_FEATURES.index(f"log_{estimator}")] = 1.0
    return Linear(DELAY_FEATURES, coef, np.zeros(len(coef)), np.ones(len(coef)))


def _constant(names, log_odds: float) -> Linear:
    """A logistic model that says the same whatever its inputs."""
    coef = np.zeros(len(names))
    coef[0] = log_odds
    return Linear(tuple(names), coef, np.zeros(len(names)), np.ones(len(names)))


def _trusting(estimator: str, **constants) -> Calibration:
    """A calibration whose delay is one estimator alone, with near-zero residuals, that expects every
    run to generalise by grokking (not comprehension) and none to have generalised yet."""
    return Calibration(delay_model=_only(estimator),
                       delay_residuals=tuple(tuple(np.linspace(-1e-3, 1e-3, 11)) for _ in STAGES),
                       generalise_model=_constant(GENERALISE_FEATURES, 10.0),
                       comprehension_model=_constant(COMPREHENSION_FEATURES, -10.0),
                       generalised_model=_constant(GENERALISED_FEATURES, -10.0), **constants)


def test_a_run_whose_norm_decays_at_a_planted_rate_to_a_planted_norm_is_forecast_to_its_planted_step(runs_root):
    """The weight-norm law with the run's own rate: V falls as V_fit e^{-r (t - t_fit)} and generalises at
    V★ = V₀ e^{c}; the norm estimator alone must give the planted step within 2%."""
    v0, v_fit, r, grok = 400.0, 1200.0, 0.002, 900
    log_v_star = math.log(v_fit) - r * (grok - FIT)  # V reaches V★ exactly at the planted grok step
    run = _planted_run(runs_root, lambda s: 0.3, grok=None, last=600,
                       norm_at=lambda s: v0 if s < FIT else v_fit * math.exp(-r * (s - FIT)))
    cal = _trusting("norm", v_star_coef=np.array([log_v_star - math.log(v0), 0, 0, 0, 0, 0, 0, 0.0]))
    for at in (300, 600):
        view = training_view(run, at)
        delays = implied_delays(evidence(view, SignalCache().table(view)), cal)
        assert FIT + delays["norm"] == pytest.approx(grok, rel=0.02)
        f = forecast(run, at, calibration=cal)
        assert f.regime == "grokking" and f.grok_step == pytest.approx(grok, rel=0.02), f.text()
        assert f.interval[0] <= grok <= f.interval[1] and f.carried_by["norm"] == 1.0 and set(f.carried_by) == {"norm", "prior", "gini",
                                                                        "restricted", "cleanup"}


def test_a_run_whose_gini_follows_a_planted_law_is_forecast_to_its_planted_step_by_the_gini_clock(runs_root):
    g0, planted = 0.3, 800
    run = _planted_run(runs_root, lambda s: g0 + (0.7 - g0) * s / planted)  # reaches g* = 0.7 at step 800
    cal = _trusting("gini", gini_star=0.7)
    f = forecast(run, 600, calibration=cal)
    assert f.grok_step == pytest.approx(planted, rel=0.02) and f.state == "memorised_progressing"


def test_fitting_recovers_a_planted_prior_law_and_the_gini_at_grokking(runs_root):
    a, b, c = math.log(8.0), -1.0, -0.5  # delay = e^a lr^b wd^c: 800, 400, 400 and 200 steps, on the evaluation grid
    runs = []
    for i, (lr, wd) in enumerate([(1e-2, 1.0), (2e-2, 1.0), (1e-2, 4.0), (2e-2, 4.0)]):
        grok = FIT + round(math.exp(a) * lr**b * wd**c)
        runs.append(_planted_run(runs_root, lambda s, g=grok: 0.2 + 0.5 * s / g, f"law{i}", grok=grok, last=grok + 100,
                                 lr=lr, weight_decay=wd))
    cal = fit_calibration(runs, {"sweeps": ["planted"]})
    assert cal.gini_star == pytest.approx(0.7, abs=0.01)
    assert cal.prior_coef[:3] == pytest.approx((a, b, c), abs=0.1)  # the other config features are not varied
    assert cal.fitted_on["runs"] == 4 and cal.fitted_on["grokking"] == 4 and cal.fitted_on["families"] == ["add-23"]


def test_fitting_refuses_runs_of_which_too_few_grok(smoke_run):
    with pytest.raises(UsageError, match="at least three runs that fit and then grok"):
        fit_calibration([smoke_run])


# ----------------------------------------------------------------------------- the information barrier
def test_the_forecast_at_s_ignores_everything_after_s_and_every_test_number(smoke_run, tmp_path):
    at = 150
    full = tmp_path / "full"
    shutil.copytree(smoke_run.path, full)
    llc = pd.DataFrame({"step": [100, 150, 200, 300], "measure": "llc", "value": [30.0, 25.0, 1.0, 0.5]})
    (full / store.PROBES_DIR).mkdir(exist_ok=True)
    store.write_table(store.probe_table_path(full, "llc"), llc)
    before = forecast(store.Run(full), at).to_dict()
    assert any(s["name"] == "llc" for s in before["signals"])

    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    run = store.Run(cut)
    for step in run.steps:
        if step > at:
            run.step_path(step).unlink()
    (cut / "state.safetensors").unlink()  # the state at the run's end is not the cut run's
    rng = np.random.default_rng(0)
    rows = [{**r, "test_loss": float(rng.uniform(0, 30)), "test_acc": float(rng.uniform())}
            for r in run.metrics_rows if r["step"] <= at]
    store.rewrite_metrics(cut, rows)
    store.write_table(store.probe_table_path(cut, "llc"), llc[llc.step <= at])
    for path in (cut / store.PROBES_DIR).glob("*.csv"):  # the probe tables and the forecast's own cache
        if path.name != "llc.csv":
            path.unlink()
    after = forecast(store.Run(cut), at).to_dict()
    assert before.pop("run") == "full" and after.pop("run") == "cut"
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_the_restricted_losses_read_no_test_label(smoke_run, monkeypatch):
    """Scrambling every label outside the training split changes no signal."""
    view = training_view(smoke_run, 200)
    before = SignalCache().table(view)
    ds = smoke_run.dataset
    scrambled = ds.labels.clone()
    test = smoke_run.split.test
    scrambled[test] = scrambled[test][torch.randperm(len(test), generator=torch.Generator().manual_seed(3))]
    monkeypatch.setattr(type(smoke_run), "dataset", property(lambda self: type(ds)(ds.operation, ds.p, ds.tokens, scrambled)))
    after = SignalCache().table(training_view(smoke_run, 200))
    pd.testing.assert_frame_equal(before, after)


def test_the_view_holds_no_test_column_and_refuses_later_checkpoints(smoke_run):
    view = training_view(smoke_run, 100)
    assert list(view.metrics.columns) == ["step", "train_loss", "train_acc", "weight_norm", "lr"]
    assert view.metrics.step.max() <= 100 and max(view.steps) <= 100
    with pytest.raises(UsageError, match="not a checkpoint at or before 100"):
        view.weights(smoke_run.steps[-1])


# ----------------------------------------------------------------------------- what a reader sees
def test_forecast_prints_one_json_object_and_a_text_that_says_the_horizon_and_the_level(smoke_run, capsys, monkeypatch):
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    assert cli.main(["forecast", "smoke", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"at_step", "regime", "state", "stage", "horizon", "level", "p_generalise", "grok_step", "interval",
            "carried_by", "signals"} <= set(out)
    assert out["at_step"] == smoke_run.steps[-1] and out["level"] == 0.8 and out["horizon"] == smoke_run.config.epochs
    assert cli.main(["forecast", str(smoke_run.path), "--at", "100"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("smoke at step 100: regime ") and "the horizon" in text and len(text.splitlines()) < 20
    html = forecast(smoke_run, 100)._repr_html_()
    assert "<table>" in html and "regime" in html and "horizon" in html


def test_a_later_horizon_is_a_later_deadline(smoke_run):
    short, long = forecast(smoke_run, 150, horizon=200), forecast(smoke_run, 150, horizon=100_000)
    assert short.horizon == 200 and long.horizon == 100_000 and long.p_generalise >= short.p_generalise


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["forecast", "no-such-run"], "no run at"),
    (["forecast", "smoke", "--at", "100000"], "outside run 'smoke'"),
    (["forecast", "smoke", "--at", "-5"], "outside run 'smoke'"),
    (["forecast", "smoke", "--horizon", "0"], "does not lie beyond the forecast's step"),
    (["forecast", "smoke", "--at", "150", "--horizon", "100"], "does not lie beyond the forecast's step 150"),
    (["forecast", "smoke", "--calibration", "/nonexistent.json"], "does not exist"),
    (["forecast", "smoke", "--calibration", "/dev/zero"], "not a regular file"),
    (["forecast", "smoke", "--calibration", "/"], "is a folder"),
    (["forecast-eval", "--sweeps", "no-such-sweep"], "no-such-sweep"),
    (["sweep", "smoke-sweep", "--stop-hopeless", "1.5"], "strictly between 0 and 1"),
    (["sweep", "smoke-sweep", "--stop-hopeless", "0"], "strictly between 0 and 1"),
    (["sweep", "smoke-sweep", "--stop-hopeless", "nan"], "strictly between 0 and 1"),
    (["sweep", "smoke-sweep", "--stop-hopeless", "--patience", "0"], "--patience takes a whole number"),
    (["sweep", "smoke-sweep", "--stop-hopeless", "--extend"], "contradict each other"),
])
def test_bad_input_is_one_line_and_exit_2(smoke_run, capsys, monkeypatch, argv, message):
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    before = sorted(p.name for p in smoke_run.path.parent.iterdir())
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in smoke_run.path.parent.iterdir()) == before  # nothing written


def _shipped_values() -> dict:
    return json.loads(SHIPPED_CALIBRATION.read_text()) if SHIPPED_CALIBRATION.is_file() else Calibration().to_dict()


@pytest.mark.parametrize("change, message", [
    ({"gini_star": float("nan")}, "gini_star must lie in"),
    ({"gini_star": "high"}, "gini_star must be a number"),
    ({"gini_star": True}, "gini_star must be a number"),
    ({"log_ratio_star": 1e300}, "log_ratio_star must lie in"),
    ({"prior_coef": [1.0, 2.0]}, "prior_coef must hold 8 numbers"),
    ({"prior_coef": [1e300] * 8}, "prior_coef[0] must lie in"),
    ({"unknown": 1}, "unknown unknown"),
    ({"fitted_on": "DEEP"}, "nested too deeply"),
    ({"fitted_on": "SHALLOW"}, "nested more than 8 levels"),
    ({"delay_residuals": [[1e9]] * 4}, "delay_residuals[0][0] must lie in"),
    ({"generalise_model": {"names": ["1"], "coef": [0], "centre": [0], "scale": [1]}}, "generalise_model.names must be"),
])
def test_a_hostile_calibration_is_one_line_before_any_arithmetic(smoke_run, tmp_path, capsys, monkeypatch, change, message):
    values = {**_shipped_values(), **change}
    bad = tmp_path / "cal.json"
    text = json.dumps(values)  # NaN is written as the bare word NaN
    bad.write_text(text.replace('"DEEP"', "[" * 100_000 + "]" * 100_000).replace('"SHALLOW"', "[" * 20 + "]" * 20))
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    assert cli.main(["forecast", "smoke", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_calibration_missing_a_key_or_holding_a_fifo_is_refused(tmp_path):
    values = _shipped_values()
    del values["fit_loss"]
    with pytest.raises(UsageError, match="missing fit_loss"):
        check_calibration(values)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert cli.main(["forecast", "x", "--calibration", str(fifo)]) == 2  # refused, not read (a read would block)


def test_the_stop_rule_refuses_what_is_not_a_probability():
    for bad in (0.0, 1.0, -0.1, float("inf"), "0.5", True):
        with pytest.raises(UsageError, match="strictly between 0 and 1"):
            StopRule(bad)
    with pytest.raises(UsageError, match="--patience"):
        StopRule(0.05, 0)


@pytest.mark.parametrize("metrics", ["garbage{\n", ""])
def test_a_run_with_damaged_or_empty_metrics_is_one_line(smoke_run, tmp_path, capsys, metrics):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_run.path, copy)
    (copy / store.METRICS).write_text(metrics)
    assert cli.main(["forecast", str(copy)]) == 2
    err = capsys.readouterr().err
    says = "is damaged at line 1" if metrics else "is empty but the run has checkpoints"
    assert f"{store.METRICS} {says}" in err and len(err.strip().splitlines()) == 1


def test_a_run_with_one_checkpoint_is_refused(runs_root, capsys, monkeypatch):
    cfg = load_config("smoke", {"ckpt_every": 0})
    run = start_run(runs_root / "one", cfg)
    store.write_checkpoint(run, 0, initial_weights(cfg))
    assert cli.main(["forecast", "one"]) == 2
    assert "at least two" in capsys.readouterr().err
