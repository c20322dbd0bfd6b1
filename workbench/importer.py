"""Import the runs researchers already have: a legacy file becomes an ordinary run directory.

Three sources (`FORMATS`), detected from the file's contents:

* ``nanda2023`` — ``full_run_data.pth`` of Nanda et al. 2023 (progress-measures-paper): a dict
  with ``state_dicts`` (their transformer's names, `workbench.legacy`), ``epochs``,
  ``train_losses``, ``test_losses`` and ``config``. The split is rebuilt with their rule
  (``split_rule = "nanda2023"``: ``random.seed(seed)``, ``random.shuffle`` of the pairs).
* ``tl-demo`` — the file the TransformerLens Grokking demo saves: ``model``, ``config`` (a pickled
  TL 2.x ``HookedTransformerConfig``), ``checkpoints``, ``checkpoint_epochs`` (99, 199, ...),
  ``train_losses``, ``test_losses`` and ``train_indices``/``test_indices`` (or ``train_idx``/
  ``test_idx``, or neither: then the demo's ``torch.randperm`` split with ``split_seed``, 598).
* ``tl2`` — a bare TL 2.x ``HookedTransformer`` state dict, or a list of them; the config comes from
  the command line (``p=113 d_model=128 ...``) or a preset.

What is checked before anything is written, each failure one line naming the file (exit 2):

* **safety** — the file is read with ``torch.load(weights_only=True)`` and an allowlist: tensors,
  plain containers, torch dtypes/devices, and the few config classes these files pickle, which
  are read as plain data by an inert stand-in (`LegacyObject`) and never imported. Any other type
  (a pickled object whose reduction would call a shell command, say) is refused by name;
* **shapes** — every checkpoint fits the inferred config;
* **parity** — on all p² inputs the converted model's logits equal, within `PARITY_ATOL`, the
  source architecture's own forward pass (`workbench.legacy`, written from the source's formulas),
  both in float64 so that only the conversion is tested (it moves numbers, never rounds them), at
  the first, last and a few checkpoints between (in float32, as trained, the two differ by float32
  rounding: ~1e-5 at logits of ~50);
* **split** — at the checkpoint where the source logged the widest train/test gap, the losses the
  source logged are reproduced on the rebuilt split (`SPLIT_RTOL`): a wrong split cannot hide there.

Steps: "step s" means the weights after s updates (as in training here). The TL demo records
``train_losses[e]`` before the update of epoch e (step e), ``test_losses[e]`` after it (step e+1),
and checkpoint ``e`` after it (step e+1). Logged losses are imported at their steps; accuracies,
which the sources do not log, are computed at every checkpoint. The source file's SHA-256, its
format, the config fields read from it and those assumed are recorded in ``provenance.json``.

Example:
    >>> run = import_run("full_run_data.pth", "nanda-original")
    >>> run = import_run("grokking_demo.pth", "tl-demo")
    >>> run = import_run("model.pt", "bare", overrides={"p": 113})      # a bare TL 2.x state dict
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from workbench import legacy, store
from workbench.config import RunConfig, from_dict, load_config
from workbench.errors import UsageError
from workbench.tasks import Split, make_dataset, make_split

FORMATS = ("nanda2023", "tl-demo", "tl2")
PARITY_ATOL = 1e-5
SPLIT_RTOL = 1e-2
PARITY_CHECKS = 5  # checkpoints whose logits are compared with the source architecture's

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


# ------------------------------------------------------------------------------ reading sources
@dataclass
class Source:
    """A legacy run read into plain data: config, checkpoints by step in the source's names,
    logged losses by step, the split, and what was read or assumed."""

    format: str
    config: RunConfig
    checkpoints: dict[int, dict[str, torch.Tensor]]
    train_losses: dict[int, float] = field(default_factory=dict)
    test_losses: dict[int, float] = field(default_factory=dict)
    split: Split | None = None
    read: dict[str, Any] = field(default_factory=dict)  # config fields as the file gives them
    assumed: dict[str, Any] = field(default_factory=dict)  # config fields the file does not give
    notes: list[str] = field(default_factory=list)


def _plain(obj: Any) -> Any:
    """A config (dict, stand-in or namespace) as a dict of JSON-friendly values."""
    if isinstance(obj, LegacyObject):
        obj = {"__class__": obj.source_class, **obj.as_dict()}
    if not isinstance(obj, Mapping):
        raise ValueError(f"config is a {type(obj).__name__}, not a mapping or a known config class")
    out = {}
    for key, value in obj.items():
        if isinstance(value, torch.dtype | torch.device):
            value = str(value)
        elif isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        elif not isinstance(value, str | int | float | bool | type(None) | list | tuple):
            value = repr(value)
        out[str(key)] = value
    return out


def _floats(values: Any, what: str) -> list[float]:
    if isinstance(values, torch.Tensor):
        return [float(v) for v in values.reshape(-1).tolist()]
    if not isinstance(values, list | tuple):
        raise ValueError(f"{what} is a {type(values).__name__}, not a list of numbers")
    return [float(v.item() if isinstance(v, torch.Tensor) else v) for v in values]


def _state_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{what} is not a state dict of tensors")
    return {str(k): v for k, v in obj.items()}


def detect_format(data: Any) -> str:
    """Which of `FORMATS` a loaded file is; ``ValueError`` saying what was found otherwise."""
    if isinstance(data, Mapping):
        keys = set(data)
        if "state_dicts" in keys:
            return "nanda2023"
        if {"model", "checkpoints"} <= keys or {"model", "config"} <= keys:
            return "tl-demo"
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return "tl2"
        raise ValueError(f"unrecognised layout: a dict with keys {', '.join(sorted(map(str, keys))[:12])}")
    if isinstance(data, list | tuple) and data and all(isinstance(d, Mapping) for d in data):
        return "tl2"
    raise ValueError(f"unrecognised layout: a {type(data).__name__}")


NANDA_OPERATIONS = {"add": "add", "subtract": "sub", "x2xyy2": "x2+xy+y2"}


def read_nanda2023(data: Mapping, overrides: Mapping[str, Any]) -> Source:
    """``full_run_data.pth``. Its ``config`` is a plain dict (lr, p, d_model, fn_name, frac_train,
    seed, weight_decay, ...); the shapes of the weights give heads, d_head, d_mlp and layers.
    ``train_losses[e]`` is imported at step e (their loop logs before the update of epoch e);
    ``test_losses[k]`` at step ``k * stride``, ``stride = ceil(len(train_losses) / len(test_losses))``
    (the file logs test loss less often). Whether ``state_dicts[i]``, labelled ``epochs[i]``, holds
    the weights before or after that epoch's update (their public training code saves after it:
    step ``epochs[i] + 1``) is decided from the file itself (`_nanda_offset`). ``model``, the final
    weights, is imported at step ``len(train_losses)``."""
    for key in ("state_dicts", "epochs", "train_losses", "test_losses", "config"):
        if key not in data:
            raise ValueError(f"no {key!r} (a full_run_data.pth has state_dicts, epochs, train_losses, test_losses, config)")
    raw = _plain(data["config"])
    fn = raw.get("fn_name", "add")
    if fn not in NANDA_OPERATIONS:
        raise ValueError(f"fn_name {fn!r} has no workbench operation (importable: {', '.join(NANDA_OPERATIONS)})")
    if raw.get("use_ln"):
        raise ValueError("use_ln=True: the workbench's model has no LayerNorm")
    epochs = [int(e) for e in _floats(data["epochs"], "epochs")]
    states = [_state_dict(sd, f"state_dicts[{i}]") for i, sd in enumerate(data["state_dicts"])]
    if not states or len(states) != len(epochs):
        raise ValueError(f"{len(states)} state_dicts but {len(epochs)} epochs")
    fields = {"operation": NANDA_OPERATIONS[fn], "p": raw.get("p"), "frac_train": raw.get("frac_train"),
              "split_seed": raw.get("seed"), "model_seed": raw.get("seed"), "lr": raw.get("lr"),
              "weight_decay": raw.get("weight_decay"), "act_fn": str(raw.get("act_type", "ReLU")).lower()}
    read = {**{k: v for k, v in fields.items() if v is not None}, **legacy.model_sizes("nanda2023", states[-1])}
    train, test = _floats(data["train_losses"], "train_losses"), _floats(data["test_losses"], "test_losses")
    final = len(train) if train else max(epochs)
    assumed = {"split_rule": "nanda2023", "init": "nanda2023", "attn_bias": False, "epochs": final,
               "beta1": 0.9, "beta2": 0.98, "warmup_steps": 10, "eval_every": 1, "ckpt_every": _spacing(epochs)}
    cfg = _config(read, assumed, overrides)
    stride = math.ceil(len(train) / len(test)) if test and train else 1
    if test and train and math.ceil(len(train) / stride) != len(test):
        raise ValueError(f"cannot place {len(test)} test losses among {len(train)} epochs at a regular interval")
    offset, note = _nanda_offset(cfg, epochs, states, train)
    checkpoints = {e + offset: sd for e, sd in zip(epochs, states, strict=True)}
    if isinstance(data.get("model"), Mapping) and final not in checkpoints:
        checkpoints[final] = _state_dict(data["model"], "model")
    notes = [note] + ([f"test losses logged every {stride} epochs"] if stride > 1 else [])
    return Source("nanda2023", cfg, checkpoints, train_losses=dict(enumerate(train)),
                  test_losses={k * stride: v for k, v in enumerate(test)}, read=raw, assumed=assumed, notes=notes)


def _nanda_offset(cfg: RunConfig, epochs: list[int], states: list, train: list[float]) -> tuple[int, str]:
    """0 if the state dict labelled epoch e holds the weights before that epoch's update (step e),
    1 if after it (step e + 1): its train loss, recomputed on their split with their forward pass
    (p + 1 logits), is matched against the logged ``train_losses[e]`` and ``[e + 1]``, at the
    checkpoint where the two differ most. Falls back to 0 (as labelled) when no checkpoint can tell."""
    usable = [i for i, e in enumerate(epochs) if e + 1 < len(train) and train[e] > 0 and train[e + 1] > 0]
    if not usable:
        return 0, "checkpoints imported at their labelled epochs (no logged losses to place them by)"
    i = max(usable, key=lambda j: abs(math.log(train[epochs[j]]) - math.log(train[epochs[j] + 1])))
    e = epochs[i]
    dataset = make_dataset(cfg.operation, cfg.p, cfg.table_seed)
    split = make_split(dataset.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    logits = legacy.nanda2023_logits(cfg, states[i], dataset.tokens[split.train])
    recomputed = math.log(_loss(logits, dataset.labels[split.train]))
    gap = abs(math.log(train[e]) - math.log(train[e + 1]))
    before, after = abs(recomputed - math.log(train[e])), abs(recomputed - math.log(train[e + 1]))
    if min(before, after) > 0.25 * gap:
        return 0, f"checkpoints imported at their labelled epochs (epoch {e}'s loss could not tell before from after)"
    if after < before:
        return 1, "state_dicts[i] holds the weights after epoch epochs[i]'s update: imported at step epochs[i] + 1"
    return 0, "state_dicts[i] holds the weights before epoch epochs[i]'s update: imported at step epochs[i]"


def read_tl_demo(data: Mapping, overrides: Mapping[str, Any]) -> Source:
    """The TransformerLens Grokking demo's saved dict (see the module docstring for its steps)."""
    raw = _plain(data["config"]) if "config" in data else {}
    model = data.get("model") if isinstance(data.get("model"), Mapping) else (data.get("checkpoints") or [None])[-1]
    read = {**legacy.model_sizes("tl2", _state_dict(model, "model")), **_tl2_fields(raw)}
    train = _floats(data.get("train_losses", []), "train_losses")
    test = _floats(data.get("test_losses", []), "test_losses")
    checkpoints = {}
    if "checkpoints" in data:
        epochs = [int(e) for e in _floats(data.get("checkpoint_epochs", []), "checkpoint_epochs")]
        if len(epochs) != len(data["checkpoints"]):
            raise ValueError(f"{len(data['checkpoints'])} checkpoints but {len(epochs)} checkpoint_epochs")
        checkpoints = {e + 1: _state_dict(sd, f"checkpoints[{i}]") for i, (e, sd) in enumerate(zip(epochs, data["checkpoints"], strict=True))}
    final = len(train) if train else (max(checkpoints) if checkpoints else 0)
    if "model" in data:
        checkpoints[final] = _state_dict(data["model"], "model")
    if not checkpoints:
        raise ValueError("no checkpoints and no model")
    assumed = {"operation": "add", "frac_train": 0.3, "split_seed": 598, "init": "tl2", "freeze_biases": True,
               "warmup_steps": 0, "lr": 1e-3, "weight_decay": 1.0, "beta1": 0.9, "beta2": 0.98,
               "epochs": max(checkpoints), "eval_every": 1, "ckpt_every": _spacing(sorted(checkpoints))}
    cfg = _config(read, assumed, overrides)
    split = None
    for train_key, test_key in (("train_indices", "test_indices"), ("train_idx", "test_idx")):
        if train_key in data and test_key in data:
            split = _index_split(data[train_key], data[test_key], cfg.p)
            frac = len(split.train) / (cfg.p * cfg.p)
            assumed.pop("frac_train", None)
            cfg = dataclasses.replace(cfg, frac_train=frac)
    source = Source("tl-demo", cfg, checkpoints, train_losses=dict(enumerate(train)),
                    test_losses={e + 1: v for e, v in enumerate(test)}, split=split, read=raw, assumed=assumed)
    if split is None:
        source.notes.append(f"no stored indices: split rebuilt with torch.randperm, split_seed {cfg.split_seed}")
    return source


