"""The one exception type for bad input.

A `UsageError` carries a single line that says what was wrong and what is valid. The CLI
prints it to stderr and exits with status 2, no traceback; notebooks see it as an ordinary
exception with the same message. Anything else that escapes is a bug, not bad input.
"""


class UsageError(ValueError):
    """Bad input from the user: a one-line message saying what was wrong and what to do."""
