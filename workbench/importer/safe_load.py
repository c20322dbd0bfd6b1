"""Reading a pickled file safely: ``torch.load(weights_only=True)`` with an allowlist and inert stand-ins."""

from __future__ import annotations

import hashlib
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench.errors import UsageError
from workbench.inputs import read_problem  # the one place an OS error on a file is named

# Classes that legacy files pickle and that are read as plain data (never imported). Configs: the
# TransformerLens HookedTransformerConfig under every module path TL 2.x to 3.x used, and a `Config`
# class from any module (Nanda et al.'s, pickled from wherever their code ran: `__main__`,
# `transformers`, `helpers`, a package's `pm.transformers`). numpy: the scalars and dtypes a TL 2.x-3.x
# config holds (initializer_range = 0.8 / np.sqrt(d_model), attn_scale = np.sqrt(d_head)), under
# numpy 1.x's and 2.x's names.
CONFIG_CLASSES = (
    "transformer_lens.HookedTransformerConfig.HookedTransformerConfig",
    "transformer_lens.config.HookedTransformerConfig.HookedTransformerConfig",
    "transformer_lens.config.hooked_transformer_config.HookedTransformerConfig",
    "transformers.Config",
    "__main__.Config",
    "helpers.Config",
)
NUMPY_SCALARS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
NUMPY_DTYPES = ("numpy.dtype",)
_MAX_RETRIES = 16  # a legacy-format file names its globals one refusal at a time


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
        self.__dict__["state"] = {**self.__dict__.get("state", {}),
                                  **(dict(state) if isinstance(state, Mapping) else {"value": state})}

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__.get("state", {}))


class NumpyDtype(LegacyObject):
    """A numpy dtype as pickled: ``numpy.dtype(code, align, copy)`` then its state, whose second
    item is the byte order (``<``, ``>``, ``|``, ``=``)."""

    def layout(self) -> tuple[str, str]:
        state = self.as_dict()
        code = str(state.get("args", ["?"])[0])
        value = state.get("value")
        order = value[1] if isinstance(value, tuple) and len(value) > 1 and isinstance(value[1], str) else "<"
        return code, order


_STRUCT = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b",
           "u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?"}


class NumpyScalar(LegacyObject):
    """A numpy scalar as pickled: ``scalar(dtype, raw bytes)``; `value` decodes the bytes by the
    dtype's code and byte order into a Python number (numeric dtypes only)."""

    def value(self) -> float | int | bool:
        args = self.as_dict().get("args", [])
        if len(args) < 2 or not isinstance(args[0], NumpyDtype) or not isinstance(args[1], bytes | str):
            raise ValueError("a numpy scalar without a dtype and its bytes")
        code, order = args[0].layout()
        if code not in _STRUCT:
            raise ValueError(f"a numpy scalar of dtype {code!r}, not a number")
        raw = args[1].encode("latin1") if isinstance(args[1], str) else args[1]
        return struct.unpack((">" if order == ">" else "<") + _STRUCT[code], raw)[0]


def _stand_in(full_name: str) -> type:
    base = NumpyScalar if full_name in NUMPY_SCALARS else NumpyDtype if full_name in NUMPY_DTYPES else LegacyObject
    return type(full_name.rsplit(".", 1)[-1], (base,), {"source_class": full_name})


def readable(name: str) -> bool:
    """Whether a global a file names is read through an inert stand-in: a known config class, a
    `Config` from any module, or a numpy scalar or dtype."""
    return (name in CONFIG_CLASSES or name.endswith(".Config") or name in NUMPY_SCALARS or name in NUMPY_DTYPES
            or (name.startswith("transformer_lens.") and name.endswith(".HookedTransformerConfig")))


def safe_load(path: Path) -> Any:
    """The contents of a torch file, read with ``weights_only=True`` and inert stand-ins for the
    classes `readable` names (nothing is imported or run).

    `ImportRefused` (one line, naming the file) for a missing, truncated or non-torch file and for
    any type outside the allowlist (named)."""
    problem = read_problem(path)
    if problem is not None:
        raise ImportRefused(f"cannot import {path}: it {problem[1]} (nothing was written)")
    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint (legacy format): the weights-only unpickler names them
        named = []
    refused = [name for name in named if not readable(name)]
    if refused:
        raise ImportRefused(f"cannot import {path}: it holds type(s) outside the allowlist: {', '.join(sorted(refused))} "
                            "(nothing was run or written; only tensors, plain containers, known configs and numpy "
                            "numbers are read)")
    stand_ins = {name: _stand_in(name) for name in (*CONFIG_CLASSES, *NUMPY_SCALARS, *NUMPY_DTYPES, *named)}
    for _ in range(_MAX_RETRIES):
        try:
            with torch.serialization.safe_globals([(cls, name) for name, cls in stand_ins.items()]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            name = _global_named(exc)
            if name is None or not readable(name) or name in stand_ins:
                raise ImportRefused(f"cannot import {path}: {_unpickling_reason(exc)} (nothing was run or written)") from None
            stand_ins[name] = _stand_in(name)  # a legacy-format file: now that it is named, read it as plain data
        except Exception as exc:  # noqa: BLE001 - any failure to read is a refusal, said in one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ImportRefused(f"cannot import {path}: not a complete torch file (truncated or another format: {first})") from None
    raise ImportRefused(f"cannot import {path}: it names more than {_MAX_RETRIES} classes to read")


def _global_named(exc: Exception) -> str | None:
    text = str(exc)
    return text.split("GLOBAL ", 1)[1].split()[0] if "GLOBAL " in text else None


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
