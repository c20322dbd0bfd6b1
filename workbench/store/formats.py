"""Reading and writing the file formats: JSON, JSON lines, safetensors, CSV; the errors a damaged file raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from probes.table import with_key_types
from workbench.errors import UsageError
from workbench.store import files
from workbench.store.layout import METRICS

_TENSOR_ERRORS = (SafetensorError, OSError, ValueError, KeyError)


# ------------------------------------------------------------------------------------ errors
class DamagedFile(UsageError):
    """A run file that exists but cannot be read: the message names it, says what is wrong and
    what the user can do."""


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated, corrupted, wrong model)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json(path: Path, advice: str) -> Any:
    """The JSON in ``path``; `DamagedFile` naming it (with ``advice``) if it is missing or not JSON;
    `files.UnreadableFile` if the OS will not let it be read (permission, a FIFO: not damage)."""
    files.check_readable(path, missing_ok=True)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} is damaged (not JSON: {_first_line(exc)}); {advice}") from None
    except FileNotFoundError:
        raise DamagedFile(f"{path} is missing; {advice}") from None
    except OSError as exc:
        raise DamagedFile(f"{path} cannot be read ({exc.strerror or type(exc).__name__}); {advice}") from None


def _load_tensors(path: Path, advice: str) -> dict[str, torch.Tensor]:
    """The tensors in ``path``; `files.UnreadableFile` (no advice that would replace it) where the OS
    will not let it be read, `DamagedFile` with ``advice`` where it is read and is not safetensors."""
    files.check_readable(path, missing_ok=True)
    try:
        return load_file(path)
    except _TENSOR_ERRORS as exc:
        raise DamagedFile(f"{path} is damaged (unreadable safetensors: {_first_line(exc)}); {advice}") from None


_MISSING = object()


def _metadata(path: Path, key: str, default: Any = _MISSING) -> str:
    """A safetensors file's metadata entry ``key`` (``default`` where it has none; else KeyError);
    `files.UnreadableFile` where the OS will not let it be read."""
    files.check_readable(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if key not in meta and default is not _MISSING:
        return default
    return meta[key]


# ------------------------------------------------------------------------------- basic files
def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write (tensors are made contiguous CPU copies first)."""
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    files.atomic_write(path, lambda tmp: save_file(data, tmp, metadata=metadata))


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    files.append_line(run_dir / METRICS, json.dumps(row, sort_keys=True))


def rewrite_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    files.write_text(run_dir / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


METRICS_ADVICE = "restore it from a copy of this run (the checkpoints are intact), or train a new run"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The metrics rows, each a JSON object with a whole ``step`` >= 0 and numbers (or null) for its
    other fields. A torn last line (a crash in the middle of an append) is ignored; any other line
    that is not such a row is `DamagedFile`, naming the line: a damaged log is never read in part."""
    files.check_readable(path, missing_ok=True)
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError:
        raise DamagedFile(f"{path} is damaged (not text); {METRICS_ADVICE}") from None
    lines = text.split("\n")
    torn = lines.pop()  # after the final newline: "" when the last append finished
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DamagedFile(f"{path} is damaged at line {number} (not JSON: {line[:40]!r}); {METRICS_ADVICE}") from None
        problem = _row_problem(row)
        if problem:
            raise DamagedFile(f"{path} is damaged at line {number} ({problem}); {METRICS_ADVICE}")
        rows.append(row)
    if torn:
        try:
            row = json.loads(torn)
        except json.JSONDecodeError:
            row = None  # a torn last line: the append a crash cut off
        if row is not None and not _row_problem(row):
            rows.append(row)
    return rows


def _row_problem(row: Any) -> str | None:
    """What makes ``row`` not a metrics row, or None."""
    if not isinstance(row, dict):
        return "not an object"
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step {step!r} is not a whole number >= 0"
    bad = [k for k, v in row.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    return f"{', '.join(bad)} not a number" if bad else None


def write_table(path: Path, frame) -> None:
    """A tidy table as CSV, atomically (readers never see a torn table)."""
    files.write_text(path, frame.to_csv(index=False))


def read_table(path: Path):
    """The tidy table at ``path`` (integer keys as ``Int64``), None if absent; `DamagedFile` if
    it cannot be parsed."""
    import pandas as pd

    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
        if "step" not in frame or "value" not in frame:
            raise ValueError("no step or value column")
        return with_key_types(frame)
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} is damaged ({_first_line(exc)}); delete it and probe again") from None
