"""Training a sweep's members in groups: in this process, in worker processes (`workbench.pool`), or on Ray."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from workbench import store
from workbench.errors import UsageError
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.pool import error_line, run_jobs
from workbench.sweeps.manifest import Sweep
from workbench.training import PENDING, STOPPED, group_configs, padding, pick_device, train_group

EXECUTORS = ("local", "ray")


def chunks(sweep: Sweep, group_size: int) -> list[list[str]]:
    """Every member in its training group: members sharing every shape (`batched.group_key`),
    ordered by training-set size and cut into near-equal consecutive parts of at most
    ``group_size``. A function of the definition alone (finished and failed members keep their
    place), so every executor and every rerun trains the same groups with the same padding,
    and writes the same bits."""

    names = [m["name"] for m in sweep.members]
    runs = [store.Run(sweep.path / n) for n in names]
    out = []
    for idx in group_configs([r.config for r in runs]):
        # by training-set size, so that a group pads its members' sets as little as possible
        idx = sorted(idx, key=lambda i: (len(runs[i].split.train), i))
        n_parts = math.ceil(len(idx) / group_size)
        bounds = [round(k * len(idx) / n_parts) for k in range(n_parts + 1)]
        out += [[names[i] for i in idx[a:b]] for a, b in zip(bounds, bounds[1:], strict=False)]
    return out


def _train_chunk(paths: Sequence[str], device: str, threads: int | None = None,
                 pad: tuple[int, int] | None = None) -> dict[str, str]:
    """Train one group's unfinished members (what a worker process or a Ray task runs; a Ray task
    sets its own thread count, the pool sets its workers')."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return train_group([store.Run(Path(p)) for p in paths], device=device, pad=pad)


def check_options(executor: str, workers: int, group_size: int, device: str) -> str:
    """Refuse a bad executor, worker count, group size or device (before anything is written);
    returns the device to train on (``auto`` resolved)."""

    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if group_size < 1:
        raise UsageError(f"--group-size must be at least 1, got {group_size}")
    return str(pick_device(device))


def train_sweep(sweep: Sweep, executor: str = "local", workers: int = 1, group_size: int = 8,
                device: str = "cpu", progress: bool | Monitor = True) -> dict[str, str]:
    """Train every pending member in groups; record each group's outcome in the manifest as it ends.
    ``local``: in this process (``workers`` 1) or across ``workers`` processes (`workbench.pool`:
    its threads, Ctrl-C and worker-death policy); ``ray``: one Ray task per group, on
    ``$RAY_ADDRESS`` or a local Ray started for the call. A group that does not finish (a busy
    run, a damaged file, a worker that died) leaves its members pending, with a note naming why;
    the other groups go on. ``progress``: a bar of members trained and a note per member."""
    device = check_options(executor, workers, group_size, device)
    monitor = resolve_monitor(progress)
    pending = {m["name"] for m in sweep.members if m["status"] == PENDING}
    groups, pads = [], []
    for chunk in chunks(sweep, group_size):
        todo = [n for n in chunk if n in pending]
        if todo:
            groups.append(todo)
            pads.append(padding([store.Run(sweep.path / n) for n in chunk]))
    paths = [[str(sweep.path / n) for n in g] for g in groups]
    done: dict[str, str] = {}
    n = sum(len(g) for g in groups)
    monitor.note(f"sweep {sweep.name!r}: {n} member(s) to train in {len(groups)} group(s) ({executor})")
    bar = monitor.bar(n, f"train {sweep.name}", unit="member")

    def finished(status: dict[str, str]) -> None:
        done.update(status)
        sweep.set_status({n: s for n, s in status.items() if s != STOPPED})
        for n, s in status.items():
            monitor.note(f"  {sweep.name}/{n}: {s}")
        bar.advance(len(status))

    def unfinished(group: list[str], why: str) -> None:
        monitor.note(f"  group {[Path(p).name for p in group]} did not finish ({why}); its members stay "
                     "pending: run the sweep again to resume them")
        bar.advance(len(group))

    try:
        if executor == "ray":
            _train_on_ray(paths, pads, device, finished, unfinished)
        else:
            jobs = [(group, device, None, pad) for group, pad in zip(paths, pads, strict=True)]
            with run_jobs(_train_chunk, jobs, workers) as results:
                for result in results:
                    if result.ok:
                        finished(result.value)
                    else:
                        unfinished(paths[result.index], result.error)
    finally:
        bar.close()
    return done


def _train_on_ray(paths: list[list[str]], pads: list[tuple[int, int]], device: str, finished, unfinished) -> None:
    """One Ray task per group (1 CPU, or 1 GPU on cuda), on ``$RAY_ADDRESS`` or a local Ray."""
    try:
        import ray
    except ImportError:
        raise UsageError("the ray executor needs Ray: `make setup` installs it (pip install 'ray>=2.40')") from None
    started = False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a lab machine
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count() or 1}))
        started = True
    try:
        gpu = 1 if device.startswith("cuda") else 0
        task = ray.remote(num_cpus=1, num_gpus=gpu, max_retries=3)(_train_chunk)
        inside = "cuda" if gpu else device  # Ray shows a task only its own GPU, as cuda:0
        running = {task.remote(group, inside, 1, pad): group for group, pad in zip(paths, pads, strict=True)}
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            group = running.pop(ref)
            try:
                finished(ray.get(ref))
            except Exception as exc:  # a task that failed for good: its members stay pending for a rerun
                unfinished(group, error_line(exc))
    finally:
        if started:
            ray.shutdown()
