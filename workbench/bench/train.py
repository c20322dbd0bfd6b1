"""The train section: the training step before and after the table-lookup step, side by side, and
its FLOP rate against the matrix-product peak.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.bench.measure import alternate, device_name, matmul_peak, table
from workbench.config import load_config
from workbench.model import FastTransformer, build_bridge, initial_weights, trainable_names
from workbench.tasks import make_dataset, make_split
from workbench.training import Batch, GroupStep, stacked_forward, step_flops


def train_set(cfg, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The preset's training inputs [n, 3] and labels [n], on ``device``."""
    ds = make_dataset(cfg.operation, cfg.p)
    split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed, cfg.split_rule)
    return ds.tokens[split.train].to(device), ds.labels[split.train].to(device)


class PlainStep:
    """The step the trainers took before the table-lookup step, as it was: the plain forward (one
    member: `FastTransformer`, whose ``forward`` the solo trainer ran; more: `stacked_forward`, the
    batched trainer's), the float64 ``F.cross_entropy`` and AdamW tensor by tensor
    (`torch.optim.AdamW`'s default on CPU; the batched trainer's own AdamW made the same per-tensor
    operations), every trainable weight updated."""

    def __init__(self, cfg, members: int, device: torch.device):
        self.cfg, self.members = cfg, members
        x, y = train_set(cfg, device)
        weights = initial_weights(cfg)
        if members == 1:
            self.module = FastTransformer(cfg, weights).to(device)
            params = [self.module.w(n) for n in trainable_names(cfg)]
            self.tokens, self.labels = x, y
        else:
            self.w = {n: weights[n].to(device).unsqueeze(0).repeat(members, *[1] * weights[n].dim()) for n in weights}
            params = [self.w[n].requires_grad_() for n in trainable_names(cfg)]
            self.tokens, self.labels = x.expand(members, -1, -1), y.expand(members, -1)
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                                           foreach=False)

    def __call__(self) -> None:
        if self.members == 1:
            logits = self.module(self.tokens)
            loss = F.cross_entropy(logits.double(), self.labels)
        else:
            logits = stacked_forward(self.cfg, self.w, self.tokens)
            per = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), self.labels.reshape(-1), reduction="none")
            loss = per.view(self.members, -1).mean(1).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class LookupStep:
    """The step the trainers take now (`workbench.training.step.GroupStep`), on ``members`` copies
    of the preset's initial weights and training set."""

    def __init__(self, cfg, members: int, device: torch.device):
        x, y = train_set(cfg, device)
        self.model = GroupStep(cfg, [cfg] * members, [initial_weights(cfg)] * members, [{}] * members, [{}] * members,
                               device)
        self.batch = Batch([x] * members, [y] * members, len(x))
        self.step = 100  # past the warm-up

    def __call__(self) -> None:
        self.model.update(self.batch.losses(self.model.logits(self.batch)), self.step)
        self.step += 1


def bench_train(device: torch.device, small: bool = False) -> str:
    rounds, epochs_per_round = (2, 1) if small else (7, 5)
    peak = matmul_peak(device, rounds)
    rows = [("device", device_name(device)), ("threads", str(torch.get_num_threads())),
            ("single-precision matrix product (n = 8192 on a GPU, 2048 on a CPU): GFLOP/s, the peak", f"{peak:.0f}")]
    for preset in ("smoke",) if small else ("fast", "nanda2023"):
        cfg = load_config(preset)
        n = len(train_set(cfg, torch.device("cpu"))[0])
        variants = {"a": PlainStep(cfg, 1, device), "b": LookupStep(cfg, 1, device)}
        if preset in ("nanda2023", "smoke"):
            variants["c"] = _bridge_step(cfg, device)
        ms = alternate(variants, device, rounds, epochs_per_round)
        a, b = ms["a"], ms["b"]
        flops_a, flops_b = step_flops(cfg, n, lookup=False), step_flops(cfg, n, lookup=True)
        target = " (target <= 0.5)" if preset == "fast" else ""
        rows += [
            (f"{preset}: p={cfg.p}, {n} train inputs, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}", ""),
            (f"{preset}: (a) plain step, ms/epoch (median)", f"{a:.2f}"),
            (f"{preset}: (b) table-lookup step, ms/epoch (median)", f"{b:.2f}"),
            (f"{preset}: ratio (b)/(a){target}", f"{b / a:.2f}"),
            (f"{preset}: (b) executes {flops_b / 1e6:.0f} MFLOP/epoch: GFLOP/s, % of peak (target >= 40%)",
             f"{flops_b / (b / 1000) / 1e9:.0f}, {100 * flops_b / (b / 1000) / 1e9 / peak:.0f}%"),
            (f"{preset}: (a) executes {flops_a / 1e6:.0f} MFLOP/epoch: GFLOP/s, % of peak",
             f"{flops_a / (a / 1000) / 1e9:.0f}, {100 * flops_a / (a / 1000) / 1e9 / peak:.0f}%"),
        ]
        if "c" in ms:
            rows.append((f"{preset}: (c) TransformerBridge training, ms/epoch; (a)/(c), (b)/(c)",
                         f"{ms['c']:.1f}; {a / ms['c']:.2f}, {b / ms['c']:.2f}"))
    return table("Training step, full batch", rows)


def _bridge_step(cfg, device: torch.device):
    """One AdamW step written directly on a TransformerLens TransformerBridge (all positions)."""
    x, y = train_set(cfg, device)
    bridge = build_bridge(cfg, initial_weights(cfg)).to(device)
    bridge.train()
    opt = torch.optim.AdamW(bridge.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)

    def step() -> None:
        loss = F.cross_entropy(bridge(x)[:, -1].double(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step
