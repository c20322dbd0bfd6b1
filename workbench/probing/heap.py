"""Keeping a long probe loop's memory flat (glibc only; elsewhere these do nothing).

glibc raises its mmap threshold after the first large free and then carves later per-checkpoint
temporaries (tens of MB each) out of the heap, whose fragments it keeps: the resident size grew
by ~30 MB per checkpoint probed. Serving large blocks with mmap returns them to the OS on free.

Example:
    >>> bound_heap_growth(); ...; release_memory()
"""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # mallopt parameter
MMAP_THRESHOLD_BYTES = 16 << 20


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def bound_heap_growth() -> None:
    """Serve blocks of >= 16 MiB with mmap, so freeing them gives the memory back."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_memory() -> None:
    """Trim what is left free at the top of the heap back to the OS."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
