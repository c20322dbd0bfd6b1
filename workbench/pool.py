"""The one process pool: every part of the workbench that runs jobs in worker processes uses it.

A job is a tuple of positional arguments for one module-level function; `run_jobs` runs them
and yields a `Done` per job, in completion order, with the job's position in the submitted
sequence, so a caller that needs the submitted order sorts on ``Done.index``.

    >>> import math
    >>> from workbench.pool import run_jobs
    >>> rows = {}
    >>> with run_jobs(math.sqrt, [(4.0,), (-1.0,), (9.0,)], workers=1) as results:
    ...     for done in results:
    ...         rows[done.index] = done.value if done.ok else done.error
    >>> rows
    {0: 2.0, 1: 'ValueError: math domain error', 2: 3.0}

Policy (the same for training groups, probing checkpoints and probing sweep members):

- ``fn`` is a module-level function that a fresh interpreter can import (it and each job's
  arguments are pickled to the workers, its return value back); each job is a tuple of its
  positional arguments. Spawned workers import the parent's ``__main__`` script again, so a
  script that calls `run_jobs` needs the usual ``if __name__ == "__main__":`` guard.
- ``workers <= 1`` or a single job: the jobs run here, one after another, with torch's thread
  count set to ``threads`` while each job runs (default: left as it is) and restored after it.
- Otherwise ``min(workers, len(jobs))`` worker processes, started with the *spawn* context (no
  fork: torch's threads and any open files stay in the parent). A worker ignores SIGINT from
  birth (Ctrl-C reaches the whole process group, but it is the parent's to handle), sets
  ``torch.set_num_threads(threads or worker_threads(workers))`` and runs jobs until none are
  left. A watchdog thread in each worker ends it when the parent process dies, so no orphan
  outlives a killed parent.
- A job that raises an `Exception` yields ``Done(index, error=line)`` with one line naming
  the failure (`error_line`); the other jobs' values are kept and the pool goes on. (In the
  in-process case KeyboardInterrupt propagates: it is the user's, not the job's.)
- A worker that dies in the middle of a job (a signal, ``os._exit``, a segfault, the
  out-of-memory killer) yields ``Done(index, error="worker died (signal 9)")`` or ``"worker
  died (exit code N)"`` for that job, and a new worker is started if jobs remain.
- A job whose arguments cannot be pickled, or whose return value cannot be pickled back,
  yields that job's error, not a crash.
- Ctrl-C (or any exception) in the parent while it waits for results, or the consumer closing
  the results early (``break`` out of a ``for`` over them, `Results.close`, the end of a
  ``with`` block, or an exception in the loop's body, which drops them): queued jobs are
  dropped, the workers are terminated (SIGTERM, a short join, then SIGKILL), and the exception,
  if any, propagates. A terminated job may leave a half-written file: write files whole (to a
  temporary name, then rename). Library code should hold the results in a ``with`` block, so
  that they are closed even where a reference to them outlives the loop (a notebook's global).
  No worker process is left behind: the pool's own ``finally``, an exit hook for results never
  closed, and each worker's watchdog see to it.

Per-worker state: a worker imports the job's module once and runs many jobs, so module-level
globals in that module (an opened run, a built evaluator) persist from one job to the next in
the same worker; key such a cache on what it was built from. In the in-process case that
module is this process's own, so such a cache outlives the call unless the caller clears it.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # registers its own exit hook first, so ours (registered below) runs before it
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from workbench.errors import UsageError

_TERMINATE_WAIT_S = 2.0  # how long terminated workers get to exit before they are killed
_RETIRE_WAIT_S = 5.0  # how long a worker told to stop (all jobs done) gets to exit on its own
_WATCHDOG_INTERVAL_S = 0.5  # how often a worker checks that its parent is still alive


@dataclass(frozen=True)
class Done:
    """The outcome of one job: ``index`` is its position in the submitted sequence; ``value``
    is what ``fn`` returned when it succeeded; ``error`` is one line naming the failure when it
    did not (``None`` means success, so a job may legitimately return ``None``)."""

    index: int
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the job succeeded (``error is None``)."""
        return self.error is None


