"""One-line text summaries of a run for people: the CLI, the report and notebooks print these.

Example:
    >>> metrics_line({"step": 3000, "train_loss": 1.2e-7, "train_acc": 1.0, "test_loss": 0.0031, "test_acc": 1.0}, 3000)
    'step 3000/3000  train loss 1.2e-07 acc 100.0%  test loss 0.0031 acc 100.0%'
"""

from __future__ import annotations

from typing import Any


def metrics_line(row: dict[str, Any], epochs: int | None = None) -> str:
    """An evaluation row (`store.Run.last_metrics`) as one line; ``epochs`` adds "/total". A value
    the row lacks (an imported run logs losses without accuracies between checkpoints) shows as -.

        >>> metrics_line({"step": 40000, "train_loss": 2e-7}, 40000)
        'step 40000/40000  train loss 2e-07 acc -  test loss - acc -'
    """
    step = f"step {row['step']}" + (f"/{epochs}" if epochs is not None else "")

    def show(key: str, form: str) -> str:
        value = row.get(key)
        return "-" if value is None else format(value, form)
    return (f"{step}  train loss {show('train_loss', '.3g')} acc {show('train_acc', '.1%')}  "
            f"test loss {show('test_loss', '.3g')} acc {show('test_acc', '.1%')}")
