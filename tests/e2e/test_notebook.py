"""The walkthrough notebook: kept without outputs, executed as a notebook (nbclient, the project's
kernel) against a small run, its views offline, and its HTML export drawn by headless Chromium;
the checkpoint explorer's figures and phases."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import workbench
from tests.report.test_report import CHROMIUM, ROOT, MountCheck
from workbench import figures

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"
# a script or module loaded from the network: what must not be in a notebook's outputs
NETWORK_LOAD = re.compile(r"""<script[^>]*\ssrc=\\?["']https?://|import\s*\\?["']https?://|<link[^>]*href=\\?["']https?://""")


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_walkthrough_is_committed_without_outputs_and_uses_only_the_public_api():
    nb = json.loads(NOTEBOOK.read_text())
    cells = _code_cells(nb)
    assert cells and all(c["outputs"] == [] and c["execution_count"] is None for c in cells), \
        "commit the notebook without outputs (Kernel > Restart and Clear Outputs, then save)"
    assert nb["metadata"]["kernelspec"]["name"] == "workbench"
    source = "\n".join("".join(c["source"]) for c in cells)
    assert not re.search(r"^\s*(def|class) ", source, re.M), "notebooks use the public API only"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The walkthrough executed by a Jupyter kernel (the `workbench` kernelspec `make setup`
    installs) on a `smoke` run: (notebook dict, folder)."""
    import nbclient
    import nbformat

    folder = tmp_path_factory.mktemp("notebook")
    env = {"WORKBENCH_CHECKPOINTS": str(folder / "checkpoints"), "WORKBENCH_RUN": "nb", "WORKBENCH_PRESET": "smoke"}
    code = f"""
import json, os, sys
import nbclient, nbformat
os.environ.update({env!r})
nb = nbformat.read({str(NOTEBOOK)!r}, as_version=4)
nbclient.NotebookClient(nb, timeout=300, kernel_name="workbench", resources={{"metadata": {{"path": {str(NOTEBOOK.parent)!r}}}}}).execute()
nbformat.write(nb, {str(folder / "executed.ipynb")!r})
"""
    # a separate process: the kernel's environment is the one the notebook sees, not pytest's
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    del nbclient, nbformat
    return json.loads((folder / "executed.ipynb").read_text()), folder


@pytest.mark.slow
def test_executed_walkthrough_shows_every_view_with_no_network(executed):
    nb, _ = executed
    outputs = [o for c in _code_cells(nb) for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "phases:" in text and "unexplained:" in text
    html = ["".join(o["data"]["text/html"]) for o in outputs if "text/html" in o.get("data", {})]
    plotly = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly) >= 4 and all("text/html" in o["data"] for o in plotly), "every figure has an offline HTML form"
    assert sum("plotly.js" in h and "Plotly" in h for h in html) == 1, "plotly.js itself is embedded once"
    views = [h for h in html if "AttentionPatterns" in h]
    assert views and all('id="circuits-vis-' in h for h in views), "the circuitsvis view, from its local bundle"
    everything = json.dumps(nb)
    assert not NETWORK_LOAD.search(everything), NETWORK_LOAD.search(everything).group(0)
    # the explorer: a widget whose saved state holds its step slider and the step's figures
    state = json.dumps(nb["metadata"]["widgets"])
    assert "SelectionSliderModel" in state and "application/vnd.plotly.v1+json" in state


@pytest.mark.slow
def test_training_and_probing_cells_show_live_progress_bars(executed):
    """A notebook user sees progress while a cell runs: the training and probing cells each draw
    a tqdm widget bar (not text on stderr, and not nothing), the training one with its losses."""
    nb, _ = executed
    cells = _code_cells(nb)
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]

    def bars(cell: dict) -> list[str]:
        """Each widget the cell displayed, with every model it refers to, as one JSON text."""
        found = []
        for o in cell["outputs"]:
            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {}):
                continue
            todo, seen = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]], {}
            while todo:
                mid = todo.pop()
                if mid in seen or mid not in state:
                    continue
                seen[mid] = state[mid]
                todo += re.findall(r"IPY_MODEL_(\w+)", json.dumps(state[mid]))
            found.append(json.dumps(seen))
        return found

    train = next(c for c in cells if "workbench.train(" in "".join(c["source"]))
    probe = next(c for c in cells if "workbench.probe(" in "".join(c["source"]))
    assert bars(train) and any("FloatProgressModel" in b and "test=" in b for b in bars(train)), "training shows a bar with losses"
    assert bars(probe) and any("FloatProgressModel" in b for b in bars(probe)), "probing shows a bar"
    assert not any(o.get("name") == "stderr" for c in (train, probe) for o in c["outputs"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make setup installs it)")
def test_exported_walkthrough_draws_in_headless_chromium_with_no_network(executed, tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    _, folder = executed
    page, _ = HTMLExporter().from_notebook_node(nbformat.read(folder / "executed.ipynb", as_version=4))
    path = folder / "walkthrough.html"
    path.write_text(page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=30000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=240).stdout
    assert dom.count('class="main-svg"') >= 4, "plotly drew the figures"
    check = MountCheck(id_prefix="circuits-vis-")
    check.feed(dom)
    assert check.children and all(n > 0 for n in check.children.values()), check.children


def test_explorer_shows_a_steps_phase_and_figures(smoke_run):
    results = workbench.probe(smoke_run, progress=False)
    memorised = results.phases.steps["memorization"]
    early, late = workbench.step_view(smoke_run, 0, results), workbench.step_view(smoke_run, smoke_run.steps[-1], results)
    assert early.phase == "initialisation"
    assert memorised is not None and late.phase == "memorization"  # the smoke run memorises, never groks
    assert f"step {smoke_run.steps[-1]}" in late.caption()
    for fig in (late.spectrum, late.neurons, late.attention):
        assert len(fig.data) > 0
    p = smoke_run.config.p
    assert late.attention.data[0].z.shape == (p, p)
    import plotly.io as pio

    default = pio.renderers.default
    try:
        figures.offline_notebook()  # outside IPython: sets the renderers, embeds nothing
        panel = workbench.explore(smoke_run, results)
        slider, caption, out = panel.children
        assert list(slider.options) == smoke_run.steps and slider.value == smoke_run.steps[-1]
        slider.value = smoke_run.steps[1]
    finally:
        pio.renderers.default = default
    assert f"step {smoke_run.steps[1]}:" in caption.value
    # the step's three figures live in the Output widget's state, each with both offline forms
    assert len(out.outputs) == 3
    assert all({"application/vnd.plotly.v1+json", "text/html"} <= set(o["data"]) for o in out.outputs)
    with pytest.raises(ValueError, match="no checkpoint at step 7"):
        workbench.step_view(smoke_run, 7, results)


def test_attention_view_renders_from_the_local_bundle(smoke_run):
    view = workbench.attention_view(smoke_run)
    html = view._repr_html_()
    assert "AttentionPatterns" in html and not NETWORK_LOAD.search(html)


def test_phase_at_takes_the_latest_phase_in_phase_order():
    from probes.phases import Phases

    phases = Phases(steps={"memorization": 10, "circuit_formation": 10, "cleanup": 30, "grokked": None})
    assert [phases.phase_at(s) for s in (0, 10, 29, 30, 99)] == [
        "initialisation", "circuit_formation", "circuit_formation", "cleanup", "cleanup"]
