"""The forecaster end to end: the null controls, the commands at a small size, where forecasts show."""

from __future__ import annotations

import pandas as pd
import pytest

import workbench
from workbench import cli, store
from workbench.forecasting import forecast, load_calibration
from workbench.monitor import Recorder
from workbench.sweeps import open_sweep

pytestmark = pytest.mark.slow

# a family that groks within 600 epochs on 2 cores (~25 s for 8 members): the fast model at p = 31
TINY = """description = "tiny forecast sweep"
base = "fast"
seeds = 2
member_name = "lr{lr}-wd{weight_decay}-seed{seed}"
[set]
p = 31
frac_train = 0.5
epochs = 600
ckpt_every = 50
ckpt_log = 5
[axes]
lr = [1e-2, 2e-2]
weight_decay = [2.0, 3.0]
"""


def test_the_random_table_is_forecast_never_to_generalise(random_table_run):
    for at in (800, None):
        f = forecast(random_table_run, at)
        assert f.p_generalise < 0.1 and f.grok_step is None and f.interval is None, f.text()
        assert f.state == "memorised_stalled"


def test_fit_and_eval_at_a_small_size_and_the_sweep_table_forecast(runs_root, tmp_path, capsys):
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY)
    assert cli.main(["sweep", str(definition), "--no-probe"]) == 0
    assert cli.main(["sweep", str(definition), "--name", "tiny-eval", "p=29", "seeds=1", "model_seed=5",
                     "split_seed=5"]) == 0  # trained and probed: the sweep table
    capsys.readouterr()
    cal_path, page = tmp_path / "cal.json", tmp_path / "forecast-eval.md"
    assert cli.main(["forecast-fit", "--sweeps", "tiny", "--out", str(cal_path)]) == 0
    cal = load_calibration(cal_path)
    assert cal.fitted_on["sweeps"] == ["tiny"] and cal.fitted_on["grokking"] >= 3 and 0 < cal.gini_star < 1
    assert cli.main(["forecast-eval", "--sweeps", "tiny-eval", "--calibration", str(cal_path), "--in-sample", "tiny",
                     "--out", str(page)]) == 0
    text = page.read_text()
    assert "## Held out" in text and "## In sample" in text and "| fit |" in text and "training them took" in text
    rows = pd.read_csv(page.with_suffix(".csv"))
    assert set(rows.stage) >= {"fit", "25%", "50%"} and rows.run.str.startswith("tiny-eval/").all()

    table = open_sweep("tiny-eval").table
    assert {"forecast_grok_step", "forecast_p", "gen_step"} <= set(table.columns)
    assert table.forecast_p.notna().all()


def test_the_progress_bar_shows_the_forecast_once_fitted(runs_root):
    rec = Recorder()
    workbench.train("watched", "fast", {"p": 31, "frac_train": 0.5, "epochs": 400, "lr": 2e-2, "weight_decay": 3.0,
                                        "ckpt_every": 50}, progress=rec)
    shown = [e[-1]["forecast"] for e in rec.events if e[0] in ("advance", "status") and "forecast" in e[-1]]
    assert shown, "no forecast on the bar"
    assert all(s.startswith(("groks ~", "grokked ~", "no generalisation expected")) for s in shown), shown
    run = store.Run(runs_root / "watched")
    fitted = run.metrics.step[run.metrics.train_acc >= 0.99].iloc[0]
    first = next(i for i, e in enumerate(rec.events) if e[0] in ("advance", "status") and "forecast" in e[-1])
    statuses = [e for e in rec.events[:first] if e[0] == "status"]
    assert len(statuses) >= fitted // run.config.eval_every, "the forecast appears only after the fit"
