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
    """The JSON in ``path``; `DamagedFile` naming it (with ``advice``) if it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} is damaged (not JSON: {_first_line(exc)}); {advice}") from None


def _load_tensors(path: Path, advice: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except _TENSOR_ERRORS as exc:
        raise DamagedFile(f"{path} is damaged (unreadable safetensors: {_first_line(exc)}); {advice}") from None


_MISSING = object()


def _metadata(path: Path, key: str, default: Any = _MISSING) -> str:
    """A safetensors file's metadata entry ``key`` (``default`` where it has none; else KeyError)."""
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete rows; a torn line (a crash mid-append) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


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
