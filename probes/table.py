"""The tidy table every probe returns: one row per observation, ``step, <keys...>, value``.

A key column holds one kind of thing: ``frequency`` is a frequency k (0 being the constant
term), ``bin`` a histogram bin, ``layer`` a block (0 the first), ``head`` an attention head. Where a key does not apply to a
measure (the Gini coefficient has no frequency) the cell is missing (``<NA>``, empty in the
CSV), never a stand-in number. Integer keys use pandas' nullable ``Int64`` so they stay
integers through a CSV round trip.

Example:
    >>> tidy(120, [("gini", None, 0.4)], ("measure", "frequency")).to_dict("records")
    [{'step': 120, 'measure': 'gini', 'frequency': None, 'value': 0.4}]
"""

from __future__ import annotations

from collections.abc import Sequence

INTEGER_KEYS = ("layer", "frequency", "bin", "head")


def tidy(step: int, rows: Sequence[tuple], keys: Sequence[str]):
    """rows: tuples ``(*key values, value)`` (None for a key that does not apply) -> DataFrame
    ``step, *keys, value``, integer keys as ``Int64``. (Built column by column with its type: a
    frame converted after the fact costs several times more, once per probe and checkpoint.)"""
    import numpy as np
    import pandas as pd

    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(keys) + 1)
    data = {"step": np.full(len(rows), step, dtype=np.int64)}
    for key, values in zip(keys, columns, strict=False):
        data[key] = pd.array(list(values), dtype="Int64") if key in INTEGER_KEYS else list(values)
    data["value"] = np.asarray(columns[-1], dtype=np.float64)
    return pd.DataFrame(data)


def with_key_types(frame):
    """Integer key columns as nullable ``Int64``, values as float (after reading a CSV, too)."""
    types = {key: "Int64" for key in INTEGER_KEYS if key in frame.columns}
    if "value" in frame.columns:
        types["value"] = "float64"
    return frame.astype(types) if types else frame
