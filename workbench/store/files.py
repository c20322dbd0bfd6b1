"""Durable file writes: atomic replacement, the user's permissions, locks.

Every file the workbench writes goes through here. A write goes to a hidden temporary file in
the same folder (``.<name>.<random>.tmp``), is flushed to disk, given the permissions a plain
``open()`` would have given it under the user's umask, and renamed over the target: a reader
sees the old file or the new one, never half of one, and a crash leaves at most a stale
temporary that `remove_stale_temporaries` clears. (``tempfile.mkstemp`` makes 0600 files and
``mkdtemp`` 0700 folders; renamed into place unchanged they would lock colleagues out of a run
copied to a shared server or a report served over HTTP.)

Example:
    >>> Path("run").mkdir()
    >>> write_json(Path("run/config.json"), {"p": 113})
    >>> with exclusive_lock(Path("run/.lock"), "run 'x' is busy: another process is training it"):
    ...     Path("run/config.json").read_text()
    '{\\n  "p": 113\\n}\\n'
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.errors import UsageError, os_error_line
from workbench.inputs import read_problem  # the one place an OS error on a file is named


class UnreadableFile(UsageError):
    """A file that cannot be opened for reading (no permission, not a regular file, a folder in its
    place): not damage. No advice that would replace it is given, since nothing shows it is damaged."""


def check_readable(path: Path, missing_ok: bool = False) -> None:
    """`UnreadableFile` naming ``path`` and what to do, unless it can be opened (or, with
    ``missing_ok``, does not exist: the caller says what a missing file means)."""
    problem = read_problem(path)
    if problem is None or (missing_ok and problem[0] == "missing"):
        return
    kind, words = problem
    todo = {"permission": "check its permissions (and its folder's)", "folder": "move the folder away",
            "special": "put the real file in its place", "missing": "check the path"}.get(kind, "check the path and the disk")
    raise UnreadableFile(f"{path} {words}; {todo} (nothing was changed)")


def _umask() -> int:
    """The process umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def plain_dir_mode() -> int:
    """The mode ``os.mkdir`` gives a new folder: 0o777 less the umask."""
    return 0o777 & ~_umask()


def make_private_temp_dir(parent: Path, prefix: str) -> Path:
    """A hidden folder in ``parent`` to assemble something in before renaming it into place;
    it gets the permissions of a plain ``mkdir`` (not mkdtemp's 0700)."""
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        os.chmod(tmp, plain_dir_mode())
    except OSError as exc:
        raise UsageError(os_error_line(_named(exc, parent), "create a folder in")) from None
    return tmp


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to fill a temporary beside ``path``, fsync it, give it the plain-file
    mode, and rename it over ``path``. On any failure the temporary is removed and ``path`` is
    untouched; an OS error (a full disk, no permission) is one `UsageError` line naming ``path``."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(os_error_line(_named(exc, path), "write") + _UNCHANGED) from None
    tmp = Path(name)
    try:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, plain_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(os_error_line(_named(exc, path), "write") + _UNCHANGED) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_UNCHANGED = " (the file is as it was: nothing was lost)"


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` where it names no file (errors on a descriptor name none)."""
    if exc.filename is None:
        exc.filename = str(path)
    return exc


def ensure_folder(path: Path, when_a_file: str, what: str) -> Path:
    """Make the folder ``path`` (and its parents); a file in its place is `UsageError(when_a_file)`,
    a folder that cannot be made one line naming ``what`` and the cause."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(when_a_file)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(os_error_line(_named(exc, path), f"make {what}")) from None
    return path


def ensure_output_dir(path: Path) -> Path:
    """Make the folder ``path`` (and its parents) for a command's output (`ensure_folder`)."""
    return ensure_folder(path, f"output folder {path} is a file; give --out a folder", "the output folder")


def write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    """Indented, key-sorted JSON (the same object gives the same bytes)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` on an O_APPEND descriptor (no interleaving)."""
    data = (line + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as for open()
        try:
            if os.write(fd, data) != len(data):  # a short write (a full disk): the torn line a reader skips
                raise OSError(28, os.strerror(28), str(path))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UsageError(os_error_line(_named(exc, path), "append to")
                         + " (a line cut short is dropped when the run resumes from its last checkpoint: nothing was lost)") from None


def remove_stale_temporaries(*folders: Path) -> None:
    """Delete leftover ``.*.tmp`` files of an interrupted writer (only a lock holder calls this)."""
    for folder in folders:
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


@contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """An exclusive lock that waits its turn (two `make probe` on one run take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path, busy_message: str) -> Iterator[None]:
    """An exclusive lock that refuses to wait: a second holder gets `UsageError(busy_message)`."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(busy_message) from None
        yield
    finally:
        os.close(fd)
