"""Figures, the offline report, the notebook, and the report in a real headless browser."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest

import workbench
from workbench import figures
from workbench.report import build_report

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _has_data(fig: go.Figure) -> bool:
    for trace in fig.data:
        for attr in ("y", "z"):
            values = getattr(trace, attr, None)
            if values is not None and len(values) > 0:
                return True
    return False


def test_every_figure_function_returns_a_figure_with_data(smoke_run, probed_smoke):
    t, phases = probed_smoke.tables, probed_smoke.phases
    ckpt = workbench.evaluate_on_grid(smoke_run, smoke_run.steps[-1])
    last = smoke_run.steps[-1]
    made = [
        figures.loss_curves(smoke_run.metrics, phases),
        figures.progress_measures(t["progress"], t["weights"], t["fourier"], phases),
        figures.embedding_norms_bar(t["fourier"], last, [3]),
        figures.embedding_norms_heatmap(t["fourier"]),
        figures.embedding_norms_animation(t["fourier"]),
        figures.key_frequency_emergence(t["fourier"], [3, 5], phases),
        figures.neuron_grids(ckpt, []),
        figures.neuron_fraction_histogram(t["fourier"], last),
        figures.cluster_sizes(t["fourier"], last),
        figures.wl_fourier(ckpt),
        figures.logit_spectrum(ckpt),
        figures.attention_grids(ckpt),
        figures.attention_over_training(t["attention"], phases),
        figures.clock_pizza_measures(t["clock_pizza"], phases, smoke_run.config.attn_rate),
    ]
    for fig in made:
        assert isinstance(fig, go.Figure) and _has_data(fig), fig.layout.title.text
    assert len(made[4].frames) == len(smoke_run.steps), "one animation frame per checkpoint"


def test_phase_bands_are_drawn_where_the_phases_are():
    import pandas as pd

    metrics = pd.DataFrame({"step": [0, 100, 200, 300], "train_loss": [4, 1, 0.1, 0.01], "test_loss": [4, 5, 1, 0.01],
                            "train_acc": [0, 1, 1, 1], "test_acc": [0, 0, 0.5, 1]})
    phases = {"steps": {"memorization": 100, "circuit_formation": 150, "cleanup": 220, "grokked": 300}}
    fig = figures.loss_curves(metrics, phases)
    spans = sorted({(s.x0, s.x1) for s in fig.layout.shapes})
    assert spans == [(0, 100), (150, 220), (220, 300)]
    assert {a.text for a in fig.layout.annotations} >= {"memorisation", "circuit formation", "cleanup"}
    none = figures.loss_curves(metrics, {"steps": dict.fromkeys(phases["steps"])})
    assert not none.layout.shapes




class MountCheck(HTMLParser):
    """Counts, per circuitsvis div (``class="circuitsvis"``, or an id starting ``id_prefix``), the
    elements mounted inside it."""

    def __init__(self, id_prefix: str | None = None):
        super().__init__()
        self.stack: list[str | None] = []
        self.children: dict[str, int] = {}
        self.id_prefix = id_prefix

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for owner in self.stack:
            if owner:
                self.children[owner] += 1
        if self.id_prefix is not None:
            owner = attrs.get("id") if (attrs.get("id") or "").startswith(self.id_prefix) else None
        else:
            owner = attrs.get("id") if "circuitsvis" in (attrs.get("class") or "") else None
        if owner:
            self.children[owner] = 0
        if tag not in ("br", "img", "input", "meta", "link", "hr", "path", "rect", "line", "circle", "image", "use"):
            self.stack.append(owner)

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "img", "input", "meta", "link", "hr", "path", "rect", "line", "circle", "image", "use"):
            self.stack.pop()




def test_report_shows_the_complexity_measures_and_llc_when_the_run_has_them(runs_root):
    run = workbench.train("complex", "smoke", {"epochs": 60, "ckpt_every": 20}, device="cpu", progress=False,
                          root=runs_root)
    plain = build_report(run, formats=())
    assert "complexity_measures" in plain.figures and "llc" not in plain.figures
    small = {"llc_chains": "2", "llc_draws": "10", "llc_burnin": "5", "llc_batch_size": "32"}
    probed = workbench.probe(run, probes=["llc"], overrides=small, progress=False, workers=1)
    assert "llc:" in probed.summary() and "peak" in probed.summary()
    result = build_report(run, formats=())
    assert {"complexity_measures", "llc"} <= set(result.figures)
    page = result.index.read_text()
    assert "local learning coefficient" in page
    # the λ̂ drawn is the table's, unhealthy estimates apart
    wide = probed.tables["llc"].pivot_table(index="step", columns="measure", values="value")
    fig = figures.llc_curve(probed.tables["llc"], run.metrics, probed.phases)
    healthy = wide[wide.healthy == 1]
    assert list(fig.data[0].y) == pytest.approx(healthy.llc.tolist())
    assert list(fig.data[0].error_y.array) == pytest.approx(healthy.llc_std.tolist())


def test_steps_to_grok_draws_each_cells_median_and_seed_range_per_line():
    """frac-wd's trend figure: one median line per value of the other axis, error bars from each
    cell's own seeds (not pooled over the other axis), 'never' marks, a log axis for a wide range."""
    import pandas as pd

    rows = [(0.3, 0.1, None), (0.3, 0.1, None), (0.5, 0.1, 900.0), (0.5, 0.1, 1500.0), (0.5, 0.1, 1200.0),
            (0.3, 3.0, 400.0), (0.3, 3.0, 200.0), (0.5, 3.0, 100.0), (0.5, 3.0, 120.0)]
    table = pd.DataFrame(rows, columns=["frac_train", "weight_decay", "gen_step"])
    fig = figures.steps_to_grok(table, "weight_decay", by="frac_train")
    lines = {t.name: t for t in fig.data if t.mode == "lines+markers"}
    assert set(lines) == {"frac_train 0.3: median over seeds", "frac_train 0.5: median over seeds"}
    half = lines["frac_train 0.5: median over seeds"]
    assert list(half.x) == [0.1, 3.0] and list(half.y) == [1200.0, 110.0]
    assert list(half.error_y.array) == [300.0, 10.0] and list(half.error_y.arrayminus) == [300.0, 10.0]
    never = next(t for t in fig.data if t.name == "never reaches 99%")
    assert len(never.x) == 2
    assert fig.layout.xaxis.type == "log"
    assert figures.steps_to_grok(table, "frac_train", by="weight_decay").layout.xaxis.type is None  # plotly's own


def test_steps_to_grok_takes_an_axis_of_named_cases():
    """A sweep over named cases has strings on its axis: no log scale (plotly makes it a category axis)."""
    import pandas as pd

    table = pd.DataFrame({"case": pd.array(["w04", "add", "w04"], dtype="string"), "gen_step": [100.0, None, 300.0]})
    fig = figures.steps_to_grok(table, "case")
    assert fig.layout.xaxis.type is None
    assert [t.name for t in fig.data] == ["a member (seed)", "median over seeds", "never reaches 99%"]
