"""End-to-end tests of probes (trained runs, subprocesses, minutes): marked slow, skipped by `make test-fast`. Moved from tests/probes/test_probes.py."""

from __future__ import annotations

import pytest

import workbench


@pytest.mark.slow
def test_random_table_run_memorises_without_circuit_or_grokking(random_table_run):
    run = random_table_run
    report = workbench.probe(run, progress=False)
    steps = report.phases.steps
    assert steps["memorization"] is not None, "it does memorise"
    assert report.key_frequencies["key_freqs"] == []
    assert steps["circuit_formation"] is None and steps["cleanup"] is None and steps["grokked"] is None


# ------------------------------------------------------------------------------- trained run
@pytest.mark.slow
def test_fast_run_phases_come_in_order_and_restricted_loss_leads(fast_run):
    report = workbench.probe(fast_run, progress=False)
    s = report.phases.steps
    assert None not in s.values(), s
    assert s["memorization"] < s["circuit_formation"] < s["cleanup"] <= s["grokked"]
    assert 1 <= len(report.key_frequencies["key_freqs"]) <= 8

    prog = report.tables["progress"]
    restricted = prog[prog.measure == "restricted_loss"].set_index("step").value
    test = prog[prog.measure == "test_loss"].set_index("step").value
    # the restricted loss falls to half its memorisation-time value well before the test loss does
    after = lambda series: series[series.index >= s["memorization"]]  # noqa: E731
    r, t = after(restricted), after(test)
    r_half = r[r <= 0.5 * r.iloc[0]].index.min()
    t_half = t[t <= 0.5 * t.max()].index.min()
    assert r_half < t_half
    # the weight norm drops during cleanup
    w = report.tables["weights"].query("param == 'total'").set_index("step").value
    assert w[w.index >= s["grokked"]].iloc[-1] < w.max()
