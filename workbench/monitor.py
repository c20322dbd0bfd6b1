"""The one progress mechanism: library code reports progress to a `Monitor` and never prints.

A long call takes ``progress=`` (True, False, None or a `Monitor`) and turns it into a monitor
with `resolve`; it then opens bars and writes notes through it, and the monitor decides where
they go:

- `SILENT` (``progress=False`` or None): nothing is shown.
- `Console`: tqdm bars on stderr (only when ``bars=True``), notes as lines on stdout; the shell's
  ``progress=True`` gets ``Console(bars=sys.stderr.isatty())``, so a log file gets the notes
  and no bar redraws.
- `Notebook`: tqdm's ipywidgets bars in the cell, notes printed into the cell's output; what
  ``progress=True`` gets inside a running Jupyter kernel.
- `Recorder`: keeps every event in a list, for tests (and for a notebook that wants them).

    >>> monitor = resolve(Recorder())             # resolve(True) in a shell or a notebook
    >>> with monitor.bar(total=3, desc="demo", unit="ep") as bar:
    ...     bar.advance(loss=0.0123)          # the bar shows "loss=0.0123"
    >>> monitor.note("member wd=1.0: complete")
    >>> monitor.notes
    ['member wd=1.0: complete']

A status is shown as the bar's postfix, ``key=value`` pairs in the order given; a float (or a
0-dimensional tensor) is written with 3 significant digits, anything else as ``str`` does.
"""

from __future__ import annotations

import importlib.util
import numbers
import sys
from typing import Any


def format_status(status: dict[str, Any]) -> str:
    """The postfix text for a status: ``"k=v, k=v"`` in the order given, floats (and anything
    with ``.item()``, such as a 0-dimensional tensor) with 3 significant digits, integers and
    everything else as ``str`` writes them."""
    return ", ".join(f"{key}={_compact(value)}" for key, value in status.items())


def _compact(value: Any) -> str:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{float(value):.3g}"
    return str(value)


class Bar:
    """One progress bar, opened by `Monitor.bar`: ``advance`` moves it on (and may update the
    status), ``status`` only updates the status, ``close`` ends it (a closed bar ignores
    further calls; closing twice is harmless). Also a context manager that closes it on exit.
    This base class shows nothing: it is what a silent monitor hands out (``shown`` is False,
    so a caller can skip work whose only use is the status)."""

    shown = False

    def __init__(self, desc: str = "", total: int | None = None):
        self.desc, self.total = desc, total
        self.closed = False

    def advance(self, n: int = 1, **status: Any) -> None:
        """Count n more units done; a status given replaces the one shown."""
        if not self.closed:
            self._advance(n, status)

    def status(self, **status: Any) -> None:
        """Replace the status shown (e.g. ``loss=0.12``) without moving the bar."""
        if not self.closed:
            self._status(status)

    def close(self) -> None:
        """End the bar (idempotent)."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # what a subclass shows; the public methods above keep the closed-bar policy in one place
    def _advance(self, n: int, status: dict[str, Any]) -> None:
        pass

    def _status(self, status: dict[str, Any]) -> None:
        pass

    def _close(self) -> None:
        pass


class Monitor:
    """Where progress goes. ``bar`` opens a `Bar` (``total`` None for an unknown length,
    ``initial`` for work already done, as when a run resumes); ``note`` reports one line (e.g.
    ``"member x: complete"``). This base class shows nothing (`SILENT` is one); subclasses
    decide where bars and notes go."""

    def bar(self, total: int | None, desc: str, unit: str = "it", initial: int = 0) -> Bar:
        """Open a progress bar of ``total`` units (None: unknown) named ``desc``."""
        return Bar(desc, total)

    def note(self, text: str) -> None:
        """Report a one-line message."""


SILENT = Monitor()
"""The monitor that shows nothing (``progress=False``)."""


class _TqdmBar(Bar):
    """A Bar drawn by a tqdm instance (terminal or notebook widget)."""

    shown = True

    def __init__(self, bar, desc: str, total: int | None):
        super().__init__(desc, total)
        self._bar = bar

    def _advance(self, n: int, status: dict[str, Any]) -> None:
        if status:
            self._bar.set_postfix_str(format_status(status), refresh=False)  # the update below redraws
        self._bar.update(n)

    def _status(self, status: dict[str, Any]) -> None:
        self._bar.set_postfix_str(format_status(status))

    def _close(self) -> None:
        self._bar.close()


class Console(Monitor):
    """The shell's monitor: tqdm bars on stderr when ``bars`` is True (as training has always
    drawn them: redrawn at most twice a second, as wide as the terminal), none otherwise; notes
    as lines on stdout, written so that they do not break a bar being drawn."""

    def __init__(self, bars: bool = True):
        self.bars = bars

    def bar(self, total: int | None, desc: str, unit: str = "it", initial: int = 0) -> Bar:
        """A tqdm bar on stderr, or a silent one when bars are off."""
        if not self.bars:
            return Bar(desc, total)
        from tqdm import tqdm

        return _TqdmBar(tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=0.5,
                             dynamic_ncols=True, file=sys.stderr), desc, total)

    def note(self, text: str) -> None:
        """The line on stdout (bars on stderr are cleared and redrawn around it)."""
        if self.bars:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stdout)
            sys.stdout.flush()
        else:
            print(text, file=sys.stdout, flush=True)


class Notebook(Monitor):
    """The notebook's monitor: tqdm's ipywidgets bars in the cell, notes printed into the
    cell's output."""

    def bar(self, total: int | None, desc: str, unit: str = "it", initial: int = 0) -> Bar:
        """A tqdm.notebook widget bar."""
        from tqdm.notebook import tqdm

        return _TqdmBar(tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=0.5), desc, total)

    def note(self, text: str) -> None:
        """The line, printed into the cell's output."""
        print(text, flush=True)