def error_line(exc: BaseException) -> str:
    """One line naming a failure: a `UsageError`'s own message (it is written for the user);
    otherwise ``"TypeName: first line of the message"`` (just the type name for an empty one)."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if isinstance(exc, UsageError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def worker_threads(workers: int) -> int:
    """Torch threads per worker so that ``workers`` workers share this process's CPUs:
    ``max(1, cpus // workers)``, where cpus is the CPUs this process may run on
    (``os.sched_getaffinity``, which follows taskset and cgroup cpusets; ``os.cpu_count()``
    where that call does not exist)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int = 1, *,
             threads: int | None = None) -> Results:
    """Run ``fn(*job)`` for every job and yield a `Done` per job, in completion order: here
    when ``workers <= 1`` or there is a single job, otherwise in ``min(workers, len(jobs))``
    spawned worker processes (the module docstring gives the whole policy). ``threads`` is
    torch's thread count for each job (default: unchanged here; `worker_threads` in workers).

    Nothing starts until the first result is asked for. The returned `Results` is an iterator
    and a context manager: leaving the loop early (``break``), calling ``close()`` or leaving
    the ``with`` block stops the workers and drops the jobs not yet run."""
    jobs = [tuple(job) for job in jobs]
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be at least 1 (got {threads})")
    if workers <= 1 or len(jobs) <= 1:
        return Results(_here(fn, jobs, threads))
    n = min(workers, len(jobs))
    return Results(_in_workers(fn, jobs, n, threads or worker_threads(workers)))


class Results(Iterator[Done]):
    """The `Done` records of a `run_jobs` call, as they come. Closing it (``close()``, the end
    of a ``with`` block, or its being dropped, as a ``for`` loop left by ``break`` drops it)
    terminates any workers still running and drops the jobs not yet run."""

    def __init__(self, gen: Iterator[Done]):
        self._gen = gen

    def __iter__(self) -> Results:
        return self

    def __next__(self) -> Done:
        return next(self._gen)

    def close(self) -> None:
        """Stop: workers still running are terminated and queued jobs dropped (idempotent)."""
        self._gen.close()

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _here(fn: Callable[..., Any], jobs: list[tuple], threads: int | None) -> Iterator[Done]:
    """The in-process case: one job after another, torch's thread count set around each."""
    torch = _torch() if threads is not None else None
    for index, args in enumerate(jobs):
        before = torch.get_num_threads() if torch else None
        try:
            if torch:
                torch.set_num_threads(threads)
            done = Done(index, fn(*args))
        except Exception as exc:  # one job's failure is that job's result; KeyboardInterrupt is the user's
            done = Done(index, error=error_line(exc))
        finally:
            if torch:
                torch.set_num_threads(before)
        yield done


def _torch():
    """torch, or None where it is not installed (the pool itself does not need it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------------------------------------
# the parent side

_LIVE: set[multiprocessing.process.BaseProcess] = set()  # every worker started and not yet reaped


@atexit.register
def _kill_leftovers() -> None:
    """At interpreter exit, end any worker a never-closed `Results` still holds: otherwise
    multiprocessing's own exit hook would wait forever for a worker waiting for its next job."""
    _stop(list(_LIVE))


def _stop(processes: list) -> None:
    """Terminate the processes, give them a moment, then kill those still there."""
    for proc in processes:
        if proc.exitcode is None:
            proc.terminate()
    deadline = time.monotonic() + _TERMINATE_WAIT_S
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.exitcode is None:
            proc.kill()
            proc.join(_TERMINATE_WAIT_S)
        _LIVE.discard(proc)


def _death(proc) -> str:
    """The error line for a job whose worker died under it."""
    code = proc.exitcode
    if code is not None and code < 0:
        return f"worker died (signal {-code})"
    return f"worker died (exit code {code})"


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while a worker is started: a new process inherits an ignored signal (a
    handler or a blocked mask it does not: Python resets those at start-up), so a Ctrl-C while
    the worker is still importing cannot interrupt it. Only the main thread may do this; from
    another thread the worker is born with Python's default and ignores SIGINT once it runs."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # (None: a handler installed outside Python, which could not be put back)
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class _Worker:
    """One worker process, the parent's end of its pipe and the index of the job it is running."""

    def __init__(self, ctx, threads: int):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid(), threads),
                                   name="workbench-pool-worker")
        with _sigint_ignored():  # the child is born ignoring Ctrl-C (a Ctrl-C in these milliseconds is lost)
            self.process.start()
        _LIVE.add(self.process)
        child.close()  # the worker holds the other end; its death then reads as EOF here
        self.index: int | None = None

    def reap(self) -> None:
        """The worker is gone (or going): wait for its exit code and release the pipe."""
        self.process.join(_TERMINATE_WAIT_S)  # its pipe can close a moment before it exits
        if self.process.exitcode is None:
            _stop([self.process])
        _LIVE.discard(self.process)
        self.conn.close()


