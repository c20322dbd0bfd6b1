"""Run configuration: one frozen, validated record, saved exactly as it ran.

The defaults are the canonical setting of Nanda et al. 2023 ("Progress measures for
grokking"): add mod 113, 30% train, a one-layer ReLU transformer with d_model 128, 4 heads
of 32, d_mlp 512, no LayerNorm, full-batch AdamW (lr 1e-3, weight decay 1, betas 0.9/0.98,
10-step linear warm-up) for 40,000 epochs. Presets (``workbench/presets/*.toml``) list only
their departures from these defaults, each with a one-line reason as a comment.

Example:
    >>> cfg = load_config("fast", {"epochs": "3000"})
    >>> cfg.p, cfg.epochs
    (59, 3000)
    >>> cfg.to_dict()["operation"]            # to_dict(): what is written to checkpoints/<RUN>/config.json
    'add'
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from workbench.errors import UsageError
from workbench.inputs import read_user_file
from workbench.tasks import SPLIT_RULES, check_task

PRESET_DIR = Path(__file__).parent / "presets"
DEFAULT_PRESET = "fast"
ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu")
# Initialisation rules (formulas and sources: `workbench.model.initial_weights`). Named here, not
# imported from the model module, so that validating a config never imports TransformerLens.
INIT_RULES = ("tl4", "nanda2023", "zhong2023", "tl2")
# training variants (formulas and papers: `workbench.training.variants`)
GROKFAST = ("none", "ema", "ma")
LOSSES = ("cross_entropy", "stablemax")
OPTIMIZERS = ("adamw", "orthograd")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's weights. Devices and output paths are not in here."""

    # task
    operation: str = "add"
    p: int = 113
    frac_train: float = 0.3
    split_seed: int = 0
    split_rule: str = "randperm"  # how split_seed shuffles the inputs (`tasks.SPLIT_RULES`)
    table_seed: int = 0  # only the 'random' operation reads it
    # model: the one-layer transformer of Nanda et al. 2023
    n_layers: int = 1
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    act_fn: str = "relu"
    model_seed: int = 0
    init: str = "tl4"  # the initialisation rule (`INIT_RULES`; formulas: `model.initial_weights`)
    # optimisation: full-batch AdamW
    epochs: int = 40_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10
    # Omnigrok (Liu et al. 2023): every initial weight multiplied by this (1: the init rule's own scale)
    init_scale: float = 1.0
    # label noise (Nakkiran et al. 2019): this fraction of the training labels replaced by a fixed
    # random wrong label, drawn once and stored in the split (`tasks.add_label_noise`); 0: none
    label_noise: float = 0.0
    freeze_biases: bool = False
    attn_bias: bool = True  # False: attention q/k/v/o biases stay 0 (Nanda et al. 2023's model has none)
    # attention rate (Zhong et al. 2023): pattern = attn_rate * softmax + (1 - attn_rate) * J, J the
    # all-ones matrix on the causal positions; 1: ordinary attention, 0: constant attention (their
    # "Model B", which learns the pizza). Formulas: `workbench.model.rated_pattern`.
    attn_rate: float = 1.0
    # training variants (`workbench.training.variants`; the `variants` sweep compares them on the same seeds)
    grokfast: str = "none"  # Grokfast's gradient filter (Lee et al. 2024): none, ema or ma
    grokfast_alpha: float = 0.98  # the ema filter's momentum (the paper's default)
    grokfast_lamb: float = 2.0  # the amplification of the slow gradient (paper: 2 for ema, 5 for ma)
    grokfast_window: int = 100  # the ma filter's window (the paper's default)
    loss: str = "cross_entropy"  # or stablemax (Prieto et al. 2025)
    optimizer: str = "adamw"  # or orthograd: AdamW on the ⊥Grad gradient (Prieto et al. 2025)
    # what is recorded
    eval_every: int = 10  # train/test loss and accuracy every this many steps
    ckpt_every: int = 100  # a checkpoint every this many steps (0: none)
    ckpt_log: int = 0  # plus this many log-spaced checkpoints over [1, epochs]

    def __post_init__(self) -> None:
        for f in fields(self):  # NaN passes every comparison below and inf most: refuse both first
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{f.name} must be a finite number, got {value}")
            if f.type == "int" and isinstance(value, int) and not isinstance(value, bool) \
                    and abs(value) > LIMITS.get(f.name, MAX_NUMBER):
                raise UsageError(f"{f.name}={value} is beyond what any run here can use (at most "
                                 f"{LIMITS.get(f.name, MAX_NUMBER):,}); give a smaller value")
        check_task(self.operation, self.p)
        if not 0.0 < self.frac_train < 1.0:
            raise UsageError(f"frac_train must lie strictly between 0 and 1, got {self.frac_train}")
        for name in ("n_layers", "d_model", "n_heads", "d_head", "d_mlp", "epochs", "eval_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("warmup_steps", "ckpt_every", "ckpt_log"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.split_rule not in SPLIT_RULES:
            raise UsageError(f"unknown split_rule {self.split_rule!r}; valid: {', '.join(SPLIT_RULES)}")
        if self.init not in INIT_RULES:
            raise UsageError(f"unknown init {self.init!r}; valid: {', '.join(INIT_RULES)}")
        if self.act_fn not in ACTIVATIONS:
            raise UsageError(f"unknown act_fn {self.act_fn!r}; valid: {', '.join(ACTIVATIONS)}")
        if not self.lr > 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.attn_rate <= 1.0:
            raise UsageError(f"attn_rate must lie in [0, 1] (1: trained attention, 0: constant attention), "
                             f"got {self.attn_rate}")
        if not (self.init_scale > 0 and self.init_scale < float("inf")):
            raise UsageError(f"init_scale must be a positive number (1: the init rule's own scale), got {self.init_scale}")
        if not 0.0 <= self.label_noise < 1.0:
            raise UsageError(f"label_noise must lie in [0, 1) (the fraction of training labels made wrong), "
                             f"got {self.label_noise}")
        for name, valid in (("grokfast", GROKFAST), ("loss", LOSSES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in valid:
                raise UsageError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise UsageError(f"grokfast_alpha must lie in [0, 1), got {self.grokfast_alpha}")
        if self.grokfast_lamb < 0:
            raise UsageError(f"grokfast_lamb must be >= 0, got {self.grokfast_lamb}")
        if self.grokfast_window < 1:
            raise UsageError(f"grokfast_window must be a positive integer, got {self.grokfast_window}")
        if self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UsageError(f"{name} must lie in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Hard ceilings, far past anything a run here can train, so that an absurd number is refused at
# once; whether a config fits this machine is checked against its memory and disk before anything
# is allocated or written (`workbench.training.budget`).
MAX_NUMBER = 10**9
LIMITS = {"n_layers": 1_000, "n_heads": 10_000, "p": 1_000_003, "d_model": 10**7, "d_head": 10**7, "d_mlp": 10**8}

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_KIND_WORDS = {int: "a whole number", float: "a finite number", str: "text", bool: "true or false"}
FIELD_TYPES: dict[str, type] = {f.name: _TYPES[str(f.type)] for f in fields(RunConfig)}


def coerce(key: str, value: Any) -> Any:
    """``value`` (a string from the command line, or a TOML value) as field ``key``'s type; a
    `UsageError` naming the field if it is not one."""
    kind = FIELD_TYPES[key]
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            as_float = float(text)
            if not math.isfinite(as_float) or as_float != int(as_float):
                raise ValueError(text)
            return int(as_float)
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise UsageError(f"{key} must be a finite number, got {value!r}")
            return number
        return kind(text)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{key} must be {_KIND_WORDS[kind]}, got {value!r}") from None


def from_dict(values: Mapping[str, Any]) -> RunConfig:
    """A validated config from field values; unknown keys are refused with the valid list."""
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise UsageError(
            f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(FIELD_TYPES)}"
        )
    return RunConfig(**{k: coerce(k, v) for k, v in values.items()})


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESET_DIR.glob("*.toml"))


def read_preset(name: str) -> dict[str, Any]:
    """The departures from the defaults that preset ``name`` makes (its TOML file)."""
    path = PRESET_DIR / f"{name}.toml"
    if "/" in name or not path.is_file():
        raise UsageError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    with path.open("rb") as f:
        return tomllib.load(f)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "p=97"]`` -> ``{"lr": "1e-3", "p": "97"}``; values are coerced later. A key
    given twice is refused (which one was meant?)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"override {item!r} is not of the form key=value (e.g. lr=1e-3)")
        if key.strip() in out:
            raise UsageError(f"{key.strip()} is given twice ({key.strip()}={out[key.strip()]} and {item}); give it once")
        out[key.strip()] = value.strip()
    return out


def _read_config_file(path: Path) -> dict[str, Any]:
    """The fields in a ``.toml`` or ``.json`` config file (`inputs.read_user_file`: bounded in size
    and depth); one `UsageError` line if it cannot be read."""
    values = read_user_file(path, "config file", "give a .toml or .json file of config fields (key = value)")
    if not isinstance(values, dict):
        raise UsageError(f"{path} holds no table of config fields (got {type(values).__name__})")
    return values


def load_config(
    source: str | Path | Mapping[str, Any] | RunConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:
    """One entry point for CLI, notebooks and tests.

    ``source`` is a preset name, a path to a ``.toml``/``.json`` config file, a mapping of
    fields, a `RunConfig`, or None for the default preset. ``overrides`` win over it.
    """
    if source is None:
        source = DEFAULT_PRESET
    if isinstance(source, RunConfig):
        base = source.to_dict()
    elif isinstance(source, Mapping):
        base = dict(source)
    else:
        path = Path(source)
        if path.suffix in (".toml", ".json") and path.exists():  # a FIFO or a folder: said by read_user_file
            base = _read_config_file(path)
        else:
            base = read_preset(str(source))
    return from_dict({**base, **(overrides or {})})