def read_tl2(data: Any, overrides: Mapping[str, Any], preset: str | None) -> Source:
    """A bare TL 2.x state dict (imported at step ``epochs``) or a list of them (steps 0,
    ``ckpt_every``, 2 ``ckpt_every``, ...: give ``ckpt_every`` and the task on the command line).
    Model sizes come from the weights' shapes; the rest from ``preset`` (default: the workbench
    defaults) and ``overrides``."""
    states = [data] if isinstance(data, Mapping) else list(data)
    states = [_state_dict(sd, f"state dict {i}") for i, sd in enumerate(states)]
    if not states:
        raise ValueError("an empty list of state dicts")
    shapes = legacy.model_sizes("tl2", states[-1])
    start = load_config(preset).to_dict() if preset else RunConfig().to_dict()
    base = {**start, "init": "tl2", **shapes, **overrides}
    spacing = int(base.get("ckpt_every") or 1) if len(states) > 1 else 0
    epochs = spacing * (len(states) - 1) if len(states) > 1 else int(base["epochs"])
    steps = [i * spacing for i in range(len(states))] if len(states) > 1 else [epochs]
    cfg = from_dict({**base, "epochs": epochs, "ckpt_every": spacing})
    notes = [f"{len(states)} state dicts placed at steps 0, {spacing}, ... (ckpt_every={spacing})"] if spacing else []
    return Source("tl2", cfg, dict(zip(steps, states, strict=True)), read=shapes,
                  assumed={k: v for k, v in cfg.to_dict().items() if k not in shapes and k not in overrides}, notes=notes)


