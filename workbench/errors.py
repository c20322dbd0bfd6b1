"""The one exception type for bad input.

A `UsageError` carries a single line that says what was wrong and what is valid. The CLI
prints it to stderr and exits with status 2, no traceback; notebooks see it as an ordinary
exception with the same message. Anything else that escapes is a bug, not bad input.
"""


class UsageError(ValueError):
    """Bad input from the user: a one-line message saying what was wrong and what to do."""


def os_error_line(exc: OSError, doing: str = "use") -> str:
    """One line for an operating-system error: what could not be done to which file, why, and what
    to do (a full disk, missing permissions, a read-only filesystem each say so)."""
    import errno

    target = exc.filename if exc.filename is not None else "a file"
    cause = exc.strerror or type(exc).__name__
    hint = {errno.ENOSPC: "free some space and run again", errno.EDQUOT: "free some space and run again",
            errno.EACCES: "check its permissions (and its folder's)", errno.EPERM: "check its permissions (and its folder's)",
            errno.EROFS: "the filesystem is read-only: choose another runs root (WORKBENCH_CHECKPOINTS)",
            errno.ENOTDIR: "a file stands where a folder is expected", errno.EISDIR: "a folder stands where a file is expected",
            }.get(exc.errno, "check the path and run again")
    return f"cannot {doing} {target}: {cause}; {hint}"
