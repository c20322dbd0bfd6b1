"""The forecaster: its estimators against known answers, a planted run, the information barrier, bad input."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from workbench import cli, store
from workbench.config import load_config
from workbench.errors import UsageError
from workbench.forecasting import SHIPPED_CALIBRATION, Calibration, auroc, fit_calibration, forecast, training_view
from workbench.forecasting.estimators import (
    early_loss_energy,
    fourier_gini,
    logit_scale,
    norm_law_delay,
    time_to_reach,
    trend,
)
from workbench.model import EMBED, initial_weights
from workbench.training import start_run


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
    logits = torch.tensor([[1.0, -1.0], [3.0, 1.0]])  # centred: +-1 in both rows
    assert logit_scale(logits) == pytest.approx(1.0)
    assert auroc([0.9, 0.2, 0.5], [True, False, True]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5


# ----------------------------------------------------------------------------- a planted run
PLANTED = 800
FIT = 20


def _planted_run(root, gini_at, name="planted", grok=None, last=600, **overrides) -> store.Run:
    """A run whose embedding's Fourier Gini follows ``gini_at(step)`` exactly at checkpoints every 50
    steps to ``last``, fitted (train accuracy 1) from step FIT; test accuracy 1 from ``grok`` on, else chance."""
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
        # metrics: fitted from FIT on
    for step in range(0, last + 1, 10):
        grokked = grok is not None and step >= grok
        store.append_metrics(run.path, {"step": step, "train_loss": 1e-3 if step >= FIT else 3.0,
                                        "train_acc": 1.0 if step >= FIT else 0.1, "test_loss": 0.01 if grokked else 4.0,
                                        "test_acc": 1.0 if grokked else 0.05,
                                        "weight_norm": 500.0, "lr": cfg.lr, "wall_s": 0.0})
    return run


TRUST_TREND = Calibration(gini_star=0.7, prior_coef=(math.log(10), 0.0, 0.0, 0.0, 0.0), sigma_prior=0.5, sigma_trend=0.02,
                          stall_slope=1e-5, fit_loss=0.05, trend_target=0.7, trend_scale=1.0)


def test_a_run_whose_progress_follows_a_planted_law_is_forecast_to_its_planted_step(runs_root):
    g0, rate = 0.3, (0.7 - 0.3) / PLANTED  # reaches g* = 0.7 at step PLANTED
    run = _planted_run(runs_root, lambda s: g0 + rate * s)
    f = forecast(run, 600, calibration=TRUST_TREND)
    assert f.state == "memorised_progressing" and f.fit_step == FIT
    assert f.grok_step == pytest.approx(PLANTED, rel=0.01)
    lo, hi = f.interval
    assert lo < PLANTED < hi and f.p_generalise > 0.99
    assert forecast(run, 600, horizon=700, calibration=TRUST_TREND).p_generalise < 0.01  # the horizon counts


def test_a_stalled_run_gets_no_grok_step_and_a_low_probability(runs_root):
    run = _planted_run(runs_root, lambda s: 0.35 + 0.002 * ((s // 50) % 2))  # flat, with a wobble
    f = forecast(run, 600, calibration=TRUST_TREND)
    assert f.state == "memorised_stalled" and f.grok_step is None and f.interval is None
    assert f.p_generalise < 0.1
    assert "no generalisation expected" in f.short()


def test_fitting_recovers_a_planted_prior_law_and_the_gini_at_grokking(runs_root):
    a, b, c = math.log(2.0), -1.0, -0.5  # delay = e^a lr^b wd^c: 200, 100, 100 and 50 steps, on the evaluation grid
    runs = []
    for i, (lr, wd) in enumerate([(1e-2, 1.0), (2e-2, 1.0), (1e-2, 4.0), (2e-2, 4.0)]):
        grok = FIT + round(math.exp(a) * lr**b * wd**c)
        runs.append(_planted_run(runs_root, lambda s, g=grok: 0.2 + 0.5 * s / g, f"law{i}", grok=grok, last=grok + 100,
                                 lr=lr, weight_decay=wd))
    cal = fit_calibration(runs, {"sweeps": ["planted"]})
    assert cal.gini_star == pytest.approx(0.7, abs=0.01)
    assert cal.prior_coef == pytest.approx((a, b, c, 0.0, 0.0), abs=0.05)  # frac_train and p are not varied
    assert cal.fitted_on == {"sweeps": ["planted"], "runs": 4, "grokking": 4, "not_varied": ["frac_train", "p"]}


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
    rng = np.random.default_rng(0)
    rows = [{**r, "test_loss": float(rng.uniform(0, 30)), "test_acc": float(rng.uniform())}
            for r in run.metrics_rows if r["step"] <= at]
    store.rewrite_metrics(cut, rows)
    store.write_table(store.probe_table_path(cut, "llc"), llc[llc.step <= at])
    for name in ("fourier.csv", "progress.csv"):
        path = cut / store.PROBES_DIR / name
        if path.exists():
            path.unlink()
    after = forecast(store.Run(cut), at).to_dict()
    assert before.pop("run") == "full" and after.pop("run") == "cut"
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_the_view_holds_no_test_column_and_refuses_later_checkpoints(smoke_run):
    view = training_view(smoke_run, 100)
    assert list(view.metrics.columns) == ["step", "train_loss", "train_acc", "weight_norm", "lr"]
    assert view.metrics.step.max() <= 100 and max(view.steps) <= 100
    with pytest.raises(UsageError, match="not a checkpoint at or before 100"):
        view.weights(smoke_run.steps[-1])


# ----------------------------------------------------------------------------- the command line
def test_forecast_prints_one_json_object(smoke_run, capsys, monkeypatch):
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    assert cli.main(["forecast", "smoke", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"at_step", "state", "p_generalise", "grok_step", "interval", "signals"} <= set(out)
    assert out["at_step"] == smoke_run.steps[-1] and out["state"] in ("memorised_stalled", "memorised_progressing")
    assert cli.main(["forecast", str(smoke_run.path), "--at", "100"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("smoke at step 100") and "p_generalise" in text and len(text.splitlines()) < 12


@pytest.mark.parametrize("argv, message", [
    (["forecast", "no-such-run"], "no run at"),
    (["forecast", "smoke", "--at", "100000"], "outside run 'smoke'"),
    (["forecast", "smoke", "--at", "-5"], "outside run 'smoke'"),
    (["forecast", "smoke", "--horizon", "0"], "--horizon must be a positive"),
    (["forecast", "smoke", "--calibration", "/nonexistent.json"], "unreadable"),
    (["forecast-eval", "--sweeps", "no-such-sweep"], "no-such-sweep"),
])
def test_bad_input_is_one_line_and_exit_2(smoke_run, capsys, monkeypatch, argv, message):
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("change", [{"gini_star": float("nan")}, {"sigma_prior": -1.0}, {"prior_coef": [1.0, 2.0]},
                                    {"gini_star": "high"}, {"unknown": 1}])
def test_a_damaged_calibration_is_one_line(smoke_run, tmp_path, capsys, monkeypatch, change):
    values = json.loads(SHIPPED_CALIBRATION.read_text())
    bad = tmp_path / "cal.json"
    bad.write_text(json.dumps({**values, **change}))  # NaN is written as the bare word NaN
    monkeypatch.setenv(store.layout.ROOT_VARIABLE, str(smoke_run.path.parent))
    assert cli.main(["forecast", "smoke", "--calibration", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is unreadable" in err and len(err.strip().splitlines()) == 1


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
