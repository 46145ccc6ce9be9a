"""Distinct counts over order lines, defined once: orders are counted by distinct `order_id`, never by lines.

Why one definition: a return line carries its sale's order id, and an order has many lines, so
"orders" is always a distinct count; the KPIs, the customer features and the synthetic shop's truth
must agree on it. The per-group form works on integer codes (`pd.factorize`), the fast path on 1M lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def distinct_count(group: np.ndarray, item: np.ndarray, n_groups: int) -> np.ndarray:
    """Distinct `item` codes per `group` code (both non-negative ints): pd.unique on one int64 key."""
    if len(group) == 0:
        return np.zeros(n_groups, dtype=np.int64)
    width = np.int64(item.max()) + 1
    pairs = pd.unique(group.astype(np.int64) * width + item.astype(np.int64))
    return np.bincount(pairs // width, minlength=n_groups)


def order_count(order_ids: pd.Series | np.ndarray) -> int:
    """Distinct orders among order ids (or their codes); nulls and negative codes (a null's code) are not orders."""
    values = pd.Series(order_ids)
    if pd.api.types.is_integer_dtype(values):
        values = values[values >= 0]
    return int(values.nunique(dropna=True))
