"""Figures, the offline report, the notebook, and the report in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import pytest

import workbench
from workbench import figures
from workbench.report import build_report

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def probed_smoke(smoke_run):
    return workbench.probe(smoke_run, progress=False)


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


@pytest.mark.slow
def test_report_is_self_contained_deterministic_and_has_images(smoke_run, probed_smoke):
    first = build_report(smoke_run, formats=("png", "svg") if CHROMIUM else ())
    page = first.index.read_text()
    assert len(first.figures) >= 12
    for name in first.figures:
        assert f'id="fig-{name}"' in page
    assert not re.search(r"<script[^>]+src=", page), "no external scripts: it must open offline"
    assert not re.search(r"<(link|img|iframe)[^>]+(href|src)=.https?:", page), "no external resources"
    assert page.count("CircuitsVis.render(") >= 3
    assert "Key frequencies" in page and "circuit formation" in page
    if CHROMIUM:
        assert not first.image_error
        for name in first.figures:
            png = first.index.parent / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (first.index.parent / f"{name}.svg").read_text().lstrip().startswith("<svg")
    again = build_report(smoke_run, formats=())
    assert again.index.read_text() == page, "same run, same bytes"


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


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs it)")
def test_report_draws_in_headless_chromium_with_no_network(smoke_run, probed_smoke, tmp_path):
    result = build_report(smoke_run, formats=())
    url = result.index.resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=20000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    sections = dom.split('id="fig-')[1:]
    assert len(sections) == len(result.figures), "every plotly figure is in the page"
    for section in sections:
        name = section.split('"', 1)[0]
        body = section[:200_000]
        assert 'class="main-svg"' in body, f"{name}: plotly did not draw"
        assert re.search(r'class="(trace|hm|heatmaplayer)', body), f"{name}: no data drawn"
    check = MountCheck()
    check.feed(dom)
    assert len(check.children) >= 3 and all(n > 0 for n in check.children.values()), check.children

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1000,4000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000


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
