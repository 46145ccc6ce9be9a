"""Baskets for rule mining: `OrderLines` -> a sparse boolean basket x item matrix.

`build_baskets` makes one row per order (or per customer, `level="customer"`) and one column per
item (product id, product name or category). Only sales lines count: return lines are excluded
(a returned product is not evidence that it was wanted with the rest of the basket). Lines without
the basket key or the item (a null customer id or product name) are excluded. Items found in
fewer than `min_item_count` baskets are dropped before mining. Every exclusion is counted in
`Baskets.stats`; a basket left empty by pruning stays as an empty row, so supports keep the true
number of baskets as their denominator.

Basket-only files (`basket_csv`, `basket_dat`) are read by `features.readers.baskets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

Level = Literal["order", "customer"]
ItemColumn = Literal["product_id", "product_name", "category"]
LEVEL_KEY = {"order": "order_id", "customer": "customer_id"}


@dataclass
class Baskets:
    """Baskets x items as a CSR boolean matrix (sorted column indices), with labels and counts."""

    matrix: sp.csr_matrix
    items: np.ndarray  # column j is items[j] (str); sorted, so code order is label order
    ids: np.ndarray  # row i is basket ids[i] (order or customer id, str)
    level: str = "order"
    item: str = "product_id"
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def n_baskets(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    def item_counts(self) -> np.ndarray:
        """Baskets that hold each item (the item's absolute support)."""
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def sizes(self) -> np.ndarray:
        return np.diff(self.matrix.indptr)

    def subset(self, rows: np.ndarray) -> Baskets:
        """The same item vocabulary for a subset of baskets (positional rows), e.g. a split."""
        rows = np.asarray(rows)
        stats = {**self.stats, "baskets": len(rows)}
        return Baskets(self.matrix[rows], self.items, self.ids[rows], self.level, self.item, stats)

    def transactions(self) -> list[list[int]]:
        """Item codes per non-empty basket, as plain lists (the input pyFIM and pure-Python miners take)."""
        flat = self.matrix.indices.tolist()
        bounds = self.matrix.indptr.tolist()
        return [flat[a:b] for a, b in pairwise(bounds) if b > a]

    def as_lists(self) -> list[list[str]]:
        """Item labels per basket (empty baskets included)."""
        flat = self.items[self.matrix.indices].tolist()
        bounds = self.matrix.indptr.tolist()
        return [flat[a:b] for a, b in pairwise(bounds)]


def basket_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Boolean CSR from (row, column) pairs; repeated pairs collapse to one True."""
    data = np.ones(len(rows), dtype=np.int32)
    m = sp.csr_matrix((data, (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    m.data = np.ones(len(m.data), dtype=bool)
    return m


def build_baskets(
    lines: pd.DataFrame, level: Level = "order", item: ItemColumn = "product_id", min_item_count: int = 1
) -> Baskets:
    """Baskets from validated order lines (see the module docstring for what is excluded and counted)."""
    if level not in LEVEL_KEY:
        raise ValueError(f"basket level must be one of {sorted(LEVEL_KEY)}, got {level!r}")
    if item not in ("product_id", "product_name", "category"):
        raise ValueError(f"basket item must be product_id, product_name or category, got {item!r}")
    if min_item_count < 1:
        raise ValueError(f"min_item_count must be >= 1, got {min_item_count}")
    key = LEVEL_KEY[level]
    missing = [c for c in dict.fromkeys([key, item, "returned"]) if c not in lines.columns]
    if missing:
        raise ValueError(f"order lines lack column(s) needed for baskets: {missing}")
    returned = lines["returned"].to_numpy(dtype=bool)
    no_key = lines[key].isna().to_numpy()
    no_item = lines[item].isna().to_numpy()
    used = ~returned & ~no_key & ~no_item
    stats = {
        "lines_total": len(lines),
        "return_lines_excluded": int(returned.sum()),
        f"lines_without_{key}": int((~returned & no_key).sum()),
        f"lines_without_{item}": int((~returned & ~no_key & no_item).sum()),
        "lines_used": int(used.sum()),
    }
    if not used.any():
        raise ValueError(f"no sales line has both a {key} and a {item}: no baskets")
    basket_codes, ids = pd.factorize(lines.loc[used, key], sort=True)
    item_codes, items = pd.factorize(lines.loc[used, item], sort=True)
    matrix = basket_matrix(basket_codes, item_codes, (len(ids), len(items)))
    baskets = Baskets(matrix, _labels(items), _labels(ids), level, item, stats)
    return prune_items(baskets, min_item_count)


def _labels(values: pd.Index) -> np.ndarray:
    return np.asarray(values.astype(str), dtype=object)


def prune_items(baskets: Baskets, min_count: int) -> Baskets:
    """Drop the items held by fewer than `min_count` baskets; rows stay (an emptied basket is counted)."""
    counts = baskets.item_counts()
    keep = counts >= min_count
    matrix = baskets.matrix[:, np.flatnonzero(keep)] if not keep.all() else baskets.matrix
    sizes_before = baskets.sizes()
    sizes_after = np.diff(matrix.indptr)
    stats = {
        **baskets.stats,
        "baskets": baskets.n_baskets,
        "items_before_pruning": baskets.n_items,
        "items_pruned": int((~keep).sum()),
        "item_occurrences_pruned": int(counts[~keep].sum()),
        "baskets_empty_after_pruning": int(((sizes_before > 0) & (sizes_after == 0)).sum()),
        "items": int(keep.sum()),
        "min_item_count": int(min_count),
    }
    return Baskets(matrix.tocsr(), baskets.items[keep], baskets.ids, baskets.level, baskets.item, stats)
