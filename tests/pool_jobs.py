"""Job functions for tests/test_pool.py. They live in an importable module because spawned
workers import a job's function by its module and name (test files are not importable so)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from workbench.errors import UsageError

CALLS = 0  # a per-worker cache stand-in: module globals persist across one worker's jobs


def call(fn, args):
    """Run another job function: lets one pool run mix several kinds of job."""
    return fn(*args)


def square(x: int) -> int:
    """x²."""
    return x * x


def calls() -> tuple[int, int]:
    """(this process's id, how many jobs of this module it has run, this one included)."""
    global CALLS
    CALLS += 1
    return os.getpid(), CALLS


def fail(message: str) -> None:
    """Raise a ValueError with the given (possibly several-line) message."""
    raise ValueError(message)


def misuse(message: str) -> None:
    """Raise the workbench's UsageError."""
    raise UsageError(message)


def die_by(sig: int) -> None:
    """Kill this process with a signal (a worker dying mid-job)."""
    os.kill(os.getpid(), sig)
    time.sleep(10)


def exit_with(code: int) -> None:
    """Leave the process at once with an exit code, skipping all cleanup."""
    os._exit(code)


def threads() -> int:
    """torch's thread count as the job sees it."""
    import torch

    return torch.get_num_threads()


def unpicklable() -> threading.Lock:
    """A value that cannot be pickled back to the parent."""
    return threading.Lock()


def nap(seconds: float) -> float:
    """Sleep, then return the seconds slept."""
    time.sleep(seconds)
    return seconds


def interrupt_self() -> str:
    """Send this process SIGINT (Ctrl-C) and carry on: a worker ignores it."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)
    return "carried on"


def pid() -> int:
    """This process's id."""
    return os.getpid()


def record_pid_and_nap(folder: str, seconds: float) -> float:
    """Write this process's id to a file in folder, then sleep."""
    path = Path(folder) / f"{os.getpid()}.pid"
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").rename(path)  # whole, or not there
    return nap(seconds)
