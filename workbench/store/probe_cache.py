"""The probe cache: which probe rows are still valid for which checkpoint and options."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from workbench.store import files
from workbench.store.formats import DamagedFile, _read_json
from workbench.store.layout import KEY_FREQUENCIES, PROBE_INDEX, PROBE_INDEX_FORMAT, PROBES_DIR, probe_table_path
from workbench.store.run import Run


# ------------------------------------------------------------------------------ probe cache
def _file_hash(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def fingerprint(depends: dict[str, Any]) -> str:
    """A short, stable digest of a JSON-able dict of what a result depends on."""
    return hashlib.blake2b(json.dumps(depends, sort_keys=True).encode(), digest_size=8).hexdigest()


class ProbeCache:
    """What each cached probe row depends on, so that a row is reused only while all of it holds.

    ``probes/index.json`` records, per probe and step, the content hash of the checkpoint the row
    was measured on and the fingerprint of everything else it read (the probe's version, the
    settings it reads, the key frequencies, the engine: the runner builds that dict from the
    probe's spec); the dicts behind the fingerprints are kept beside them, readable. File hashes
    are memoised by (size, mtime) so an unchanged run is not re-read. The cached key frequencies
    (``key_frequencies.json``) are keyed the same way. The index also holds each table's own
    content hash, taken when the index is saved: a table that no longer matches it (truncated,
    edited, another run's) is measured again whole, never trusted in part.

    Example:
        >>> from workbench.store import open_run
        >>> cache, step, depends = ProbeCache(open_run("demo")), 300, {"neuron_threshold": 0.5}
        >>> digest = cache.checkpoint_hash(step)
        >>> cache.is_valid("fourier", step, digest, depends)     # a setting never measured with
        False
        >>> cache.record("fourier", step, digest, depends)       # (save() would write the index)
    """

    def __init__(self, run: Run):
        self.run = run
        self.damaged: list[str] = []  # cache files that could not be read and are being rebuilt
        index = self._load(run.path / PROBES_DIR / PROBE_INDEX)
        if not isinstance(index, dict) or index.get("format") != PROBE_INDEX_FORMAT:
            index = {}
        self._hashes: dict[str, dict] = index.get("hashes", {})
        self._rows: dict[str, dict[str, dict[str, str]]] = index.get("probes", {})
        self._depends: dict[str, dict] = index.get("depends", {})
        self._tables: dict[str, str] = index.get("tables", {}) if isinstance(index.get("tables"), dict) else {}

    def _load(self, path: Path) -> Any:
        try:
            return _read_json(path, "") if path.exists() else None
        except DamagedFile:
            self.damaged.append(str(path))
            return None

    def checkpoint_hash(self, step: int) -> str:
        """The checkpoint's content hash (OSError if it cannot be read). The memo is keyed by size,
        inode, mtime and ctime: a file replaced by another (even one given the same mtime by
        ``cp -p`` or ``rsync -a``) gets a new inode or ctime, and is hashed again."""
        st = self.run.step_path(step).stat()
        stamp = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
        memo = self._hashes.get(str(step))
        if memo and memo.get("stamp") == stamp:
            return memo["hash"]
        digest = self.run.content_hash(step)
        self._hashes[str(step)] = {"stamp": stamp, "hash": digest}
        return digest

    def is_valid(self, probe: str, step: int, checkpoint: str, depends: dict[str, Any]) -> bool:
        """Whether the cached rows of ``probe`` at ``step`` were measured on exactly this
        checkpoint content and these dependencies."""
        return self._rows.get(probe, {}).get(str(step)) == {"checkpoint": checkpoint, "depends": fingerprint(depends)}

    def record(self, probe: str, step: int, checkpoint: str, depends: dict[str, Any]) -> None:
        key = fingerprint(depends)
        self._depends[key] = depends
        self._rows.setdefault(probe, {})[str(step)] = {"checkpoint": checkpoint, "depends": key}

    def keep_only(self, probe: str, steps: set[int]) -> None:
        """Drop the records of every other step (their rows were dropped from the table)."""
        kept = {s: v for s, v in self._rows.get(probe, {}).items() if int(s) in steps}
        if kept or probe in self._rows:
            self._rows[probe] = kept

    def invalidate(self, probes: list[str]) -> None:
        """Save the index without any record of these probes, before their tables are rewritten:
        a write cut off half-way then leaves tables that nothing vouches for, and they are
        measured again, never trusted."""
        if probes:
            held = {p: self._rows.pop(p, {}) for p in probes}
            self.save()
            self._rows.update(held)

    def save(self) -> None:
        used = {entry["depends"] for rows in self._rows.values() for entry in rows.values()}
        tables = {probe: _file_hash(probe_table_path(self.run.path, probe)) for probe, rows in self._rows.items()
                  if rows and probe_table_path(self.run.path, probe).is_file()}
        index = {"format": PROBE_INDEX_FORMAT, "hashes": self._hashes, "probes": self._rows, "tables": tables,
                 "depends": {k: v for k, v in self._depends.items() if k in used}}
        files.write_json(self.run.path / PROBES_DIR / PROBE_INDEX, index)

    def table(self, probe: str):
        """The probe's cached table, or None (absent or damaged: then it is rebuilt). Records of
        steps the table does not hold are dropped: a row is valid only if it is there."""
        path = probe_table_path(self.run.path, probe)
        recorded = self._tables.get(probe)
        try:
            if recorded is not None and path.is_file() and _file_hash(path) != recorded:
                raise DamagedFile(f"{path} is not the table the index recorded")
            table = self.run.probe_table(probe)
        except DamagedFile:
            self.damaged.append(str(path))
            table = None
        self.keep_only(probe, set() if table is None else {int(s) for s in table.step.unique()})
        return table

    @cached_property
    def _key_frequencies(self) -> Any:
        return self._load(self.run.path / PROBES_DIR / KEY_FREQUENCIES)

    def key_frequencies(self, step: int, checkpoint: str, depends: dict[str, Any]) -> dict[str, Any] | None:
        """The cached key frequencies if they were taken from this checkpoint with these dependencies."""
        stored = self._key_frequencies
        if isinstance(stored, dict) and stored.get("step") == step and stored.get("hash") == checkpoint \
                and stored.get("depends") == depends and isinstance(stored.get("by_rule"), dict) and isinstance(stored.get("by_layer"), list):
            return stored
        return None
