"""What every command shares: the runs root, the console, the parser that refuses in one line, and
the one-line form of a message.

Example:
    >>> runs_root() == default_root()     # $WORKBENCH_CHECKPOINTS, else checkpoints/ of the source tree
    True
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import UsageError
from workbench.monitor import Console
from workbench.store import default_root


def runs_root() -> Path:
    """``$WORKBENCH_CHECKPOINTS``, else ``checkpoints/`` (`workbench.store.default_root`)."""
    return default_root()


def console(args: argparse.Namespace) -> Console:
    """The shell's monitor: bars on stderr when it is a terminal and --no-progress is not given,
    notes (a resumed state, a run already complete) on stdout either way."""
    return Console(bars=not getattr(args, "no_progress", False) and sys.stderr.isatty())


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage + message and exit
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def one_line(text: str) -> str:
    """A message as the one line the CLI promises (a file name may hold a newline)."""
    return " ".join(text.split("\n"))
