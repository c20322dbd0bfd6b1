"""The process pool's policy: results with their indices, one-line errors, dead workers replaced,
thread counts, and no worker process left behind however the consumer stops."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from tests import pool_jobs
from workbench import pool
from workbench.errors import UsageError
from workbench.pool import Done, error_line, run_jobs, worker_threads

ROOT = Path(__file__).resolve().parents[1]


def by_index(results) -> dict[int, Done]:
    out = {}
    for done in results:
        assert done.index not in out, "each job yields exactly one Done"
        out[done.index] = done
    return out


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie that nobody reaps has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_error_line_is_one_line():
    assert error_line(ValueError("first\nsecond")) == "ValueError: first"
    assert error_line(KeyError()) == "KeyError"
    assert error_line(UsageError("unknown probe 'x'; valid: a, b")) == "unknown probe 'x'; valid: a, b"


def test_in_process_keeps_going_and_restores_threads():
    before = torch.get_num_threads()
    jobs = [(3,), (4,)]
    results = by_index(run_jobs(pool_jobs.square, jobs))
    assert {i: d.value for i, d in results.items()} == {0: 9, 1: 16}
    assert all(d.ok for d in results.values())

    failed = by_index(run_jobs(pool_jobs.fail, [("bad\nmore detail",), ("worse",)]))
    assert [failed[i].error for i in range(2)] == ["ValueError: bad", "ValueError: worse"]
    assert not failed[0].ok

    seen = by_index(run_jobs(pool_jobs.threads, [(), ()], threads=3))
    assert [seen[i].value for i in range(2)] == [3, 3]
    assert torch.get_num_threads() == before

    here = by_index(run_jobs(pool_jobs.pid, [()], workers=4))  # one job: no worker is started for it
    assert here[0].value == os.getpid()
    assert multiprocessing.active_children() == []


def test_in_process_lets_keyboard_interrupt_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(run_jobs(interrupted, [(), ()]))


def test_workers_keep_results_errors_and_replace_dead_workers(monkeypatch):
    """One pool run covers the policy: values with their indices, one-line errors, unpicklable
    arguments and results, torch threads, Ctrl-C ignored (while starting and while working), per-worker module state, and workers
    killed by a signal or exiting mid-job (replaced; the later jobs still complete)."""
    calls = [(pool_jobs.calls, ())] * 6  # first, so the two first workers run them all
    rest = [(pool_jobs.fail, ("bad input\ntraceback-ish detail",)), (pool_jobs.misuse, ("no run named 'x'",)),
            (pool_jobs.unpicklable, ()), (pool_jobs.threads, ()), (pool_jobs.interrupt_self, ()),
            (pool_jobs.die_by, (signal.SIGKILL,)), (pool_jobs.exit_with, (3,)), (pool_jobs.square, (lambda: 0,))]
    squares = [(pool_jobs.square, (i,)) for i in range(4)]
    tasks = calls + rest + squares
    real_wait, interrupted = pool.wait, []

    def wait(*args, **kwargs):  # Ctrl-C reaches the workers too, while they are still importing
        if not interrupted:
            interrupted.extend(p.pid for p in multiprocessing.active_children())
            for pid in interrupted:
                os.kill(pid, signal.SIGINT)
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(pool, "wait", wait)
    results = by_index(run_jobs(pool_jobs.call, tasks, workers=2, threads=3))
    assert len(interrupted) == 2

    assert sorted(results) == list(range(len(tasks)))
    per_worker = defaultdict(list)
    for i in range(6):
        worker, count = results[i].value
        per_worker[worker].append(count)
    assert os.getpid() not in per_worker
    assert all(sorted(c) == list(range(1, len(c) + 1)) for c in per_worker.values())  # state persisted
    assert max(len(c) for c in per_worker.values()) >= 3

    errors = {i: results[i].error for i in range(6, 14)}
    assert errors[6] == "ValueError: bad input"
    assert errors[7] == "no run named 'x'"
    assert errors[8].startswith("result could not be sent back: TypeError: cannot pickle")
    assert results[9].ok and results[9].value == 3
    assert results[10].ok and results[10].value == "carried on"
    assert errors[11] == "worker died (signal 9)"
    assert errors[12] == "worker died (exit code 3)"
    assert errors[13].startswith("job could not be sent to a worker: ")
    assert [results[14 + i].value for i in range(4)] == [0, 1, 4, 9]
    assert multiprocessing.active_children() == []


def test_breaking_early_terminates_the_workers():
    started = time.monotonic()
    jobs = [(0.0,), (60.0,), (60.0,), (60.0,)]
    for done in run_jobs(pool_jobs.nap, jobs, workers=2):
        assert done.index == 0
        break
    assert multiprocessing.active_children() == []
    assert time.monotonic() - started < 30


def test_an_interrupt_while_waiting_terminates_the_workers(monkeypatch):
    def interrupted(*args, **kwargs):
        assert len(multiprocessing.active_children()) == 2
        raise KeyboardInterrupt

    monkeypatch.setattr(pool, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt), run_jobs(pool_jobs.nap, [(60.0,)] * 3, workers=2) as results:
        next(results)
    assert multiprocessing.active_children() == []


def test_worker_threads_follow_the_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6}, raising=False)
    assert worker_threads(2) == 3
    assert worker_threads(7) == 1
    assert worker_threads(16) == 1
    assert worker_threads(0) == 7
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert worker_threads(4) == 2


def test_worker_threads_under_taskset():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity on this platform")
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from workbench.pool import worker_threads; print(worker_threads(1), worker_threads(4))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_watchdog_ends_a_worker_whose_parent_died(monkeypatch):
    class Exited(Exception):
        pass

    def exit_(code):
        raise Exited(code)

    monkeypatch.setattr(pool.os, "_exit", exit_)
    with pytest.raises(Exited):
        pool._watch_parent(os.getppid() + 1)  # not our parent: as if ours had died


@pytest.mark.slow
def test_no_orphans_when_the_parent_is_killed(tmp_path):
    """A parent killed with SIGKILL (no cleanup runs) leaves no worker behind: each worker's
    watchdog sees it re-parented and exits."""
    script = textwrap.dedent(f"""
        from tests import pool_jobs
        from workbench.pool import run_jobs
        jobs = [({str(tmp_path)!r}, 60.0), ({str(tmp_path)!r}, 60.0)]
        for done in run_jobs(pool_jobs.record_pid_and_nap, jobs, workers=2):
            pass
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("*.pid"))) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert all(not gone(w) for w in workers)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while not all(gone(w) for w in workers):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.1)
