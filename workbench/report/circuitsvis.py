"""The one place that renders circuitsvis HTML.

circuitsvis's ``str(html)`` loads its JavaScript from a CDN, which does not render offline.
Its ``local_src`` is self-contained but repeats a 1.3 MB bundle in every element, so a report
with a dozen attention views would weigh 15 MB. Here the bundle is taken once from
``local_src`` and each element is a small ``CircuitsVis.render`` call into a div with a
deterministic id: the page works with no network and is the same bytes for the same data.

Notebooks get `OfflineView` objects, which render from the same local bundle (never the CDN).

Example:
    >>> import torch
    >>> pattern = torch.full((2, 3, 3), 1 / 3)                  # [heads, 3, 3]
    >>> view = pattern_view(["a=3", "b=5", "="], pattern)       # a notebook object
    >>> page_part = bundle_script() + attention_patterns_element("cv-0", ["a=3", "b=5", "="], pattern)
    >>> 'id="cv-0"' in page_part
    True
"""

from __future__ import annotations

import functools
import html as html_lib
import json

import torch

_MODULE_OPEN = '<script crossorigin type="module">'
_RENDER_CALL = "CircuitsVis.render("


class OfflineView:
    """A circuitsvis view for notebooks that always renders from the bundle inside it.

    circuitsvis's own object picks the CDN whenever the *kernel* can reach google.com (and waits a
    second to find out), so a notebook saved on one machine shows blank views on an air-gapped one,
    and exported HTML needs the network. This one's ``_repr_html_`` is circuitsvis's ``local_src``:
    self-contained (~1.3 MB per view), no network, same bytes for the same data."""

    def __init__(self, local_src: str):
        self.local_src = local_src

    def _repr_html_(self) -> str:
        return self.local_src

    def __html__(self) -> str:
        return self.local_src


def pattern_view(tokens: list[str], pattern: torch.Tensor) -> OfflineView:
    """circuitsvis's AttentionPatterns for a notebook: pattern [heads, n, n] -> `OfflineView`."""
    from circuitsvis.attention import attention_patterns as cv_attention_patterns

    return OfflineView(cv_attention_patterns(tokens=tokens, attention=pattern).local_src)


@functools.lru_cache(maxsize=1)
def _bundle_js() -> str:
    src = pattern_view(["x"], torch.ones(1, 1, 1)).local_src
    start = src.find(_MODULE_OPEN)
    end = src.rfind(_RENDER_CALL)
    if start < 0 or end < 0:
        raise RuntimeError("circuitsvis local_src has an unexpected layout; update workbench/report/circuitsvis.py")
    return src[start + len(_MODULE_OPEN) : end]


def bundle_script() -> str:
    """A classic script defining the global ``CircuitsVis`` (include once per page, before elements)."""
    return f"<script>{_bundle_js()}</script>\n"


def attention_patterns_element(element_id: str, tokens: list[str], pattern: torch.Tensor) -> str:
    """A div plus the call that mounts circuitsvis's AttentionPatterns into it (pattern [heads, n, n])."""
    props = json.dumps({"tokens": tokens, "attention": [[[round(float(v), 5) for v in row] for row in head]
                                                        for head in pattern.tolist()]})
    safe_id = html_lib.escape(element_id)
    return (f'<div id="{safe_id}" class="circuitsvis"></div>\n'
            f'<script>CircuitsVis.render("{safe_id}", CircuitsVis.AttentionPatterns, {props});</script>\n')