def _tl2_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """RunConfig fields from a TL 2.x ``HookedTransformerConfig``'s data; refuses what the
    workbench's model cannot be (LayerNorm, attention-only, another context length)."""
    if not raw:
        return {}
    if raw.get("normalization_type") not in (None, "None"):
        raise ValueError(f"normalization_type={raw['normalization_type']!r}: the workbench's model has no LayerNorm")
    if raw.get("attn_only"):
        raise ValueError("attn_only=True: the workbench's model has an MLP in every block")
    if raw.get("n_ctx") not in (None, 3):
        raise ValueError(f"n_ctx={raw['n_ctx']}: the tasks here are 3 tokens (a b =)")
    p = raw.get("d_vocab_out")
    if p is not None and raw.get("d_vocab") not in (None, p + 1):
        raise ValueError(f"d_vocab={raw['d_vocab']} with d_vocab_out={p}: expected d_vocab = p + 1 (the = token)")
    mapping = {"p": p, "n_layers": raw.get("n_layers"), "d_model": raw.get("d_model"), "n_heads": raw.get("n_heads"),
               "d_head": raw.get("d_head"), "d_mlp": raw.get("d_mlp"), "act_fn": raw.get("act_fn"),
               "model_seed": raw.get("seed")}
    return {k: v for k, v in mapping.items() if v is not None}


