"""The outcome class of a run: comprehension, grokking, memorisation or confusion.

Liu et al. 2022 ("Towards understanding grokking: an effective theory of representation
learning", Sec. 5 and Fig. 6) sort training runs over a phase diagram into four classes by when
the train and validation accuracies rise: comprehension (the model generalises as soon as it
fits), grokking (it fits first and generalises much later), memorisation (it fits and never
generalises) and confusion (it does not even fit the training set). Here, from the run's
metrics alone (so it needs no probe and applies to every task), with t_fit the first evaluation
step with train accuracy >= `ACC`, and t_gen the first with test accuracy >= `ACC`:

    confusion       t_fit never comes
    memorisation    t_fit comes, t_gen never does (within the run)
    comprehension   t_gen <= DELAY_FACTOR * t_fit + MIN_DELAY   (generalisation keeps pace with fitting)
    grokking        t_gen >  DELAY_FACTOR * t_fit + MIN_DELAY   (generalisation lags far behind)

Liu et al. state the grokking criterion as a delay between the two accuracies; the factor 2 plus
`MIN_DELAY` steps is this workbench's reading of "much later", written here so it can be
checked and changed. A run that reaches ``ACC`` and later falls back keeps its class (first
crossings count). With label noise the train accuracy is measured on the noisy labels, so
fitting them means memorising the noise.

Example:
    >>> outcome(workbench.open_run("demo").metrics)["outcome"]    # smoke memorises and never generalises
    'memorisation'
"""

from __future__ import annotations

ACC = 0.99
DELAY_FACTOR = 2.0
MIN_DELAY = 100
CLASSES = ("comprehension", "grokking", "memorisation", "confusion")

CRITERIA = {
    "fit_step": f"first step with train accuracy >= {ACC:.0%}",
    "gen_step": f"first step with test accuracy >= {ACC:.0%}",
    "confusion": "train accuracy never reaches the threshold (no fit_step)",
    "memorisation": "fits (fit_step) but test accuracy never reaches the threshold (no gen_step)",
    "comprehension": f"gen_step <= {DELAY_FACTOR:g} x fit_step + {MIN_DELAY}: generalises about as soon as it fits",
    "grokking": f"gen_step > {DELAY_FACTOR:g} x fit_step + {MIN_DELAY}: generalises long after fitting",
    "source": "Liu et al. 2022, 'Towards understanding grokking: an effective theory of representation learning'",
}


def _first(metrics, column: str) -> int | None:
    hit = metrics[metrics[column] >= ACC]
    return int(hit.step.iloc[0]) if len(hit) else None


def outcome(metrics) -> dict:
    """metrics: a DataFrame with step, train_acc, test_acc (a run's ``metrics.jsonl``) ->
    ``{"outcome": class, "fit_step": int | None, "gen_step": int | None}``."""
    m = metrics.sort_values("step")
    fit, gen = _first(m, "train_acc"), _first(m, "test_acc")
    if fit is None:
        cls = "confusion"
    elif gen is None:
        cls = "memorisation"
    elif gen <= DELAY_FACTOR * fit + MIN_DELAY:
        cls = "comprehension"
    else:
        cls = "grokking"
    return {"outcome": cls, "fit_step": fit, "gen_step": gen}
