"""The HTML page and image files every report is made of."""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import plotly.graph_objects as go

IMAGE_FORMATS = ("png", "svg", "pdf")


CSS = """
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }
.caption { color: #444; margin: 0 0 2.2em 0; font-style: italic; }
.muted { color: #777; } table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 0.9em; }
.cv-row { display: flex; flex-wrap: wrap; gap: 12px; } .cv-cell { min-width: 280px; }
"""


def export_images(figs: dict[str, tuple[go.Figure, str]], out: Path, formats) -> tuple[list[Path], str | None]:
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
    except Exception as exc:  # no kaleido, no browser
        return [], f"static images skipped: {exc}"
    written: list[Path] = []
    try:
        for name, (fig, _) in figs.items():
            for fmt in formats:
                path = out / f"{name}.{fmt}"
                tmp = out / f".{name}.tmp.{fmt}"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fig.write_image(str(tmp), format=fmt)
                tmp.replace(path)
                written.append(path)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return written, (f"static images failed ({first_line}); install Chromium (make setup does) "
                         "for PNG/SVG/PDF, the HTML report is complete without them")
    finally:
        try:
            kaleido.stop_sync_server(silence_warnings=True)
        except Exception:
            pass
    return written, None


def figure_sections(figs: dict[str, tuple[go.Figure, str]], image_error: str | None) -> list[str]:
    """HTML for each figure: its title, the plotly div (fixed id) and its caption, naming the
    image files unless they could not be written."""
    out = []
    for name, (fig, caption) in figs.items():
        out.append(f"<h2>{html.escape(fig.layout.title.text or name)}</h2>")
        out.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{name}",
                               config={"displaylogo": False}))
        out.append(f"<p class='caption'>{html.escape(caption)}"
                   + (f" <span class='muted'>[{name}.png / .svg / .pdf]</span>" if not image_error else "") + "</p>")
    return out


def page_html(title: str, body: list[str]) -> str:
    """A self-contained page: plotly.js inlined once, the report's style."""
    from plotly.offline import get_plotlyjs

    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style>\n<script>{get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
