"""Training a sweep's members in groups: in this process, in worker processes (`workbench.pool`), or on Ray.

On Ray, a group is one task. With a disk every node sees (the default), the task trains the
members' directories in place. Without one (``shared_disk=False``: cloud or Kubernetes clusters),
the driver holds the members' training locks, packs what resuming needs into Ray's object store
(`workbench.store.pack_for_training`), and the task trains a copy in a folder of its own and
returns every file it wrote, which the driver writes into the members' directories, the resume
state last (`workbench.store.write_back`). A task whose node dies is retried (up to 3 times) on
another node from the driver's files, which nothing touched; groups that finished before were
written back and marked complete, and are not trained again. Each member's provenance records
the host and Ray node each session ran on.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from workbench import store
from workbench.errors import UsageError
from workbench.monitor import Monitor
from workbench.monitor import resolve as resolve_monitor
from workbench.pool import error_line, run_jobs
from workbench.sweeps.manifest import Sweep
from workbench.training import PENDING, STOPPED, StopRule, group_configs, padding, pick_device, status_kind, train_group

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
                 pad: tuple[int, int] | None = None, on_ray: bool = False, stop: StopRule | None = None) -> dict[str, str]:
    """Train one group's unfinished members (what a worker process or a Ray task runs; a Ray task
    sets its own thread count, the pool sets its workers')."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return train_group([store.Run(Path(p)) for p in paths], device=device, pad=pad, session=_ray_node() if on_ray else None,
                       stop=stop)


def _train_shipped(packed: dict[str, dict[str, bytes]], device: str, threads: int, pad: tuple[int, int],
                   stop: StopRule | None = None) -> tuple[dict[str, str], dict[str, dict[str, bytes]]]:
    """A Ray task on a node that does not see the driver's disk: train a copy of the group's members
    in a folder of its own; return their statuses and every file training wrote, by member."""
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="workbench-group-") as tmp:
        runs = [store.unpack(Path(tmp) / name, files) for name, files in packed.items()]
        status = train_group(runs, device=device, pad=pad, session=_ray_node(), stop=stop)
        return status, {run.name: store.training_output(run) for run in runs}


def _ray_node() -> dict[str, str]:
    """The Ray node a task runs on, for the members' session records."""
    import ray

    return {"ray_node": ray.get_runtime_context().get_node_id()}


MAX_WORKERS = 256  # local worker processes: more than any machine this runs on has cores
MAX_GROUP = 10_000  # a group of more members than a sweep may have (definition.MAX_MEMBERS)


