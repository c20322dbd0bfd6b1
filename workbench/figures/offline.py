"""Plotly figures in a notebook with no internet: the offline renderer."""

from __future__ import annotations

OFFLINE_RENDERER = "workbench_offline"


def offline_notebook() -> None:
    """Make plotly figures shown in this notebook draw with no network, now and once saved.

    Plotly's own notebook renderer embeds plotly.js but adds a MathJax ``<script src>`` from a
    CDN to every figure. This sets the default renderer to ``plotly_mimetype`` (what JupyterLab
    draws) plus an HTML form, for saved notebooks and their HTML exports, that loads nothing (no
    MathJax: no figure here uses LaTeX). plotly.js itself is embedded once, in the output of the
    cell that calls this, so figures shown by any means afterwards (``display``, the explorer's
    widget state) find it already loaded."""
    import plotly.io as pio
    from IPython import get_ipython
    from plotly.io.base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        def to_mimebundle(self, fig_dict):
            html = pio.to_html(fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                               full_html=False, default_width="100%", default_height=525, validate=False)
            return {"text/html": html}

        def activate(self):  # plotly.js was embedded when offline_notebook() ran: never again
            pass

    renderer = OfflineNotebookRenderer(connected=False)
    pio.renderers[OFFLINE_RENDERER] = renderer
    if get_ipython() is not None:
        NotebookRenderer.activate(renderer)  # embeds plotly.js in this cell's output
    pio.renderers.default = f"plotly_mimetype+{OFFLINE_RENDERER}"
