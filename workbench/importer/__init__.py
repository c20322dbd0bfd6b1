"""Importing the runs researchers already have: a published file becomes an ordinary run directory,
after safety, shape, logit-parity and split checks.

Modules: ``safe_load`` (unpickling with an allowlist), ``readers`` (the source formats),
``checks`` (parity and split checks), ``importing`` (`import_run`).
"""

from __future__ import annotations

from workbench.importer.importing import import_run
from workbench.importer.readers import SOURCE_FORMATS
from workbench.importer.safe_load import ImportRefused

__all__ = ["SOURCE_FORMATS", "ImportRefused", "import_run"]
