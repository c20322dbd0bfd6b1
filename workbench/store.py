"""The run store: the one module that knows the run-directory layout and every format in it.

A run lives in ``<root>/<RUN>/`` (root: ``checkpoints/`` by default) and describes itself; it
contains no pickles::

    config.json               the resolved RunConfig, written once when the run is created
    provenance.json           package versions, git commit, and one entry per training session
                              (device, steps covered, wall time)
    split.safetensors         the train/test split itself: ``train`` [n_train], ``test`` [n_test]
                              indices into the task's inputs (a-major order); with label noise
                              also ``train_labels`` [n_train], the labels training fits
    metrics.jsonl             append-only: one JSON object per evaluation
                              (step, train_loss, train_acc, test_loss, test_acc, lr, wall_s)
    steps/step_0001200.safetensors
                              one file per checkpoint: the model's state dict (names from
                              `workbench.model`), metadata ``step``
    state.safetensors         what resuming needs (`ResumeState`): ``weights/<name>``,
                              ``adam/<exp_avg|exp_avg_sq|step>/<name>``, ``rng/torch``, and with a
                              Grokfast filter ``grad_filter/<name>``; metadata ``step``
    probes/<probe>.csv        tidy probe tables (`make probe`)
    probes/settings.json      the probe options the tables were made with (`ProbeOptions`)
    probes/index.json         the probe cache (`ProbeCache`): what each row depends on
    probes/key_frequencies.json, probes/phases.json
    report/                   figures and index.html (`make report`)

Every file is written atomically with the user's permissions (`workbench.files`), and a new
run is assembled in a hidden folder and renamed into place, so a crash at any moment leaves only
complete files. Hidden names (leading ``.``) are never read as data.

A file the store cannot read is named in a one-line `DamagedFile` error (a `UsageError`: the CLI
exits 2) that says what the user can do; nothing is overwritten. A damaged checkpoint is a
`CorruptCheckpoint`, which the probe runner skips and names. The probe cache is derived data: a
damaged cache file is set aside and its results recomputed (`ProbeCache.damaged` says which).

Example:
    >>> run = open_run("demo")                 # or open_run("demo", root=Path("elsewhere"))
    >>> run.steps[:3], run.metrics.tail(1)
    >>> run.weights(run.steps[-1])              # {state-dict name: tensor}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from workbench import files
from workbench.config import RunConfig, from_dict
from workbench.errors import UsageError
from workbench.tasks import Dataset, Split, make_dataset

CONFIG = "config.json"
PROVENANCE = "provenance.json"
SPLIT = "split.safetensors"
METRICS = "metrics.jsonl"
STATE = "state.safetensors"
STEPS_DIR = "steps"
PROBES_DIR = "probes"
REPORT_DIR = "report"
REPORT_PAGE = "index.html"
LOCK = ".lock"
# inside PROBES_DIR
PROBE_INDEX = "index.json"
PROBE_OPTIONS = "settings.json"
KEY_FREQUENCIES = "key_frequencies.json"
PHASES = "phases.json"
PROBE_INDEX_FORMAT = 2  # bump when the index layout changes: an older index is recomputed once
_STEP_FILE = re.compile(r"^step_(\d{7,})\.safetensors$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_TENSOR_ERRORS = (SafetensorError, OSError, ValueError, KeyError)


def default_root() -> Path:
    """``checkpoints/`` of this source tree (an editable install), else of the working directory.
    (The CLI also honours ``$WORKBENCH_CHECKPOINTS``; the library takes ``root`` arguments.)"""
    tree = Path(__file__).resolve().parents[1]
    if (tree / "pyproject.toml").is_file():
        return tree / "checkpoints"
    return Path.cwd() / "checkpoints"


def check_run_name(name: str) -> str:
    """A run name is one plain folder name: letters, digits, ``_ . -``; no ``/`` or ``..``."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise UsageError(
            f"invalid run name {name!r}: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no '/' or '..', at most 100 characters)"
        )
    return name


def step_filename(step: int) -> str:
    return f"step_{step:07d}.safetensors"


# ------------------------------------------------------------------------------------ errors
class DamagedFile(UsageError):
    """A run file that exists but cannot be read: the message names it, says what is wrong and
    what the user can do."""


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated, corrupted, wrong model)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json(path: Path, advice: str) -> Any:
    """The JSON in ``path``; `DamagedFile` naming it (with ``advice``) if it is not JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} is damaged (not JSON: {_first_line(exc)}); {advice}") from None


def _load_tensors(path: Path, advice: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except _TENSOR_ERRORS as exc:
        raise DamagedFile(f"{path} is damaged (unreadable safetensors: {_first_line(exc)}); {advice}") from None


def _metadata(path: Path, key: str) -> str:
    with safe_open(path, "pt") as f:
        return f.metadata()[key]


# ------------------------------------------------------------------------------- basic files
def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write (tensors are made contiguous CPU copies first)."""
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    files.atomic_write(path, lambda tmp: save_file(data, tmp, metadata=metadata))


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    files.append_line(run_dir / METRICS, json.dumps(row, sort_keys=True))


