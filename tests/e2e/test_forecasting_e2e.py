"""The forecaster end to end: a tiny run per regime, fit and leave-one-family-out evaluation at a small
size, sweeps that stop hopeless members, and where forecasts show."""

from __future__ import annotations

import pandas as pd
import pytest

import workbench
from workbench import cli, store
from workbench.forecasting import forecast, known_outcome, load_calibration
from workbench.monitor import Recorder
from workbench.sweeps import open_sweep

pytestmark = pytest.mark.slow

# two families on 2 cores in ~30 s: the fast model at p = 29 and 31, 45% of the table, 800 epochs
# (some grok in each family, most of the others memorise within the budget)
TINY = """description = "tiny forecast sweep"
base = "fast"
seeds = 3
member_name = "p{p}-lr{lr}-wd{weight_decay}-seed{seed}"
[set]
frac_train = 0.45
epochs = 800
ckpt_every = 50
ckpt_log = 5
[axes]
p = [29, 31]
lr = [1e-2, 2e-2]
weight_decay = [2.0, 3.0]
"""

# at the fast model's sizes, p = 43 and 60% of the table, the shipped calibration's runs comprehend (3 of 3)
COMPREHENDS = {"p": 43, "frac_train": 0.6, "epochs": 400, "ckpt_every": 20, "model_seed": 7, "split_seed": 7}


@pytest.mark.parametrize("name, preset, overrides, at, regime", [
    ("no-decay", "smoke", {"weight_decay": 0.0}, None, "memorisation"),
    ("huge-decay", "smoke", {"weight_decay": 100.0}, None, "confusion"),
    ("comprehends", "fast", COMPREHENDS, 100, "comprehension"),
])
def test_a_tiny_run_of_each_regime_is_classified_as_it(runs_root, name, preset, overrides, at, regime):
    run = workbench.train(name, preset, overrides, progress=False, root=runs_root)
    f = forecast(run, at)
    assert f.regime == regime, f.text()
    if regime in ("memorisation", "confusion"):
        assert f.p_generalise < 0.05 and f.grok_step is None
    else:
        truth = known_outcome(run).grok_step
        assert truth is not None and f.interval[0] <= truth <= f.interval[1], (truth, f.text())


def test_the_random_table_has_no_structure_to_find(random_table_run):
    for at in (800, None):
        f = forecast(random_table_run, at)
        assert f.regime == "no_structure" and f.p_generalise == 0.0 and f.grok_step is None, f.text()


def test_fit_and_leave_one_family_out_at_a_small_size_and_the_sweep_table_forecast(runs_root, tmp_path, capsys):
    definition = tmp_path / "tiny.toml"
    definition.write_text(TINY)
    assert cli.main(["sweep", str(definition), "--no-probe", "--workers", "2"]) == 0
    assert cli.main(["sweep", str(definition), "--name", "tiny-unseen", "p=37", "seeds=1", "model_seed=5",
                     "split_seed=5"]) == 0  # trained and probed: the sweep table
    capsys.readouterr()
    cal_path, page = tmp_path / "cal.json", tmp_path / "forecast-eval.md"
    assert cli.main(["forecast-fit", "--sweeps", "tiny", "--out", str(cal_path)]) == 0
    cal = load_calibration(cal_path)
    assert cal.fitted_on["sweeps"] == ["tiny"] and cal.fitted_on["families"] == ["add-29", "add-31"]
    assert cli.main(["forecast-eval", "--sweeps", "tiny", "--unseen", "tiny-unseen", "--calibration", str(cal_path),
                     "--out", str(page)]) == 0
    text = page.read_text()
    for part in ("## Leave one family out", "### Per family", "## Never fitted on", "## Sweeps that stop waiting",
                 "| fit |", "seed floor", "training the runs took"):
        assert part in text, part
    assert "| add-29 |" in text or "family add-29 is not scored: without it" in text
    rows = pd.read_csv(page.with_suffix(".csv"))
    assert set(rows.stage) >= {"fit", "25%", "50%"} and set(rows.scored) == {"leave-one-family-out", "never fitted on"}

    table = open_sweep("tiny-unseen").table
    assert {"forecast_grok_step", "forecast_p", "gen_step"} <= set(table.columns)
    assert table.forecast_p.notna().all()


def test_a_sweep_stops_the_member_that_cannot_generalise_and_not_the_one_that_can(runs_root, tmp_path, capsys):
    definition = tmp_path / "hopeless.toml"
    definition.write_text('base = "fast"\nmember_name = "wd{weight_decay}"\n[set]\n'
                          + "".join(f"{k} = {v}\n" for k, v in COMPREHENDS.items() if k != "epochs")
                          + "epochs = 600\n[axes]\nweight_decay = [0.0, 1.0]\n")
    assert cli.main(["sweep", str(definition), "--no-probe", "--stop-hopeless", "--patience", "3"]) == 0
    statuses = {m["name"]: m["status"] for m in open_sweep("hopeless").members}
    assert statuses["wd0.0"].startswith("stopped: forecast (p_generalise 0.0"), statuses
    assert statuses["wd1.0"] == "complete"
    stopped = store.Run(runs_root / "hopeless" / "wd0.0")
    assert stopped.steps[-1] < 600 and not stopped.is_complete  # its files end where it stopped, resumable
    assert cli.main(["sweep", str(definition), "--no-probe"]) == 0  # a plain rerun leaves it stopped
    assert open_sweep("hopeless").members[0]["status"].startswith("stopped: forecast")
    assert cli.main(["sweep", str(definition), "--no-probe", "--extend"]) == 0
    assert {m["status"] for m in open_sweep("hopeless").members} == {"complete"}
    assert store.Run(runs_root / "hopeless" / "wd0.0").is_complete


def test_the_progress_bar_shows_the_forecast_once_fitted(runs_root):
    rec = Recorder()
    workbench.train("watched", "fast", {"p": 31, "frac_train": 0.5, "epochs": 400, "lr": 2e-2, "weight_decay": 3.0,
                                        "ckpt_every": 50}, progress=rec)
    shown = [e[-1]["forecast"] for e in rec.events if e[0] in ("advance", "status") and "forecast" in e[-1]]
    assert shown, "no forecast on the bar"
    assert all(s.startswith(("grokking ~", "comprehension ~", "grokked ~", "memorisation: none by", "not fitted yet"))
               for s in shown), shown
    run = store.Run(runs_root / "watched")
    fitted = run.metrics.step[run.metrics.train_acc >= 0.99].iloc[0]
    first = next(i for i, e in enumerate(rec.events) if e[0] in ("advance", "status") and "forecast" in e[-1])
    statuses = [e for e in rec.events[:first] if e[0] == "status"]
    assert len(statuses) >= fitted // run.config.eval_every, "the forecast appears only after the fit"