def check_options(executor: str, workers: int, group_size: int, device: str, shared_disk: bool = True) -> str:
    """Refuse a bad executor, worker count, group size or device (before anything is written);
    returns the device to train on (``auto`` resolved)."""

    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if not shared_disk and executor != "ray":
        raise UsageError("--no-shared-disk is for the ray executor (local workers share this machine's disk); "
                         "add --executor ray")
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1 to {MAX_WORKERS} (processes on this machine), got {workers:,}")
    if not 1 <= group_size <= MAX_GROUP:
        raise UsageError(f"--group-size must be 1 to {MAX_GROUP:,} members, got {group_size:,}")
    if executor == "ray":
        check_ray_address(os.environ.get("RAY_ADDRESS"))
    return str(pick_device(device))


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """`UsageError` unless ``$RAY_ADDRESS`` (host:port, or ray://host:port) answers a TCP connection
    within ``timeout`` s: an unreachable head is said at once, before the sweep folder is written,
    not found by a ``ray.init`` that waits on it. Unset, empty, ``auto`` and ``local`` pass (Ray
    finds or starts its own)."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"RAY_ADDRESS={address!r} is not host:port (e.g. 10.0.0.5:6379, as `ray start --head` prints)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"no Ray head answers at RAY_ADDRESS={address!r} ({exc.strerror or type(exc).__name__}); start "
                         "one with `ray start --head`, or unset RAY_ADDRESS for a local Ray (nothing was written)") from None


def train_sweep(sweep: Sweep, executor: str = "local", workers: int = 1, group_size: int = 8,
                device: str = "cpu", progress: bool | Monitor = True, shared_disk: bool = True,
                stop: StopRule | None = None, extend: bool = False) -> dict[str, str]:
    """Train every pending member in groups; record each group's outcome in the manifest as it ends.
    ``local``: in this process (``workers`` 1) or across ``workers`` processes (`workbench.pool`:
    its threads, Ctrl-C and worker-death policy); ``ray``: one Ray task per group, on
    ``$RAY_ADDRESS`` or a local Ray started for the call. A group that does not finish (a busy
    run, a damaged file, a worker that died) leaves its members pending, with a note naming why;
    the other groups go on. ``progress``: a bar of members trained and a note per member.
    ``shared_disk=False`` (ray only): the members' files travel to the tasks and back through Ray's
    object store (the module docstring). ``stop``: members the forecast finds hopeless are stopped
    (`workbench.training.watch`) and marked ``stopped: forecast (...)``; ``extend``: such members
    are trained on (to their epochs) instead of left as they are."""
    device = check_options(executor, workers, group_size, device, shared_disk)
    monitor = resolve_monitor(progress)
    if extend:
        halted = [m["name"] for m in sweep.members if status_kind(m["status"]) == STOPPED]
        if halted:
            sweep.set_status(dict.fromkeys(halted, PENDING))
            monitor.note(f"sweep {sweep.name!r}: {len(halted)} member(s) stopped by the forecast train on (--extend)")
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
            _train_on_ray(paths, pads, device, finished, unfinished, shared_disk, stop)
        else:
            jobs = [(group, device, None, pad, False, stop) for group, pad in zip(paths, pads, strict=True)]
            with run_jobs(_train_chunk, jobs, workers) as results:
                for result in results:
                    if result.ok:
                        finished(result.value)
                    else:
                        unfinished(paths[result.index], result.error)
    finally:
        bar.close()
    return done


def _train_on_ray(paths: list[list[str]], pads: list[tuple[int, int]], device: str, finished, unfinished,
                  shared_disk: bool = True, stop: StopRule | None = None) -> None:
    """One Ray task per group (1 CPU, or 1 GPU on cuda), on ``$RAY_ADDRESS`` or a local Ray; without
    a shared disk, the members' files travel through the object store (the module docstring)."""
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
    gpu = 1 if device.startswith("cuda") else 0
    inside = "cuda" if gpu else device  # Ray shows a task only its own GPU, as cuda:0
    in_place = ray.remote(num_cpus=1, num_gpus=gpu, max_retries=3)(_train_chunk)
    shipped = ray.remote(num_cpus=1, num_gpus=gpu, max_retries=3)(_train_shipped)
    held: dict[int, ExitStack] = {}  # without a shared disk: the driver holds each shipped group's locks
    try:
        running = {}
        for i, (group, pad) in enumerate(zip(paths, pads, strict=True)):
            if shared_disk:
                running[in_place.remote(group, inside, 1, pad, True, stop)] = i
                continue
            locks = ExitStack()
            try:
                runs = [store.Run(Path(p)) for p in group]
                for run in runs:
                    locks.enter_context(store.training_lock(run))
                packed = ray.put({run.name: store.pack_for_training(run) for run in runs})
            except UsageError as exc:  # a busy member or an unreadable file: this group waits for a rerun
                locks.close()
                unfinished(group, str(exc))
                continue
            held[i] = locks
            running[shipped.remote(packed, inside, 1, pad, stop)] = i
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            i = running.pop(ready[0])
            try:
                result = ray.get(ready[0])
                if not shared_disk:
                    result, outputs = result
                    for p in paths[i]:
                        store.write_back(store.Run(Path(p)), outputs[Path(p).name])
                finished(result)
            except Exception as exc:  # a task that failed for good: its members stay pending for a rerun
                unfinished(paths[i], error_line(exc))
            finally:
                if i in held:
                    held.pop(i).close()
    finally:
        for locks in held.values():
            locks.close()
        if started:
            ray.shutdown()
