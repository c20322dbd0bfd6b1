"""End-to-end tests of report (trained runs, subprocesses, minutes): marked slow, skipped by `make test-fast`. Moved from tests/report/test_report.py."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.report.test_report import ARTIFACTS, CHROMIUM, MountCheck
from workbench.report import build_report


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