class _Pool:
    """The parent's bookkeeping: which workers are idle, which run which job, which are retiring."""

    def __init__(self, fn: Callable[..., Any], jobs: list[tuple], threads: int):
        self.ctx = multiprocessing.get_context("spawn")
        self.fn, self.threads = fn, threads
        self.todo = deque(enumerate(jobs))
        self.idle: list[_Worker] = []
        self.busy: dict[Connection, _Worker] = {}
        self.retiring: list[_Worker] = []

    def start(self, n: int) -> None:
        """Start n workers (all start at once: spawning is mostly waiting for imports)."""
        self.idle.extend(_Worker(self.ctx, self.threads) for _ in range(n))

    def dispatch(self) -> Iterator[Done]:
        """Give each idle worker a job; yield the jobs that could not be sent (their arguments
        do not pickle). A worker with nothing left to do is told to stop."""
        while self.idle:
            worker = self.idle.pop()
            if not self.todo:
                self._retire(worker)
                continue
            index, args = self.todo.popleft()
            try:
                worker.conn.send((index, self.fn, args))
            except OSError:  # it died while idle (killed from outside): the job is not retried blindly
                worker.reap()
                if self.todo:
                    self.start(1)
                yield Done(index, error=f"{_death(worker.process)} before the job started")
                continue
            except Exception as exc:  # send pickles first, so nothing reached the pipe
                self.idle.append(worker)
                yield Done(index, error=f"job could not be sent to a worker: {error_line(exc)}")
                continue
            worker.index = index
            self.busy[worker.conn] = worker

    def collect(self) -> Iterator[Done]:
        """Wait until at least one busy worker has finished (or died) and yield its jobs."""
        sentinels = {w.process.sentinel: w for w in self.busy.values()}
        ready = wait([*self.busy, *sentinels])
        finished = {self.busy[r] if r in self.busy else sentinels[r] for r in ready}
        for worker in finished:
            yield self._receive(worker)

    def _receive(self, worker: _Worker) -> Done:
        """The result a worker sent, or its death, for the job it was running."""
        index = worker.index
        del self.busy[worker.conn]
        worker.index = None
        try:
            if worker.conn.poll():  # a result sent just before dying still counts
                _, value, error = worker.conn.recv()
                self.idle.append(worker)
                return Done(index, value, error)
        except (EOFError, OSError):
            pass  # the pipe closed under the read: the worker died
        except Exception as exc:  # it arrived but cannot be unpickled here; the worker is fine
            self.idle.append(worker)
            return Done(index, error=f"result could not be read back: {error_line(exc)}")
        worker.reap()
        if self.todo:
            self.start(1)
        return Done(index, error=_death(worker.process))

    def _retire(self, worker: _Worker) -> None:
        try:
            worker.conn.send(None)
        except OSError:
            pass
        self.retiring.append(worker)

    def workers(self) -> list[_Worker]:
        return [*self.idle, *self.busy.values(), *self.retiring]

    def finish(self) -> None:
        """All jobs done: let the retiring workers exit on their own, terminate any that do not."""
        deadline = time.monotonic() + _RETIRE_WAIT_S
        for worker in self.retiring:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        self.abort()

    def abort(self) -> None:
        """Drop the queued jobs and terminate every worker still there."""
        self.todo.clear()
        workers = self.workers()
        _stop([w.process for w in workers])
        for worker in workers:
            worker.conn.close()
        self.idle, self.busy, self.retiring = [], {}, []


def _in_workers(fn: Callable[..., Any], jobs: list[tuple], n: int, threads: int) -> Iterator[Done]:
    """The worker-process case (the parent's loop)."""
    pool = _Pool(fn, jobs, threads)
    try:
        pool.start(n)
        while True:
            yield from pool.dispatch()
            if not pool.busy:
                break
            yield from pool.collect()
    except BaseException:  # Ctrl-C or any error while waiting, or GeneratorExit: the results were closed early
        pool.abort()
        raise
    else:
        pool.finish()
    finally:
        pool.abort()  # a no-op after either of the above; here in case they themselves failed


# ---------------------------------------------------------------------------------------------
# the worker side


def _watch_parent(parent: int) -> None:
    """End this worker when its parent dies (it is re-parented, so getppid changes)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(_WATCHDOG_INTERVAL_S)


def _worker_main(conn: Connection, parent: int, threads: int) -> None:
    """A worker's life: ignore Ctrl-C, set torch's threads, run jobs until told to stop (None)
    or until the parent goes away, answering each with ``(index, value, None)`` or
    ``(index, None, error_line)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watchdog", daemon=True).start()
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    while True:
        index = None
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed the pipe
        try:
            message = pickle.loads(data)
            if message is None:
                return
            index, fn, args = message
            reply = (index, fn(*args), None)
        except Exception as exc:  # the job's failure (or its function failing to import here)
            reply = (index, None, error_line(exc))
        try:
            conn.send(reply)
        except OSError:
            return  # the parent is gone
        except Exception as exc:  # the value does not pickle: pickling happens before anything is written
            conn.send((index, None, f"result could not be sent back: {error_line(exc)}"))
