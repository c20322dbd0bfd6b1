"""A member's training status: the one vocabulary the batched trainer, the sweep manifest, the sweep
table and the CLI share.

A status is a string, as stored in ``sweep.json``: ``pending`` (not trained to the end yet),
``complete``, ``stopped`` (cut short by ``stop_after``: not written to the manifest, the member stays
pending) or ``failed: <why>`` (e.g. the training loss became NaN). `kind` gives the first word.
"""

from __future__ import annotations

PENDING = "pending"
COMPLETE = "complete"
STOPPED = "stopped"
FAILED = "failed"
KINDS = (PENDING, COMPLETE, STOPPED, FAILED)


def failed(reason: str) -> str:
    """The status of a member that failed, with its one-line reason."""
    return f"{FAILED}: {reason}"


def kind(status: str) -> str:
    """The status's first word: one of `KINDS` (``failed: NaN loss`` -> ``failed``)."""
    return status.split(":", 1)[0].strip()

