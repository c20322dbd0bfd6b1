"""The three source formats, read into one `Source`: config, checkpoints, logged losses, split."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from workbench import model
from workbench.config import RunConfig, coerce, from_dict, load_config
from workbench.importer.safe_load import LegacyObject, NumpyDtype, NumpyScalar
from workbench.tasks import Split, make_dataset, make_split
from workbench.training import check_fits

SOURCE_FORMATS = ("nanda2023", "tl-demo", "tl2")


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
    """A config (dict, stand-in or namespace) as a dict of JSON-friendly values (numpy numbers as
    Python numbers, dtypes and devices as their names)."""
    if isinstance(obj, LegacyObject) and not isinstance(obj, NumpyScalar | NumpyDtype):
        obj = {"__class__": obj.source_class, **obj.as_dict()}
    if not isinstance(obj, Mapping):
        raise ValueError(f"config is a {type(obj).__name__}, not a mapping or a known config class")
    return {str(key): _plain_value(value) for key, value in obj.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, NumpyScalar):
        return value.value()
    if isinstance(value, NumpyDtype):
        return value.layout()[0]
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    if not isinstance(value, str | int | float | bool | type(None)):
        return repr(value)
    return value


def _floats(values: Any, what: str) -> list[float]:
    """A list of numbers as floats; ``ValueError`` for anything else, and for a loss log
    (``what`` ending ``_losses``) that is not empty but holds no finite number (a log that says
    nothing is not read as "no loss logged")."""
    if isinstance(values, torch.Tensor):
        out = [float(v) for v in values.reshape(-1).tolist()]
    elif not isinstance(values, list | tuple):
        raise ValueError(f"{what} is a {type(values).__name__}, not a list of numbers")
    else:
        try:
            out = [float(v.item() if isinstance(v, torch.Tensor) else v) for v in values]
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{what} holds something other than numbers") from None
    if what.endswith("_losses") and out and not any(math.isfinite(v) for v in out):
        raise ValueError(f"{what} holds {len(out)} values and none is a finite number (the run diverged, or the file "
                         "is damaged): nothing to check the weights against; import a file whose losses are numbers")
    return out


def _state_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """A mapping of names to tensors; ``ValueError`` for anything else and for a weight of an
    integer dtype (only floating-point weights and boolean masks are a model's)."""
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{what} is not a state dict of tensors")
    odd = [f"{k} ({str(v.dtype).removeprefix('torch.')})" for k, v in obj.items()
           if not (v.is_floating_point() or v.dtype == torch.bool)]
    if odd:
        raise ValueError(f"{what} holds weights of an integer dtype: {', '.join(odd[:3])}{' ...' if len(odd) > 3 else ''} "
                         "(a trained model's weights are floating point; the file is not a model's checkpoint)")
    return {str(k): v for k, v in obj.items()}


def detect_format(data: Any) -> str:
    """Which of `SOURCE_FORMATS` a loaded file is; ``ValueError`` saying what was found otherwise."""
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
    sizes = model.model_sizes("nanda2023", states[-1])
    given = {k: coerce(k, v) for k, v in fields.items() if v is not None}  # a field the file gives must be valid
    clash = [f"{k}={given[k]!r} but the weights have {k}={sizes[k]!r}" for k in given.keys() & sizes.keys() if given[k] != sizes[k]]
    if clash:
        raise ValueError(f"its config contradicts its weights: {'; '.join(clash)}")
    read = {**given, **sizes}
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
    logits = model.nanda2023_logits(cfg, states[i], dataset.tokens[split.train])
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
    saved = data.get("model") if isinstance(data.get("model"), Mapping) else (data.get("checkpoints") or [None])[-1]
    read = {**model.model_sizes("tl2", _state_dict(saved, "model")), **_tl2_fields(raw)}
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
    shapes = model.model_sizes("tl2", states[-1])
    start = load_config(preset).to_dict() if preset else RunConfig().to_dict()
    base = {**start, "init": "tl2", **shapes, **overrides}
    spacing = int(base.get("ckpt_every") or 1) if len(states) > 1 else 0
    epochs = spacing * (len(states) - 1) if len(states) > 1 else int(base["epochs"])
    steps = [i * spacing for i in range(len(states))] if len(states) > 1 else [epochs]
    cfg = from_dict({**base, "epochs": epochs, "ckpt_every": spacing})
    check_fits(cfg, None, what="the run this file describes")
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
    """The run's config, refused before anything is allocated if this machine could not hold it (a
    small file can claim p = 10^6 with stride-0 tensors)."""
    cfg = from_dict({**RunConfig().to_dict(), **assumed, **read, **overrides})
    check_fits(cfg, None, what="the run this file describes")
    return cfg


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


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.double(), labels))
