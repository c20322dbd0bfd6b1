"""The entry point: one parser over every command group, and the one place an error becomes a line
and an exit status.

Bad input (a `UsageError`, a `store.DamagedFile` among them) prints one line, ``error: ...``, to
stderr and exits with 2; an operating-system fault the store did not name exits with 1.

Example:
    $ python -m workbench runs        # main(["runs"]) in-process; 0 on success, 2 on bad input
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from workbench.cli import double_descent, forecasts, runs, sweeps
from workbench.cli.shell import Parser, one_line, runs_root
from workbench.errors import UsageError, os_error_line
from workbench.store import CorruptCheckpoint, remove_stale_creations

GROUPS = (runs, sweeps, forecasts, double_descent)
# commands whose key=value words may stand anywhere on the command line
WITH_OVERRIDES = ("train", "probe", "report", "import", "sweep")


def parser_and_commands() -> tuple[Parser, dict]:
    """The whole command line's parser and {command: function}."""
    parser = Parser(prog="python -m workbench", description="Train grokking runs and look inside them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands = {}
    for group in GROUPS:
        commands.update(group.add_commands(sub))
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser, commands = parser_and_commands()
        args, extra = parser.parse_known_args(argv)
        # key=value overrides may sit anywhere on a train command line
        args.overrides = [e for e in extra if not e.startswith("-")]
        stray = [e for e in extra if e not in args.overrides or args.command not in WITH_OVERRIDES]
        if stray:
            parser.error(f"unrecognized arguments: {' '.join(stray)}")
        remove_stale_creations(runs_root())  # what a process killed while creating a run left behind
        return commands[args.command](args)
    except (UsageError, CorruptCheckpoint) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`
        return 0
    except OSError as exc:  # a fault the store did not name (it names the file and the cause itself)
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130