class _RecordedBar(Bar):
    shown = True

    def __init__(self, events: list[tuple], desc: str, total: int | None):
        super().__init__(desc, total)
        self._events = events
        self.n = 0

    def _advance(self, n: int, status: dict[str, Any]) -> None:
        self.n += n
        self._events.append(("advance", self.desc, n, dict(status)))

    def _status(self, status: dict[str, Any]) -> None:
        self._events.append(("status", self.desc, dict(status)))

    def _close(self) -> None:
        self._events.append(("close", self.desc))


class Recorder(Monitor):
    """A monitor that shows nothing and keeps every event in ``events``, in order:
    ``("bar", desc, total)``, ``("advance", desc, n, status)``, ``("status", desc, status)``,
    ``("note", text)`` and ``("close", desc)`` (a bar's close is recorded once). ``notes`` lists
    the notes' texts."""

    def __init__(self):
        self.events: list[tuple] = []

    def bar(self, total: int | None, desc: str, unit: str = "it", initial: int = 0) -> Bar:
        """A bar that records what is done to it."""
        self.events.append(("bar", desc, total))
        return _RecordedBar(self.events, desc, total)

    def note(self, text: str) -> None:
        """Record the note."""
        self.events.append(("note", text))

    @property
    def notes(self) -> list[str]:
        """The notes' texts, in order."""
        return [event[1] for event in self.events if event[0] == "note"]


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel that can show widgets: IPython is already
    imported, its shell is a ZMQInteractiveShell (a terminal IPython is not), and ipywidgets is
    installed. IPython is not imported here when nothing imported it yet: then there is no kernel."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    if shell is None or not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return False
    return _widgets_installed()


def _widgets_installed() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def resolve(progress: bool | Monitor | None) -> Monitor:
    """The monitor for a ``progress=`` argument: False or None gives `SILENT`, a `Monitor` is
    used as it is, True gives `Notebook` inside a Jupyter kernel with widgets
    (`in_jupyter_kernel`) and otherwise ``Console(bars=sys.stderr.isatty())``."""
    if isinstance(progress, Monitor):
        return progress
    if progress is None or progress is False:
        return SILENT
    if progress is True:
        if in_jupyter_kernel():
            return Notebook()
        return Console(bars=sys.stderr.isatty())
    raise TypeError(f"progress must be True, False, None or a Monitor (got {type(progress).__name__})")
