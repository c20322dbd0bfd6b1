"""The shipped double-descent sweeps at a small size, their report figures and the results page
(trained runs, ~a minute): marked slow."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.report import build_sweep_report
from workbench.sweeps import open_sweep, run_sweep


@pytest.mark.slow
def test_model_wise_sweep_small_reports_widths_outcomes_and_complexity_axes(runs_root, tmp_path, capsys):
    sweep = run_sweep("model-wise", {"epochs": "60", "case": "w04,w16,w32", "ckpt_every": "30", "ckpt_log": "0"},
                      progress=False)
    table = sweep.table
    assert len(table) == 6 and set(table.status) == {"complete"}
    assert sorted(table.d_model.unique()) == [4, 16, 32] and sorted(table.label_noise.unique()) == [0.0, 0.1]
    # the readout's p_hat on training inputs is its rank, at most d_model; the LLC at the last checkpoint only
    assert (table.eff_params_train <= table.d_model + 1e-6).all() and table.eff_params_test.notna().all()
    assert table.llc.notna().all()
    llc_steps = sweep.path.joinpath("w04-noise0.0", "probes", "llc.csv").read_text().splitlines()[1:]
    assert {line.split(",")[0] for line in llc_steps} == {"60"}
    report = build_sweep_report(open_sweep("model-wise"), formats=())
    assert {"double_descent_width", "outcomes_by_width", "complexity_axes", "double_descent_epochs"} <= set(report.figures)
    # the sample-wise sweep: test loss against the training fraction
    run_sweep("sample-wise", {"epochs": "60", "frac_train": "0.2,0.5", "label_noise": "0.0", "ckpt_log": "0"},
              progress=False)
    assert "double_descent_samples" in build_sweep_report(open_sweep("sample-wise"), formats=()).figures
    page = tmp_path / "dd.md"
    assert main(["double-descent", "--sweeps", "model-wise,sample-wise", "--out", str(page)]) == 0
    text = page.read_text()
    assert "## Random-feature least squares" in text and "### `model-wise`" in text and "#### label_noise = 0.1" in text
    assert "against parameter count: **" in text and "λ̂ (LLC)" in text