def rewrite_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    files.write_text(run_dir / METRICS, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def truncate_metrics(run_dir: Path, start: int) -> None:
    """Before a session resumes at ``start``: drop the metrics an interrupted process logged at or
    after it (they are recomputed identically) and any torn last line."""
    path = run_dir / METRICS
    rows = read_jsonl(path)
    if any(r["step"] >= start for r in rows) or (path.exists() and len(rows) != len(path.read_text(errors="replace").splitlines())):
        rewrite_metrics(run_dir, [r for r in rows if r["step"] < start])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete rows; a torn line (a crash mid-append) is ignored."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def probe_table_path(run_dir: Path, probe: str) -> Path:
    return run_dir / PROBES_DIR / f"{probe}.csv"


def write_table(path: Path, frame) -> None:
    """A tidy table as CSV, atomically (readers never see a torn table)."""
    files.write_text(path, frame.to_csv(index=False))


def read_table(path: Path):
    """The tidy table at ``path`` (integer keys as ``Int64``), None if absent; `DamagedFile` if
    it cannot be parsed."""
    import pandas as pd

    from probes.table import with_key_types

    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
        if "step" not in frame or "value" not in frame:
            raise ValueError("no step or value column")
        return with_key_types(frame)
    except (ValueError, TypeError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DamagedFile(f"{path} is damaged ({_first_line(exc)}); delete it and probe again") from None


# ----------------------------------------------------------------------------- reading a run
class Run:
    """A run directory, read lazily. Safe to open while training appends to it."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({self.name!r}, steps={len(self.steps)}, path='{self.path}')"

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def config(self) -> RunConfig:
        path = self.path / CONFIG
        values = _read_json(path, "restore it from a copy of this run (it is written once, at creation), or train a new run")
        if not isinstance(values, dict):
            raise DamagedFile(f"{path} is damaged (not a JSON object); restore it from a copy of this run, or train a new run")
        return from_dict(values)

    @property
    def provenance(self) -> dict[str, Any]:
        path = self.path / PROVENANCE
        advice = "restore it from a copy of this run; the checkpoints are unaffected"
        prov = _read_json(path, advice)
        if not isinstance(prov, dict) or not isinstance(prov.get("sessions"), list):
            raise DamagedFile(f"{path} is damaged (not an object with a list of sessions); {advice}")
        return prov

    @property
    def steps(self) -> list[int]:
        """Checkpoint steps present on disk, sorted."""
        folder = self.path / STEPS_DIR
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for m in map(_STEP_FILE.match, (e.name for e in folder.iterdir())) if m)

    def step_path(self, step: int) -> Path:
        return self.path / STEPS_DIR / step_filename(step)

    @property
    def metrics_rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / METRICS)

    @property
    def metrics(self):
        """A ``pandas.DataFrame``, one row per evaluation: step, train/test loss and accuracy, lr."""
        import pandas as pd

        rows = self.metrics_rows
        columns = ["step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_s"]
        frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
        return frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)

    @property
    def last_metrics(self) -> dict[str, Any] | None:
        """The latest evaluation row, or None before the first."""
        rows = self.metrics_rows
        return rows[-1] if rows else None

    @cached_property
    def dataset(self) -> Dataset:
        """Every input of the task: ``tokens`` [n, 3], ``labels`` [n]."""
        cfg = self.config
        return make_dataset(cfg.operation, cfg.p, cfg.table_seed)

    @cached_property
    def split(self) -> Split:
        path = self.path / SPLIT
        tensors = _load_tensors(path, "restore it from a copy of this run (it is written once, at creation)")
        if not {"train", "test"} <= set(tensors) <= {"train", "test", "train_labels"}:
            raise DamagedFile(f"{path} is damaged (expected tensors train and test); restore it from a copy of this run")
        return Split(train=tensors["train"], test=tensors["test"], train_labels=tensors.get("train_labels"))

    @property
    def final_step(self) -> int:
        return self.config.epochs

    @property
    def state_step(self) -> int | None:
        """The step training would resume from (None before the first state is written)."""
        path = self.path / STATE
        if not path.exists():
            return None
        try:
            return int(_metadata(path, "step"))
        except (*_TENSOR_ERRORS, TypeError) as exc:
            raise DamagedFile(f"{path} is damaged ({_first_line(exc)}); {self.reset_advice()}") from None

    @property
    def is_complete(self) -> bool:
        return self.state_step == self.final_step

    def reset_advice(self) -> str:
        """What to do about a damaged resume state."""
        return (f"resume from the last good checkpoint with `python -m workbench train {self.name} --from-last-checkpoint` "
                f"(make train RUN={self.name} FROM_CHECKPOINT=1; the optimiser restarts its moments there)")

    def weights(self, step: int) -> dict[str, torch.Tensor]:
        """The state dict saved at ``step``; `CorruptCheckpoint` names an unreadable file."""
        path = self.step_path(step)
        if not path.exists():
            steps = self.steps
            have = f"it has {len(steps)} steps from {steps[0]} to {steps[-1]}" if steps else "it has no checkpoints"
            raise UsageError(f"run {self.name!r} has no checkpoint at step {step}; {have}")
        try:
            return load_file(path)
        except _TENSOR_ERRORS as exc:
            raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({_first_line(exc)})") from exc

    def content_hash(self, step: int) -> str:
        """blake2b (128 bits) of the checkpoint file."""
        return hashlib.blake2b(self.step_path(step).read_bytes(), digest_size=16).hexdigest()

    def probe_table(self, probe: str):
        """The probe's tidy table (a DataFrame), or None before `make probe`."""
        return read_table(probe_table_path(self.path, probe))

    def _probe_json(self, name: str) -> Any:
        path = self.path / PROBES_DIR / name
        return _read_json(path, "delete it and probe again") if path.exists() else None

    @property
    def key_frequencies(self) -> dict[str, Any] | None:
        return self._probe_json(KEY_FREQUENCIES)

    @property
    def phases(self) -> dict[str, Any] | None:
        """The ``phases.json`` dict: steps, criteria, key_freqs (None before `make probe`)."""
        return self._probe_json(PHASES)

    @property
    def probe_options(self) -> dict[str, Any] | None:
        """The probe options the run was last probed with (``settings.json``), or None."""
        path = self.path / PROBES_DIR / PROBE_OPTIONS
        if not path.exists():
            return None
        advice = "delete it to probe with the default settings, or give the settings again with SET="
        options = _read_json(path, advice)
        if not isinstance(options, dict) or not isinstance(options.get("settings"), dict):
            raise DamagedFile(f"{path} is damaged (not an object with settings); {advice}")
        return options


# ---------------------------------------------------------------------------- writing a run
def run_path(name: str, root: Path | None = None) -> Path:
    return Path(root if root is not None else default_root()) / check_run_name(name)


def create_run(path: Path, cfg: RunConfig, provenance: dict[str, Any], split: Split, state: ResumeState,
               fill: Callable[[Run], None] | None = None) -> Run:
    """Assemble a new run in a hidden folder and rename it into place (all or nothing).

    ``fill``, if given, writes more of the run (checkpoints, metrics: an import) into the hidden
    folder's `Run` before the rename; if it raises, nothing appears at ``path``."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.make_private_temp_dir(path.parent, f".{path.name}.creating.")
    try:
        (tmp / STEPS_DIR).mkdir()
        files.write_json(tmp / CONFIG, cfg.to_dict())
        files.write_json(tmp / PROVENANCE, provenance)
        noisy = {} if split.train_labels is None else {"train_labels": split.train_labels}
        write_tensors(tmp / SPLIT, {"train": split.train, "test": split.test, **noisy})
        write_state(tmp, state)
        if fill is not None:
            fill(Run(tmp))
        try:
            tmp.rename(path)
        except OSError:
            raise UsageError(f"run {path.name!r} was created by another process meanwhile; run again to resume it") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(path)


def write_provenance(run: Run, provenance: dict[str, Any]) -> None:
    files.write_json(run.path / PROVENANCE, provenance)


def write_checkpoint(run: Run, step: int, weights: dict[str, torch.Tensor]) -> None:
    write_tensors(run.step_path(step), weights, {"step": str(step)})


@dataclass
class ResumeState:
    """What resuming needs: the step, the weights, AdamW's state per parameter name
    (``{name: {"exp_avg": t, "exp_avg_sq": t, "step": t}}``; empty before the first update) and
    torch's RNG state; ``grad_filter``: the state of a Grokfast filter (`workbench.variants`)."""

    step: int
    weights: dict[str, torch.Tensor]
    adam: dict[str, dict[str, torch.Tensor]]
    rng: torch.Tensor
    grad_filter: dict[str, torch.Tensor] = field(default_factory=dict)  # Grokfast's filter state, by weight name


def write_state(run_dir: Path, state: ResumeState) -> None:
    tensors = {f"weights/{k}": v for k, v in state.weights.items()}
    for name, moments in state.adam.items():
        for key, value in moments.items():
            tensors[f"adam/{key}/{name}"] = value.reshape(-1) if key == "step" else value
    tensors["rng/torch"] = state.rng
    tensors.update({f"grad_filter/{k}": v.contiguous() for k, v in state.grad_filter.items()})
    write_tensors(run_dir / STATE, tensors, {"step": str(state.step)})


def read_state(run: Run) -> ResumeState:
    """The resume state; `DamagedFile` (with the way out) if it cannot be read."""
    path = run.path / STATE
    step = run.state_step
    if step is None:
        raise DamagedFile(f"{path} is missing; {run.reset_advice()}")
    tensors = _load_tensors(path, run.reset_advice())
    if "rng/torch" not in tensors:
        raise DamagedFile(f"{path} is damaged (no RNG state); {run.reset_advice()}")
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    adam: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("adam/"):
            _, key, name = k.split("/", 2)
            adam.setdefault(name, {})[key] = v.reshape(()) if key == "step" else v
    grad_filter = {k[len("grad_filter/"):]: v for k, v in tensors.items() if k.startswith("grad_filter/")}
    return ResumeState(step=step, weights=weights, adam=adam, rng=tensors["rng/torch"], grad_filter=grad_filter)


def last_good_checkpoint(run: Run) -> tuple[int, dict[str, torch.Tensor]]:
    """The latest checkpoint that loads, for rebuilding a damaged resume state."""
    for step in reversed(run.steps):
        try:
            return step, run.weights(step)
        except CorruptCheckpoint:
            continue
    raise UsageError(f"run {run.name!r} has no readable checkpoint to resume from; train a new run")


@contextmanager
def training_lock(run: Run) -> Iterator[None]:
    """Hold ``<run>/.lock`` for training; a second trainer is refused instead of interleaving.
    Stale temporaries of an interrupted writer are cleared once the lock is held."""
    with files.exclusive_lock(run.path / LOCK, f"run {run.name!r} is busy: another process is training it; "
                                               "wait for it to finish"):
        files.remove_stale_temporaries(run.path, run.path / STEPS_DIR)
        yield


@contextmanager
def probe_lock(run: Run) -> Iterator[None]:
    """Two probers of one run take turns."""
    with files.waiting_lock(run.path / PROBES_DIR / LOCK):
        yield


def write_probe_options(run: Run, options: dict[str, Any]) -> None:
    files.write_json(run.path / PROBES_DIR / PROBE_OPTIONS, options)


def write_probe_json(run: Run, name: str, obj: Any) -> None:
    """``key_frequencies.json`` or ``phases.json``."""
    files.write_json(run.path / PROBES_DIR / name, obj)


def write_probe_table(run: Run, probe: str, frame) -> None:
    write_table(probe_table_path(run.path, probe), frame)


def report_dir(run: Run) -> Path:
    """``<run>/report/``, created if needed (figures are exported into it)."""
    path = run.path / REPORT_DIR
    path.mkdir(exist_ok=True)
    return path


def write_report_page(run: Run, page: str) -> Path:
    path = report_dir(run) / REPORT_PAGE
    files.write_text(path, page)
    return path


# ------------------------------------------------------------------------------ probe cache
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
    (``key_frequencies.json``) are keyed the same way.

    Example:
        >>> cache = ProbeCache(run)
        >>> digest = cache.checkpoint_hash(step)
        >>> if not cache.is_valid("fourier", step, digest, depends): ...; cache.record("fourier", step, digest, depends)
        >>> cache.save()
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
        index = {"format": PROBE_INDEX_FORMAT, "hashes": self._hashes, "probes": self._rows,
                 "depends": {k: v for k, v in self._depends.items() if k in used}}
        files.write_json(self.run.path / PROBES_DIR / PROBE_INDEX, index)

    def table(self, probe: str):
        """The probe's cached table, or None (absent or damaged: then it is rebuilt). Records of
        steps the table does not hold are dropped: a row is valid only if it is there."""
        try:
            table = self.run.probe_table(probe)
        except DamagedFile:
            self.damaged.append(str(probe_table_path(self.run.path, probe)))
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


# ----------------------------------------------------------------------------- finding runs
def list_runs(root: Path | None = None) -> list[str]:
    """Names of the runs under ``root``, sorted."""
    root = Path(root if root is not None else default_root())
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file()) if root.is_dir() else []


def resolve_run_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A run name under ``root``, or a path to a run directory."""
    if isinstance(name_or_path, Path):
        return name_or_path
    text = str(name_or_path)
    if "/" in text or text.startswith("."):
        return Path(text)
    return run_path(text, root)


def open_run(name_or_path: str | Path, root: Path | None = None) -> Run:
    """Open an existing run by name (under ``root``, default `default_root`) or by path."""
    path = resolve_run_path(name_or_path, root)
    if not (path / CONFIG).is_file():
        names = list_runs(path.parent)
        listing = ", ".join(names) if names else "none yet; train one with `make train RUN=<name>`"
        raise UsageError(f"no run at {path}; runs in {path.parent}: {listing}")
    return Run(path)
