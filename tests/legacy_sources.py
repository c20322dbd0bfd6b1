"""Format-faithful legacy run files, made here without downloads: small models of the two source
codebases' architectures, trained by their own loops, saved as those codebases save them.

The models are written from the sources (Nanda et al. 2023's ``transformers.py``; TransformerLens
2.x ``HookedTransformer``), as nn.Modules with the sources' parameter names, independently of
`workbench.model.foreign`: a test's parity check compares the imported run with *these* forward passes.

* `nanda_file`: ``full_run_data.pth``-style dict: ``train_losses`` (before each update),
  ``test_losses`` (every 10 epochs), ``epochs``, ``state_dicts`` (every ``save_every``, after
  that epoch's update, as their ``train_model`` saves), ``model``, ``config`` (a plain dict);
  the split ``random.seed(seed)``, ``random.shuffle(pairs)``.
* `tl_demo_file`: the TransformerLens Grokking demo's dict: ``model``, ``config`` (a pickled
  ``HookedTransformerConfig`` object under TL 2.x's module path or TL 3.3+'s, with torch dtype and
  device fields and the numpy float64 fields TL 2.0-3.x sets, ``initializer_range = 0.8 /
  np.sqrt(d_model)`` and ``attn_scale = np.sqrt(d_head)``), ``checkpoints``, ``checkpoint_epochs``
  (99, 199, ...), the losses and the split indices (``torch.manual_seed(seed); torch.randperm``).
  ``numpy1`` writes the numpy globals under numpy 1.x's names (``numpy.core.multiarray.scalar``),
  as files made before numpy 2 hold them.

`nanda_file` can pickle its config as their ``Config`` object from any module (``config_module``,
e.g. ``pm.transformers``, what the original's relative import produces), and can save what their
loop saves when it keeps references to the live ``state_dict()`` instead of copies (``aliased``).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import random
import sys
import types
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def pairs(p: int) -> torch.Tensor:
    """[(i, j, p) for i in range(p) for j in range(p)] as [p^2, 3]."""
    return torch.tensor([(i, j, p) for i in range(p) for j in range(p)])


class NandaTransformer(nn.Module):
    """Nanda et al. 2023's one-layer transformer, their names, shapes and einsums."""

    def __init__(self, p: int, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        d, e, V = d_model, d_model // n_heads, p + 1
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.randn(d, V) / math.sqrt(d))
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = nn.Parameter(torch.randn(3, d) / math.sqrt(d))
        block = nn.Module()
        block.attn = nn.Module()
        block.attn.W_K = nn.Parameter(torch.randn(n_heads, e, d) / math.sqrt(d))
        block.attn.W_Q = nn.Parameter(torch.randn(n_heads, e, d) / math.sqrt(d))
        block.attn.W_V = nn.Parameter(torch.randn(n_heads, e, d) / math.sqrt(d))
        block.attn.W_O = nn.Parameter(torch.randn(d, e * n_heads) / math.sqrt(d))
        block.attn.register_buffer("mask", torch.tril(torch.ones(3, 3)))
        block.mlp = nn.Module()
        block.mlp.W_in = nn.Parameter(torch.randn(d_mlp, d) / math.sqrt(d))
        block.mlp.b_in = nn.Parameter(torch.zeros(d_mlp))
        block.mlp.W_out = nn.Parameter(torch.randn(d, d_mlp) / math.sqrt(d))
        block.mlp.b_out = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList([block])
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.randn(d, V) / math.sqrt(V))
        self.d_head = e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, 3] -> logits [batch, 3, p + 1]."""
        x = torch.einsum("dbp -> bpd", self.embed.W_E[:, x]) + self.pos_embed.W_pos
        attn, mlp = self.blocks[0].attn, self.blocks[0].mlp
        k = torch.einsum("ihd,bpd->biph", attn.W_K, x)
        q = torch.einsum("ihd,bpd->biph", attn.W_Q, x)
        v = torch.einsum("ihd,bpd->biph", attn.W_V, x)
        scores = torch.einsum("biph,biqh->biqp", k, q)
        masked = torch.tril(scores) - 1e10 * (1 - attn.mask)
        pattern = F.softmax(masked / math.sqrt(self.d_head), dim=-1)
        z = torch.einsum("biph,biqp->biqh", v, pattern)
        z_flat = z.permute(0, 2, 1, 3).reshape(z.shape[0], 3, -1)  # 'b i q h -> b q (i h)'
        x = x + torch.einsum("df,bqf->bqd", attn.W_O, z_flat)
        hidden = F.relu(torch.einsum("md,bpd->bpm", mlp.W_in, x) + mlp.b_in)
        x = x + torch.einsum("dm,bpm->bpd", mlp.W_out, hidden) + mlp.b_out
        return x @ self.unembed.W_U


@dataclasses.dataclass
class HookedTransformerConfig:  # pickled under TL 2.x's module path by `_as_tl2_config`
    n_layers: int
    d_model: int
    n_ctx: int
    d_head: int
    n_heads: int
    d_mlp: int
    act_fn: str
    d_vocab: int
    d_vocab_out: int
    normalization_type: str | None
    seed: int
    init_weights: bool = True
    device: object = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    dtype: object = torch.float32
    initializer_range: float = 0.0
    attn_only: bool = False
    positional_embedding_type: str = "standard"
    attn_scale: float = 1.0


@dataclasses.dataclass
class Config:  # Nanda et al.'s config class, pickled under the module name `_as_module` gives it
    lr: float = 1e-3
    weight_decay: float = 1.0
    p: int = 113
    d_model: int = 128
    fn_name: str = "add"
    frac_train: float = 0.3
    num_epochs: int = 50000
    save_models: bool = True
    save_every: int = 100
    stopping_thresh: float = -1
    seed: int = 0
    num_layers: int = 1
    batch_style: str = "full"
    d_vocab: int = 114
    n_ctx: int = 3
    d_mlp: int = 512
    num_heads: int = 4
    act_type: str = "ReLU"
    device: object = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    use_ln: bool = False


class TL2Transformer(nn.Module):
    """TransformerLens 2.x ``HookedTransformer`` without LayerNorm: its names, shapes, buffers."""

    def __init__(self, cfg: HookedTransformerConfig):
        super().__init__()
        d, h, e, m = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
        std = 0.8 / math.sqrt(d)
        self.embed = nn.Module()
        self.embed.W_E = nn.Parameter(torch.randn(cfg.d_vocab, d) * std)
        self.pos_embed = nn.Module()
        self.pos_embed.W_pos = nn.Parameter(torch.randn(3, d) * std)
        self.blocks = nn.ModuleList()
        for _ in range(cfg.n_layers):
            block = nn.Module()
            block.attn = nn.Module()
            for name, shape in (("W_Q", (h, d, e)), ("W_O", (h, e, d)), ("W_K", (h, d, e)), ("W_V", (h, d, e))):
                setattr(block.attn, name, nn.Parameter(torch.randn(shape) * std))
            for name, shape in (("b_Q", (h, e)), ("b_O", (d,)), ("b_K", (h, e)), ("b_V", (h, e))):
                setattr(block.attn, name, nn.Parameter(torch.zeros(shape)))
            block.attn.register_buffer("mask", torch.tril(torch.ones(3, 3)).bool())
            block.attn.register_buffer("IGNORE", torch.tensor(-torch.inf))
            block.mlp = nn.Module()
            block.mlp.W_in = nn.Parameter(torch.randn(d, m) * std)
            block.mlp.b_in = nn.Parameter(torch.zeros(m))
            block.mlp.W_out = nn.Parameter(torch.randn(m, d) * std)
            block.mlp.b_out = nn.Parameter(torch.zeros(d))
            self.blocks.append(block)
        self.unembed = nn.Module()
        self.unembed.W_U = nn.Parameter(torch.randn(d, cfg.d_vocab_out) * std)
        self.unembed.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out))
        self.d_head = e
        # HookedTransformer.init_weights (init_mode "gpt2"): reseed, then every W_ in named_parameters order
        torch.manual_seed(cfg.seed)
        for name, param in self.named_parameters():
            if "W_" in name:
                nn.init.normal_(param, std=cfg.initializer_range)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [batch, 3] -> logits [batch, 3, p]."""
        x = self.embed.W_E[tokens] + self.pos_embed.W_pos
        for block in self.blocks:
            a = block.attn
            q = torch.einsum("bpd,hde->bphe", x, a.W_Q) + a.b_Q
            k = torch.einsum("bpd,hde->bphe", x, a.W_K) + a.b_K
            v = torch.einsum("bpd,hde->bphe", x, a.W_V) + a.b_V
            scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.d_head)
            scores = torch.where(a.mask, scores, a.IGNORE)
            z = torch.einsum("bhqk,bkhe->bqhe", scores.softmax(-1), v)
            x = x + torch.einsum("bqhe,hed->bqd", z, a.W_O) + a.b_O
            m = block.mlp
            x = x + F.relu(x @ m.W_in + m.b_in) @ m.W_out + m.b_out
        return x @ self.unembed.W_U + self.unembed.b_U


