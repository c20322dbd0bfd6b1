"""A sweep directory (`Sweep`) and its manifest: the resolved definition and each member's status."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import store
from workbench.errors import UsageError
from workbench.store import MANIFEST, MANIFEST_FORMAT, TABLE
from workbench.sweeps.definition import SweepDefinition, definition_names
from workbench.training import COMPLETE, PENDING, check_fits, free_disk, needs, start_run


class Sweep:
    """A sweep on disk: ``<root>/<name>/`` with its manifest and one run directory per member."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, members={len(self.manifest['members'])}, path='{self.path}')"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise store.DamagedFile(f"{path} cannot be read ({exc}); restore it, or move the sweep directory "
                                    "away and run the sweep again") from None

    @property
    def definition(self) -> SweepDefinition:
        return SweepDefinition(**self.manifest["definition"])

    @property
    def members(self) -> list[dict[str, Any]]:
        """The manifest's members: name, values, status."""
        return self.manifest["members"]

    def run(self, member: str) -> store.Run:
        return store.open_run(self.path / member)

    def runs(self, status: str | None = COMPLETE) -> list[store.Run]:
        """The members' runs (only those with ``status``; None: all that exist)."""
        return [store.Run(self.path / m["name"]) for m in self.members
                if (status is None or m["status"] == status) and (self.path / m["name"] / store.CONFIG).is_file()]

    @property
    def table(self):
        """The tidy table of members and outcomes (`probe_sweep` writes it)."""
        import pandas as pd

        path = self.path / TABLE
        if not path.is_file():
            raise UsageError(f"sweep {self.name!r} has not been probed yet; run `make sweep SWEEP={self.name}` "
                             "(or workbench.probe_sweep)")
        return pd.read_csv(path, dtype={"key_freqs": str})  # "24" stays the text of a set, not a number

    def set_status(self, statuses: Mapping[str, str]) -> None:
        manifest = self.manifest
        for m in manifest["members"]:
            if m["name"] in statuses:
                m["status"] = statuses[m["name"]]
        store.write_json(self.path / MANIFEST, manifest)


def sweep_path(name: str, root: Path | None = None) -> Path:
    return store.run_path(name, root)


def open_sweep(name_or_path: str | Path, root: Path | None = None) -> Sweep:
    path = store.resolve_run_path(name_or_path, root)
    if not (path / MANIFEST).is_file():
        raise UsageError(f"no sweep at {path}; run one with `make sweep SWEEP=<name>` "
                         f"(shipped: {', '.join(definition_names())})")
    return Sweep(path)


# what a definition may change without making it another sweep: neither changes a member's weights
NOT_TRAINED = ("probes", "description")


def _trained_part(definition: dict | None) -> dict | None:
    """A definition without `NOT_TRAINED`: two that agree on it train the same members."""
    return None if definition is None else {k: v for k, v in definition.items() if k not in NOT_TRAINED}


def prepare(definition: SweepDefinition, root: Path | None = None) -> Sweep:
    """Validate every member, then create the sweep directory, manifest and member runs that do
    not exist yet. Refuses a sweep name already used by a different definition (one that differs
    only in its probes or description is the same sweep, and the manifest takes the new ones), and a member
    directory whose config differs from its member's."""

    members = definition.members()  # every config validated before anything is written
    path = sweep_path(definition.name, root)
    for config in {m.config: None for m in members}:  # each distinct config once: memory, then all members' disk
        check_fits(config, path.parent, what=f"a member of sweep {definition.name!r}")
    disk = sum(needs(m.config).disk for m in members if not (path / m.name / store.CONFIG).is_file())
    free = free_disk(path)
    if disk > free:
        raise UsageError(f"sweep {definition.name!r} needs about {disk / 2**30:,.1f} GiB of disk for its members' "
                         f"checkpoints, more than is free under {path.parent} ({free / 2**30:,.1f} GiB); free space, "
                         "or checkpoint less often (ckpt_every, ckpt_log)")
    manifest_path = path / MANIFEST
    old = None
    if manifest_path.is_file():
        old = Sweep(path).manifest
        if _trained_part(old.get("definition")) != _trained_part(json.loads(json.dumps(definition.to_dict()))):
            raise UsageError(f"sweep {definition.name!r} already exists at {path} with a different definition; "
                             "use another name (--name) or move it away")
        statuses = {m["name"]: m["status"] for m in old["members"]}
    elif path.exists() and any(path.iterdir()):
        raise UsageError(f"{path} exists and is not a sweep; choose another name (--name)")
    else:
        statuses = {}
    for m in members:
        run_dir = path / m.name
        if (run_dir / store.CONFIG).is_file() and store.Run(run_dir).config != m.config:
            raise UsageError(f"{run_dir} holds a run with another config than member {m.name!r}; move it away")
    path.mkdir(parents=True, exist_ok=True)
    manifest = {"format": MANIFEST_FORMAT, "name": definition.name, "definition": definition.to_dict(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "members": [{"name": m.name, "values": m.values, "status": statuses.get(m.name, PENDING)}
                            for m in members]}
    if old is not None:
        manifest["created"] = old.get("created", manifest["created"])
    store.write_json(manifest_path, manifest)
    created = []
    for m in members:
        if not (path / m.name / store.CONFIG).is_file():
            start_run(path / m.name, m.config)
            created.append(m.name)
    sweep = Sweep(path)
    # the manifest's word is checked against each member's own files: a folder made anew, or one
    # replaced by a copy that is not complete, is a member to train again, whatever the manifest said
    stale = [m.name for m in members if statuses.get(m.name) == COMPLETE and not store.Run(path / m.name).is_complete]
    if created or stale:
        sweep.set_status(dict.fromkeys(created + stale, PENDING))
    return sweep
