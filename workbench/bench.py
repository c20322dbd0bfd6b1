"""Benchmarks (``make bench``): ratios measured side by side in one process, printed as a table.

Sections:
    train   ms per full-batch epoch at the nanda2023 configuration, (a) the workbench trainer
            vs (b) the same AdamW step written directly on a TransformerLens TransformerBridge,
            alternated round by round so machine noise hits both alike. Target (a) <= 0.55 (b).
    fast    the `fast` preset end to end: wall time to test accuracy >= 99%, and the epochs
            to memorisation (train acc >= 99%) and to grokking (test acc >= 99%).

Results are printed as a Markdown table and written to ``bench-results/<section>.md``.

Example:
    $ python -m workbench.bench --only train
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parents[1] / "bench-results"


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"### {title}", "", f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def bench_train(rounds: int = 7, epochs_per_round: int = 5) -> str:
    from workbench.config import load_config
    from workbench.model import FastTransformer, build_bridge, initial_weights
    from workbench.tasks import make_dataset, make_split

    cfg = load_config("nanda2023")
    ds = make_dataset(cfg.operation, cfg.p)
    split = make_split(ds.n_examples, cfg.frac_train, cfg.split_seed)
    x, y = ds.tokens[split.train], ds.labels[split.train]
    weights = initial_weights(cfg)

    fast = FastTransformer(cfg, weights)
    bridge = build_bridge(cfg, weights)
    bridge.train()
    opts = {
        "workbench": torch.optim.AdamW(fast.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay),
        "bridge": torch.optim.AdamW(bridge.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay),
    }
    forwards = {"workbench": lambda: fast(x), "bridge": lambda: bridge(x)[:, -1]}

    def epoch(name: str) -> None:
        loss = F.cross_entropy(forwards[name]().double(), y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    for name in forwards:  # warm-up
        for _ in range(2):
            epoch(name)
    times: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(rounds):
        for name in forwards:
            t0 = time.perf_counter()
            for _ in range(epochs_per_round):
                epoch(name)
            times[name].append((time.perf_counter() - t0) / epochs_per_round * 1000)
    a, b = statistics.median(times["workbench"]), statistics.median(times["bridge"])
    rows = [
        ("configuration", f"nanda2023: p={cfg.p}, {len(x)} train examples, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}"),
        ("threads", str(torch.get_num_threads())),
        ("(a) workbench trainer, ms/epoch (median)", f"{a:.1f}"),
        ("(b) TransformerBridge training, ms/epoch (median)", f"{b:.1f}"),
        ("ratio (a)/(b) (target <= 0.55)", f"{a / b:.2f}"),
    ]
    return _table("Training step, full batch", rows)


def bench_fast() -> str:
    import workbench

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_CHECKPOINTS"] = tmp
        t0 = time.perf_counter()
        run = workbench.train("bench-fast", "fast", device="cpu", progress=False)
        total = time.perf_counter() - t0
        metrics = run.metrics
        startup = run.provenance["sessions"][0]
        memorised = metrics[metrics.train_acc >= 0.99].step.min()
        grokked_rows = metrics[metrics.test_acc >= 0.99]
        grokked = grokked_rows.step.min() if len(grokked_rows) else None
        wall_to_grok = grokked_rows.wall_s.min() if len(grokked_rows) else None
        cfg = run.config
    rows = [
        ("configuration", f"fast: {cfg.operation} mod {cfg.p}, d_model {cfg.d_model}, lr {cfg.lr:g}, {cfg.epochs} epochs"),
        ("epochs to memorisation (train acc >= 99%)", str(memorised)),
        ("epochs to grokking (test acc >= 99%)", str(grokked)),
        ("grokking / memorisation (target >= 5)", f"{grokked / memorised:.1f}" if grokked and memorised else "n/a"),
        ("wall s to test acc >= 99%, training loop", f"{wall_to_grok:.1f}" if wall_to_grok is not None else "never"),
        ("wall s for the whole run incl. start-up", f"{total:.1f}"),
        ("training-loop wall s, all epochs", f"{startup.get('wall_s', float('nan')):.1f}"),
    ]
    return _table("The `fast` preset", rows)


SECTIONS = {"train": bench_train, "fast": bench_fast}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"error: unknown bench section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        text = SECTIONS[name]()
        print(text, flush=True)
        (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