def _ce64(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logprobs = F.log_softmax(logits.to(torch.float64), dim=-1)
    return -logprobs.gather(-1, labels[:, None]).mean()


def nanda_file(path: Path, p: int = 23, d_model: int = 32, epochs: int = 300, save_every: int = 50,
               seed: int = 0, lr: float = 1e-2, config_module: str | None = None, aliased: bool = False) -> dict:
    """Train Nanda's model with their split and loop; save a full_run_data.pth-style dict.
    ``config_module``: pickle the config as their ``Config`` object from that module (default: a
    plain dict). ``aliased``: save ``model.state_dict()`` itself at each checkpoint, not a copy."""
    data = [(i, j, p) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(data)
    div = int(0.3 * len(data))
    train, test = torch.tensor(data[:div]), torch.tensor(data[div:])
    y_train, y_test = (train[:, 0] + train[:, 1]) % p, (test[:, 0] + test[:, 1]) % p
    torch.manual_seed(seed)
    model = NandaTransformer(p, d_model, 4, 4 * d_model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1.0, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(step / 10, 1))
    train_losses, test_losses, saved, state_dicts = [], [], [], []
    for epoch in range(epochs):
        train_loss = _ce64(model(train)[:, -1], y_train)
        train_losses.append(train_loss.item())
        if epoch % 10 == 0:
            with torch.no_grad():
                test_losses.append(_ce64(model(test)[:, -1], y_test).item())
        train_loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if epoch % save_every == 0:  # as their train_model: saved after the epoch's update
            saved.append(epoch)
            state_dicts.append(model.state_dict() if aliased else copy.deepcopy(model.state_dict()))
    config = {"lr": lr, "p": p, "d_model": d_model, "fn_name": "add", "frac_train": 0.3, "num_epochs": epochs,
              "save_models": True, "save_every": save_every, "stopping_thresh": -1, "seed": seed, "weight_decay": 1}
    if config_module:
        config = Config(**config, d_vocab=p + 1, d_mlp=4 * d_model)
    contents = {"train_losses": train_losses, "test_losses": test_losses, "epochs": saved,
                "state_dicts": state_dicts, "model": model.state_dict(), "config": config}
    with _as_module(Config, config_module or __name__):
        torch.save(contents, path)
    return {"model": model, "train": train, "contents": contents}


@contextmanager
def _as_module(cls: type, name: str):
    """Pickle ``cls`` as ``<name>.<its name>``, a module that exists only while saving (so that
    loading cannot import it)."""
    if name == cls.__module__:
        yield
        return
    parts = name.split(".")
    made = [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in sys.modules]
    for module_name in made:  # the module and any parent package pickle must import on the way
        sys.modules[module_name] = types.ModuleType(module_name)
    setattr(sys.modules[name], cls.__name__, cls)
    old = cls.__module__
    cls.__module__ = name
    try:
        yield
    finally:
        cls.__module__ = old
        for module_name in made:
            del sys.modules[module_name]


def _as_numpy1(path: Path) -> None:
    """Rewrite a torch file's numpy globals under numpy 1.x's module names (numpy 2 renamed
    numpy.core to numpy._core; files saved before it name the old one)."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
            z.writestr(info.filename, data)
    path.write_bytes(out.getvalue())


TL2_CONFIG_MODULE = "transformer_lens.HookedTransformerConfig"  # TL 2.0 to 3.2
TL33_CONFIG_MODULE = "transformer_lens.config.hooked_transformer_config"  # TL 3.3 and later


def tl_demo_file(path: Path, p: int = 23, d_model: int = 32, epochs: int = 300, every: int = 50,
                 data_seed: int = 598, model_seed: int = 999, lr: float = 1e-2, index_keys=("train_indices", "test_indices"),
                 n_layers: int = 1, config_module: str = TL2_CONFIG_MODULE, numpy1: bool = True) -> dict:
    """Train the demo's model with its split and loop; save the demo's dict. ``index_keys``:
    the names the split is stored under, or None for a file without them; ``config_module``: the
    module path TL pickled its config class under; ``numpy1``: numpy globals under numpy 1.x's names."""
    dataset = pairs(p)
    labels = (dataset[:, 0] + dataset[:, 1]) % p
    torch.manual_seed(data_seed)
    indices = torch.randperm(p * p)
    cutoff = int(p * p * 0.3)
    train_idx, test_idx = indices[:cutoff], indices[cutoff:]
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_ctx=3, d_head=d_model // 4, n_heads=4,
                                  d_mlp=4 * d_model, act_fn="relu", d_vocab=p + 1, d_vocab_out=p,
                                  normalization_type=None, seed=model_seed,
                                  initializer_range=0.8 / np.sqrt(d_model),  # numpy float64s, as TL 2.0-3.x sets them
                                  attn_scale=np.sqrt(d_model // 4))
    torch.manual_seed(model_seed)
    model = TL2Transformer(cfg)
    for name, param in model.named_parameters():
        if "b_" in name:
            param.requires_grad = False
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1.0, betas=(0.9, 0.98))
    train_losses, test_losses, checkpoints, checkpoint_epochs = [], [], [], []
    for epoch in range(epochs):
        train_loss = _ce64(model(dataset[train_idx])[:, -1], labels[train_idx])
        train_loss.backward()
        train_losses.append(train_loss.item())
        opt.step()
        opt.zero_grad()
        with torch.inference_mode():
            test_losses.append(_ce64(model(dataset[test_idx])[:, -1], labels[test_idx]).item())
        if (epoch + 1) % every == 0:
            checkpoint_epochs.append(epoch)
            checkpoints.append(copy.deepcopy(model.state_dict()))
    contents = {"model": model.state_dict(), "config": cfg, "checkpoints": checkpoints,
                "checkpoint_epochs": checkpoint_epochs, "test_losses": test_losses, "train_losses": train_losses}
    if index_keys:
        contents[index_keys[0]], contents[index_keys[1]] = train_idx, test_idx
    with _as_module(HookedTransformerConfig, config_module):
        torch.save(contents, path)
    if numpy1:
        _as_numpy1(path)
    return {"model": model, "train_idx": train_idx, "contents": contents}
