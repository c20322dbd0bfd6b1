"""One measurement, one answer: every cached probe row is a pure function of what it depends on."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import workbench
from probes import ProbeSettings, get_probe
from workbench import store
from workbench.cli import main
from workbench.probing import evaluate_on_grid
from workbench.report import build_report


@pytest.fixture
def cache_run(runs_root):
    return workbench.train("cache-run", "smoke", {"epochs": 60, "ckpt_every": 20}, device="cpu", progress=False,
                           root=runs_root)


def _rows(table, measure):
    return table[table.measure == measure].reset_index(drop=True)


def _fresh_fourier(run, step, key_freqs, settings):
    return get_probe("fourier").fn(evaluate_on_grid(run, step), tuple(key_freqs), settings)


def test_a_changed_setting_recomputes_the_rows_that_read_it(cache_run, capsys):
    """Wrong answer 1: `make probe SET=neuron_threshold=0.5` after a default probe kept the old
    cluster_size rows. Every row must now equal a fresh measurement with the new settings."""
    run = cache_run
    first = workbench.probe(run, progress=False)
    assert main(["probe", "cache-run", "--no-progress", "neuron_threshold=0.5"]) == 0
    assert "neuron_threshold=0.5 (default 0.85)" in capsys.readouterr().out
    table = run.probe_table("fourier")
    kf = run.key_frequencies
    assert kf["depends"]["settings"]["neuron_threshold"] == 0.5
    settings = ProbeSettings(neuron_threshold=0.5)
    for step in run.steps:
        fresh = _fresh_fourier(run, step, kf["key_freqs"], settings)
        stored = table[table.step == step].reset_index(drop=True)
        pd.testing.assert_frame_equal(stored, fresh, check_exact=False, rtol=1e-9)
    before = _rows(first.tables["fourier"], "cluster_size").value.tolist()
    assert _rows(table, "cluster_size").value.tolist() != before, "the threshold does change the clusters here"
    # the weights never read a setting: their rows stay cached
    again = workbench.probe(run, progress=False)
    assert again.computed == dict.fromkeys(again.computed, 0), "change nothing and nothing is recomputed"
    assert again.options.settings.neuron_threshold == 0.5, "the run's current settings are the ones last used"


def test_exactly_the_dependent_probes_recompute(cache_run):
    run = cache_run
    workbench.probe(run, progress=False)
    n = len(run.steps)
    # given key frequencies: everything that reads them recomputes, the weight norms do not
    given = workbench.probe(run, key_freqs=[3, 5], progress=False)
    assert given.computed == {"fourier": n, "progress": n, "weights": 0, "attention": n, "clock_pizza": 0,
                              "complexity": 0, "effective": 0}
    assert given.key_frequencies == {"rule": "given", "step": None, "key_freqs": [3, 5], "by_rule": {}}
    assert run.key_frequencies["key_freqs"] == [3, 5] and run.phases["key_freqs"] == [3, 5]
    # a threshold that only the fourier probe reads, with the key frequencies held fixed
    only = workbench.probe(run, overrides={"min_cluster_frac": "0.5"}, progress=False)
    assert only.computed == {"fourier": n, "progress": 0, "weights": 0, "attention": 0, "clock_pizza": 0,
                             "complexity": 0, "effective": 0}
    # a setting of the opt-in llc sampler: no default probe reads it, the key frequencies stay cached
    sampler = workbench.probe(run, overrides={"llc_draws": "7"}, progress=False)
    assert sampler.computed == dict.fromkeys(sampler.computed, 0)
    assert sampler.options.settings.llc_draws == 7 and isinstance(sampler.options.settings.llc_draws, int)
    # another engine: what reads activations recomputes
    bridge = workbench.probe(run, engine="bridge", progress=False)
    assert bridge.computed == {"fourier": n, "progress": n, "weights": 0, "attention": n, "clock_pizza": n,
                               "complexity": n, "effective": n}
    # a probe's version is part of the key of its rows only
    index = json.loads((run.path / "probes" / "index.json").read_text())
    assert set(index["probes"]) == {"fourier", "progress", "weights", "attention", "clock_pizza", "complexity",
                                      "effective"}
    depends = {index["depends"][e["depends"]]["version"] for e in index["probes"]["progress"].values()}
    assert depends == {get_probe("progress").version}


def test_rows_made_stale_outside_the_selected_steps_are_dropped(cache_run):
    """A table holds only rows valid for the run's current options, never a mix."""
    run = cache_run
    workbench.probe(run, progress=False)
    result = workbench.probe(run, steps="last", overrides={"neuron_threshold": "0.6"}, progress=False)
    assert result.computed["fourier"] == 1
    assert sorted(result.tables["fourier"].step.unique()) == [run.steps[-1]]
    assert sorted(result.tables["weights"].step.unique()) == run.steps, "rows that do not read the setting stay"
    assert sorted(run.probe_table("fourier").step.unique()) == [run.steps[-1]]