def _config(read: Mapping[str, Any], assumed: Mapping[str, Any], overrides: Mapping[str, Any]) -> RunConfig:
    return from_dict({**RunConfig().to_dict(), **assumed, **read, **overrides})


def _spacing(steps: list[int]) -> int:
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    return min(gaps) if gaps else 0


def _index_split(train: Any, test: Any, p: int) -> Split:
    """Stored indices into the p² inputs (a-major, as the demo's ``dataset``) as a `Split`."""
    train_t, test_t = torch.as_tensor(train).reshape(-1).long(), torch.as_tensor(test).reshape(-1).long()
    every = torch.cat([train_t, test_t]).sort().values
    if every.numel() != p * p or not torch.equal(every, torch.arange(p * p)):
        raise ValueError(f"train/test indices do not cover the {p * p} inputs exactly once")
    return Split(train=train_t.sort().values, test=test_t.sort().values)


# ------------------------------------------------------------------------------ checks and writing
def import_run(src: str | Path, run: str, overrides: Mapping[str, Any] | None = None, preset: str | None = None,
               root: Path | None = None) -> store.Run:
    """Import legacy file ``src`` as run ``<root>/<run>/`` (module docstring); return the `Run`.

    ``overrides`` fix config fields the file lacks or gets wrong (``split_seed=598``); for a bare
    state dict they, with ``preset``, are the config. Nothing is written unless every check passes.
    """
    from workbench.train import provenance

    path = Path(src).expanduser()
    target = store.run_path(run, root)
    if target.exists():
        raise UsageError(f"run {run!r} already exists ({target}); choose another RUN name")
    data = safe_load(path)
    try:
        fmt = detect_format(data)
        if preset is not None and fmt != "tl2":
            raise ValueError(f"--preset applies to bare state dicts only; this is a {fmt} file, which carries its "
                             "config (fix single fields with key=value)")
        overrides = dict(overrides or {})
        if fmt == "nanda2023":
            source = read_nanda2023(data, overrides)
        elif fmt == "tl-demo":
            source = read_tl_demo(data, overrides)
        else:
            source = read_tl2(data, overrides, preset)
        weights = {step: _to_bridge(source, sd) for step, sd in sorted(source.checkpoints.items())}
        cfg = source.config
        if max(weights) > cfg.epochs:
            raise ValueError(f"a checkpoint at step {max(weights)} lies beyond epochs={cfg.epochs}")
        dataset = make_dataset(cfg.operation, cfg.p, cfg.table_seed)
        split = source.split or make_split(dataset.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    except UsageError as exc:
        raise ImportRefused(f"cannot import {path}: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ImportRefused(f"cannot import {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    parity = _check_parity(path, source, weights)
    split_check = _check_split(path, source, weights, dataset, split)
    prov = provenance(cfg)
    prov["imported_from"] = {
        "file": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256(path), "format": source.format,
        "config_read": source.read, "config_assumed": {k: v for k, v in source.assumed.items() if k not in overrides},
        "config_overrides": dict(overrides), "notes": source.notes,
        "parity": parity, "split_check": split_check,
        "step_rule": "step s = the weights after s updates (see workbench.importer)",
    }

    def fill(tmp: store.Run) -> None:
        for step, w in weights.items():
            store.write_checkpoint(tmp, step, w)
        store.rewrite_metrics(tmp.path, _metrics_rows(source, weights, dataset, split))

    final = max(weights)  # the readers keep every checkpoint within epochs
    state = store.ResumeState(step=final, weights=weights[final], adam={}, rng=torch.get_rng_state())
    return store.create_run(target, cfg, prov, split, state, fill=fill)


def _to_bridge(source: Source, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from workbench.model import convert_nanda2023_state_dict, convert_tl2_state_dict

    if source.format == "nanda2023":
        return convert_nanda2023_state_dict(source.config, state_dict)
    return convert_tl2_state_dict(source.config, state_dict)


def _source_logits(source: Source, step: int, tokens: torch.Tensor) -> torch.Tensor:
    """The source architecture's logits over the p answer tokens, float64."""
    cfg = source.config
    if source.format == "nanda2023":
        return legacy.nanda2023_logits(cfg, source.checkpoints[step], tokens)
    return legacy.tl2_logits(cfg, source.checkpoints[step], tokens)


def _ours(cfg: RunConfig, weights: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    from workbench.model import FastTransformer

    return FastTransformer(cfg, weights).activations(tokens)["logits"]


def _check_parity(path: Path, source: Source, weights: dict[int, dict[str, torch.Tensor]]) -> dict[str, Any]:
    """The converted weights' logits (`FastTransformer`, the bridge's operations) against the source
    architecture's on every input, in float64, at up to `PARITY_CHECKS` checkpoints over the run."""
    from workbench.tasks import grid_tokens

    cfg = source.config
    tokens = grid_tokens(cfg.p)
    steps = sorted(weights)
    picks = sorted({steps[round(i * (len(steps) - 1) / max(PARITY_CHECKS - 1, 1))] for i in range(PARITY_CHECKS)})
    worst = 0.0
    for step in picks:
        theirs = _source_logits(source, step, tokens)[:, : cfg.p]
        ours = _ours(cfg, {k: v.double() for k, v in weights[step].items()}, tokens)
        diff = float((ours - theirs).abs().max())
        worst = max(worst, diff)
        if not diff <= PARITY_ATOL:
            raise ImportRefused(f"cannot import {path}: at step {step} the converted model's logits differ from the "
                                f"{source.format} architecture's by {diff:.3g} (> {PARITY_ATOL:g}); the config or the "
                                "name mapping does not fit this file")
    return {"steps": picks, "inputs": cfg.p * cfg.p, "max_abs_logit_diff": worst, "atol": PARITY_ATOL,
            "dtype": "float64"}


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.double(), labels))


def _check_split(path: Path, source: Source, weights, dataset, split: Split) -> dict[str, Any] | None:
    """The source's logged losses reproduced on ``split`` at the checkpoint with the widest logged
    test/train gap (the source's full logits: Nanda's model scores p+1 tokens)."""
    both = [s for s in weights if s in source.train_losses and s in source.test_losses and source.train_losses[s] > 0]
    if not both:
        return None
    step = max(both, key=lambda s: source.test_losses[s] / source.train_losses[s])
    logits = _source_logits(source, step, dataset.tokens)
    ours = {"train": _loss(logits[split.train], dataset.labels[split.train]),
            "test": _loss(logits[split.test], dataset.labels[split.test])}
    logged = {"train": source.train_losses[step], "test": source.test_losses[step]}
    for part in ("train", "test"):
        if not math.isclose(ours[part], logged[part], rel_tol=SPLIT_RTOL, abs_tol=1e-6):
            raise ImportRefused(
                f"cannot import {path}: the rebuilt split does not reproduce the source's {part} loss at step {step} "
                f"({ours[part]:.4g} here, {logged[part]:.4g} logged); give the source's split (split_seed=..., "
                "split_rule=..., frac_train=...) on the command line")
    return {"step": step, "logged": logged, "recomputed": ours, "rtol": SPLIT_RTOL}


def _metrics_rows(source: Source, weights, dataset, split: Split) -> list[dict[str, Any]]:
    """One row per logged step: the source's losses; at checkpoints also accuracy (and any loss
    the source did not log there), computed from the imported weights."""
    rows: dict[int, dict[str, Any]] = {}
    for step, value in source.train_losses.items():
        rows.setdefault(step, {"step": step})["train_loss"] = value
    for step, value in source.test_losses.items():
        rows.setdefault(step, {"step": step})["test_loss"] = value
    for step, w in weights.items():
        logits = _ours(source.config, w, dataset.tokens)
        row = rows.setdefault(step, {"step": step})
        for part, idx in (("train", split.train), ("test", split.test)):
            row[f"{part}_acc"] = float((logits[idx].argmax(-1) == dataset.labels[idx]).double().mean())
            row.setdefault(f"{part}_loss", _loss(logits[idx], dataset.labels[idx]))
    return [rows[s] for s in sorted(rows) if s <= source.config.epochs]
