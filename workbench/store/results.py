"""Probe tables, probe JSON, probe options and the report folder of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import UsageError
from workbench.store import files
from workbench.store.formats import write_table
from workbench.store.layout import (
    FORECAST_SIGNALS,
    PROBE_OPTIONS,
    PROBES_DIR,
    REPORT_DIR,
    REPORT_PAGE,
    probe_table_path,
)
from workbench.store.run import Run


def write_probe_options(run: Run, options: dict[str, Any]) -> None:
    files.write_json(run.path / PROBES_DIR / PROBE_OPTIONS, options)


def write_probe_json(run: Run, name: str, obj: Any) -> None:
    """``key_frequencies.json`` or ``phases.json``."""
    files.write_json(run.path / PROBES_DIR / name, obj)


def write_probe_table(run: Run, probe: str, frame) -> None:
    write_table(probe_table_path(run.path, probe), frame)


def report_dir(run: Run) -> Path:
    """``<run>/report/``, created if needed (figures are exported into it)."""
    path = run.path / REPORT_DIR
    path.mkdir(exist_ok=True)
    return path


def write_report_page(run: Run, page: str) -> Path:
    path = report_dir(run) / REPORT_PAGE
    files.write_text(path, page)
    return path


def read_signal_rows(run: Run) -> list[dict[str, Any]]:
    """The forecaster's cached signal rows (a cache: absent, unreadable or damaged reads as empty,
    and every row is computed again)."""
    import pandas as pd

    path = run.path / PROBES_DIR / FORECAST_SIGNALS
    try:
        frame = pd.read_csv(path)
        if not {"step", "size", "mtime_ns", "version"} <= set(frame.columns) or frame[["step", "size", "mtime_ns", "version"]].isna().any().any():
            return []
        return frame.to_dict("records")
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return []


def write_signal_rows(run: Run, frame) -> None:
    """Keep the forecaster's signal rows (atomically; a run folder that cannot be written keeps none)."""
    try:
        (run.path / PROBES_DIR).mkdir(exist_ok=True)
        write_table(run.path / PROBES_DIR / FORECAST_SIGNALS, frame)
    except (OSError, UsageError):
        pass