def test_report_uses_the_settings_the_run_was_probed_with(cache_run, capsys):
    """Wrong answer 2: `make report` re-probed with the defaults and overwrote key_frequencies.json."""
    run = cache_run
    assert main(["probe", "cache-run", "--no-progress", "neuron_threshold=0.5", "--key-freqs", "4"]) == 0
    tables = {n: (run.path / "probes" / f"{n}.csv").read_bytes() for n in ("fourier", "progress", "attention")}
    kf_before = (run.path / "probes" / "key_frequencies.json").read_bytes()
    result = build_report(run, formats=())
    assert result.options.settings.neuron_threshold == 0.5 and result.options.key_freqs == (4,)
    assert (run.path / "probes" / "key_frequencies.json").read_bytes() == kf_before
    assert {n: (run.path / "probes" / f"{n}.csv").read_bytes() for n in tables} == tables
    page = result.index.read_text()
    assert "neuron_threshold=0.5 (default 0.85)" in page and "key frequencies given: 4" in page
    assert "as last used by <code>make probe</code>" in page
    # options given to the report are used, said so, and become the run's current ones
    assert main(["report", "cache-run", "--no-images", "--key-freqs", "auto"]) == 0
    assert "key frequencies from the run" in capsys.readouterr().out
    page = result.index.read_text()
    assert "given to this report" in page and "neuron_threshold=0.5" in page
    assert workbench.ProbeOptions.from_dict(run.probe_options).key_freqs is None


def test_default_settings_flag_starts_from_the_defaults(cache_run, capsys):
    assert main(["probe", "cache-run", "--no-progress", "key_rule=wl"]) == 0
    assert main(["probe", "cache-run", "--no-progress", "neuron_threshold=0.5"]) == 0
    assert "key_rule=wl" in capsys.readouterr().out, "a change keeps the run's other current settings"
    assert main(["probe", "cache-run", "--no-progress", "--default-settings"]) == 0
    assert "options: default settings; engine factored" in capsys.readouterr().out


def test_tables_round_trip_with_one_meaning_per_key_column(cache_run):
    """frequency is a frequency (0 = the constant term) or missing; histogram bins have a column of their own."""
    results = workbench.probe(cache_run, progress=False)
    fourier = results.tables["fourier"]
    assert str(fourier.frequency.dtype) == "Int64" and str(fourier["bin"].dtype) == "Int64"
    hist = _rows(fourier, "neuron_fraction_hist")
    assert hist.frequency.isna().all() and hist["bin"].tolist() == list(range(20)) * len(cache_run.steps)
    for measure in ("embed_gini", "wl_gini"):
        assert _rows(fourier, measure).frequency.isna().all()
    norms = _rows(fourier, "embed_norm")
    assert norms.frequency.min() == 0 and norms["bin"].isna().all(), "frequency 0 is the constant term"
    progress = results.tables["progress"]
    assert _rows(progress, "train_loss").frequency.isna().all()
    for name, table in results.tables.items():
        pd.testing.assert_frame_equal(store.read_table(store.probe_table_path(cache_run.path, name)), table)


def test_a_deleted_table_is_measured_again(cache_run):
    """The index vouches only for rows its table holds."""
    workbench.probe(cache_run, progress=False)
    (cache_run.path / "probes" / "progress.csv").unlink()
    again = workbench.probe(cache_run, progress=False)
    assert again.computed == {"fourier": 0, "progress": len(cache_run.steps), "weights": 0, "attention": 0,
                              "clock_pizza": 0, "complexity": 0, "effective": 0}
    assert sorted(cache_run.probe_table("progress").step.unique()) == cache_run.steps


def test_a_write_cut_off_half_way_is_never_trusted(cache_run, monkeypatch):
    workbench.probe(cache_run, progress=False)
    real, calls = store.write_probe_table, []

    def dies_after_the_first(run, name, frame):
        calls.append(name)
        if len(calls) > 1:
            raise KeyboardInterrupt
        real(run, name, frame)

    monkeypatch.setattr(store, "write_probe_table", dies_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        workbench.probe(cache_run, key_freqs=[2, 5], progress=False)
    monkeypatch.setattr(store, "write_probe_table", real)
    # the options were not saved, and the rewritten table is not vouched for: it is measured again
    result = workbench.probe(cache_run, progress=False)
    assert result.options.key_freqs is None
    n = len(cache_run.steps)
    assert result.computed[calls[0]] == n
    step = cache_run.steps[-1]
    fresh = _fresh_fourier(cache_run, step, result.key_frequencies["key_freqs"], ProbeSettings())
    stored = result.tables["fourier"]
    pd.testing.assert_frame_equal(stored[stored.step == step].reset_index(drop=True), fresh)


def test_a_replaced_checkpoint_is_measured_again_even_with_its_old_mtime(cache_run):
    import os

    workbench.probe(cache_run, progress=False)
    path = cache_run.step_path(20)
    st = path.stat()
    store.write_checkpoint(cache_run, 20, cache_run.weights(40))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `cp -p` or `rsync -a` would leave it
    again = workbench.probe(cache_run, probes=["weights"], progress=False)
    assert again.computed == {"weights": 1}
    w = again.tables["weights"].query("param == 'total'").set_index("step").value
    assert w[20] == w[40]


def test_changing_the_key_rule_reuses_the_rules_answers(cache_run, monkeypatch):
    from workbench.probing import runner

    first = workbench.probe(cache_run, progress=False)
    calls = []
    real = runner.key_frequencies_of
    monkeypatch.setattr(runner, "key_frequencies_of", lambda *a: calls.append(1) or real(*a))
    wl = workbench.probe(cache_run, overrides={"key_rule": "wl"}, progress=False)
    assert calls == [], "every rule's answer is cached; the rule only picks one"
    assert wl.key_frequencies["key_freqs"] == first.key_frequencies["by_rule"]["wl"]


@pytest.mark.parametrize("given", ["0", "12", "3,40"])
def test_key_frequencies_that_do_not_exist_are_refused(cache_run, runs_root, capsys, given):
    from tests.conftest import snapshot

    before = snapshot(runs_root)
    assert main(["probe", "cache-run", "--no-progress", "--key-freqs", given]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "do not exist for p=23; give values in 1..11 or 'auto'" in err
    assert snapshot(runs_root) == before
