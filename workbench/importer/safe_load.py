"""Reading a pickled file safely: ``torch.load(weights_only=True)`` with an allowlist and inert stand-ins."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench.errors import UsageError

# Classes that legacy files pickle and that are read as plain data (never imported).
CONFIG_CLASSES = (
    "transformer_lens.HookedTransformerConfig.HookedTransformerConfig",
    "transformer_lens.config.HookedTransformerConfig.HookedTransformerConfig",
    "transformers.Config",
    "__main__.Config",
    "helpers.Config",
)


class ImportRefused(UsageError):
    """A legacy file that will not be imported: the message names the file and the reason."""


class LegacyObject:
    """An inert stand-in for a class a legacy file pickles (its config): it keeps the pickled
    state as plain data and runs no code of the original class."""

    source_class = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # a REDUCE call: keep the arguments as data
        self.__dict__["state"] = {"args": list(args), **kwargs}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(isinstance(x, Mapping | None) for x in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        self.__dict__["state"] = dict(state) if isinstance(state, Mapping) else {"value": state}

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__.get("state", {}))


def _stand_in(full_name: str) -> type:
    return type(full_name.rsplit(".", 1)[-1], (LegacyObject,), {"source_class": full_name})


_STAND_INS = {name: _stand_in(name) for name in CONFIG_CLASSES}


def safe_load(path: Path) -> Any:
    """The contents of a torch file, read with ``weights_only=True`` and the stand-in allowlist.

    `ImportRefused` (one line, naming the file) for a missing, truncated or non-torch file and for
    any type outside the allowlist (named)."""
    if not path.is_file():
        raise ImportRefused(f"cannot import {path}: no such file")
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint (legacy format): the weights-only unpickler checks it
        unsafe = []
    refused = [name for name in unsafe if name not in _STAND_INS]
    if refused:
        raise ImportRefused(f"cannot import {path}: it holds type(s) outside the allowlist: {', '.join(sorted(refused))} "
                            "(nothing was run or written; only tensors, plain containers and known configs are read)")
    try:
        with torch.serialization.safe_globals([(cls, name) for name, cls in _STAND_INS.items()]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ImportRefused(f"cannot import {path}: {_unpickling_reason(exc)} (nothing was run or written)") from None
    except Exception as exc:  # noqa: BLE001 - any failure to read is a refusal, said in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ImportRefused(f"cannot import {path}: not a complete torch file (truncated or another format: {first})") from None


def _unpickling_reason(exc: Exception) -> str:
    """torch's weights-only error, cut to what the user needs: the refused type, or 'unreadable'."""
    text = str(exc)
    if "GLOBAL " in text:
        name = text.split("GLOBAL ", 1)[1].split()[0]
        return f"it holds a type outside the allowlist: {name}"
    detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
    return f"not a complete torch file (truncated or another format: {detail[0] if detail else 'unreadable pickle'})"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
