"""The store: every file a run or a sweep has on disk, and all reading and writing of them.

Nothing else in the workbench spells a file name of a run directory (a test enforces it); the
layout is described once, in ``docs/run-directory.md``. Writes are atomic (a temporary file
renamed into place) and every damaged file is one `DamagedFile` line saying what to do.

Modules: ``layout`` (every name on disk), ``files`` (atomic writes, locks), ``formats`` (JSON,
JSON lines, safetensors, CSV), ``run`` (`Run`, finding runs), ``create`` (a new run directory,
all or nothing), ``provenance``, ``state`` (the resume state), ``probe_cache``, ``results`` (probe
tables and the report folder), ``transfer`` (a run's files to and from a worker that shares no disk).
"""

from __future__ import annotations

from workbench.store.create import create_run, ensure_runs_root, remove_stale_creations
from workbench.store.files import ensure_output_dir, write_json, write_text
from workbench.store.formats import (
    CorruptCheckpoint,
    DamagedFile,
    append_metrics,
    read_table,
    rewrite_metrics,
    write_table,
)
from workbench.store.layout import (
    CONFIG,
    CRITERIA_FILE,
    KEY_FREQUENCIES,
    MANIFEST,
    MANIFEST_FORMAT,
    METRICS,
    PHASES_FILE,
    PROBE_OPTIONS,
    PROBES_DIR,
    PROVENANCE,
    REPORT_DIR,
    REPORT_PAGE,
    RFF_TABLE,
    SPLIT,
    STATE,
    STEPS_DIR,
    TABLE,
    check_run_name,
    default_root,
    probe_table_path,
    run_path,
)
from workbench.store.probe_cache import ProbeCache
from workbench.store.provenance import new_provenance
from workbench.store.results import (
    read_signal_rows,
    report_dir,
    write_probe_json,
    write_probe_options,
    write_probe_table,
    write_report_page,
    write_signal_rows,
)
from workbench.store.run import (
    Run,
    list_runs,
    open_run,
    probe_lock,
    resolve_run_path,
    training_lock,
    write_checkpoint,
    write_provenance,
)
from workbench.store.state import (
    ResumeState,
    check_consistent,
    extend_epochs,
    last_good_checkpoint,
    read_state,
    truncate_metrics,
    write_state,
)
from workbench.store.transfer import pack_for_training, training_output, unpack, write_back

__all__ = ["ensure_runs_root", "remove_stale_creations", "pack_for_training", "training_output", "unpack", "write_back", "ensure_output_dir", "RFF_TABLE", "write_json", "write_text", "MANIFEST_FORMAT", "CONFIG", "CRITERIA_FILE", "CorruptCheckpoint", "DamagedFile", "KEY_FREQUENCIES", "MANIFEST", "METRICS", "PHASES_FILE", "PROBES_DIR", "PROBE_OPTIONS", "PROVENANCE", "ProbeCache", "REPORT_DIR", "REPORT_PAGE", "ResumeState", "Run", "SPLIT", "STATE", "STEPS_DIR", "TABLE", "append_metrics", "extend_epochs", "check_run_name", "create_run", "default_root", "last_good_checkpoint", "list_runs", "open_run", "probe_lock", "probe_table_path", "new_provenance", "read_state", "read_table", "report_dir", "resolve_run_path", "rewrite_metrics", "run_path", "training_lock", "truncate_metrics", "write_checkpoint", "write_probe_json", "write_probe_options", "write_probe_table", "write_provenance", "write_report_page", "write_state", "write_table", "read_signal_rows", "write_signal_rows", "check_consistent"]
