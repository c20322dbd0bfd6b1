"""Files a user hands in (a calibration, a sweep definition, a config or preset file), read with bounds.

Every such file is read through `read_user_file`: it must be a regular file (a FIFO or a device is
never opened: a read could block or never end), at most `MAX_BYTES` long (read with a bound, so
a file that grows while read cannot exhaust memory either), valid JSON or TOML, and nested at most
`MAX_DEPTH` deep. `read_problem` is the one place an operating-system error on a file is named as
what it is (missing, a folder, not a regular file, permission) — never as damage — for these
readers and for the store's own (`workbench.store.files`).

Example:
    >>> from pathlib import Path
    >>> read_problem(Path("/nonexistent/file"))
    ('missing', 'does not exist')
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from workbench.errors import UsageError

MAX_BYTES = 4_000_000  # the largest file a user hands in: a calibration is ~100 kB, a definition a few kB
MAX_DEPTH = 8  # the deepest nesting any of them has (a calibration: 3)


def read_problem(path: Path) -> tuple[str, str] | None:
    """Why ``path`` cannot be opened for reading, as the OS says, or None: (kind, words) with kind
    ``missing``, ``folder``, ``special`` (a FIFO, a device or a socket: never opened), ``permission``
    or ``other``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "missing", "does not exist"
    except PermissionError:
        return "permission", "cannot be reached (permission denied on a folder above it)"
    except OSError as exc:
        return "other", f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(info.st_mode):
        return "folder", "is a folder, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "special", "is not a regular file (a FIFO, a device or a socket)"
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return "permission", "cannot be read (permission denied)"
    except OSError as exc:
        return "other", f"cannot be read ({exc.strerror or type(exc).__name__})"
    return None


def depth(value: Any, limit: int = MAX_DEPTH, level: int = 0) -> int:
    """How deep ``value`` nests dicts and lists (a scalar: 0), counted no further than ``limit + 1``."""
    if level > limit:
        return level
    if isinstance(value, dict):
        return max((depth(v, limit, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((depth(v, limit, level + 1) for v in value), default=level + 1)
    return level


def read_user_file(path: Path, what: str, advice: str, kind: str | None = None) -> Any:
    """The JSON or TOML in ``path`` (``kind``, default by its suffix: ``.toml`` is TOML, anything
    else JSON), bounded as the module docstring says; anything else is one `UsageError` line
    naming ``what``, the path, the problem and ``advice``."""
    path = Path(path)
    kind = kind or ("toml" if path.suffix == ".toml" else "json")
    problem = read_problem(path)
    if problem is not None:
        raise UsageError(f"{what} {path} {problem[1]}; {advice}")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what} {path} cannot be read ({exc.strerror or exc}); {advice}") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{what} {path} is longer than any such file ({MAX_BYTES:,} bytes); {advice}")
    try:
        text = data.decode("utf-8")
        values = tomllib.loads(text) if kind == "toml" else json.loads(text)
    except RecursionError:
        raise UsageError(f"{what} {path} is nested too deeply to be one; {advice}") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise UsageError(f"{what} {path} is not valid {kind.upper()} ({first}); {advice}") from None
    if depth(values) > MAX_DEPTH:
        raise UsageError(f"{what} {path} is nested more than {MAX_DEPTH} levels deep; {advice}")
    return values
