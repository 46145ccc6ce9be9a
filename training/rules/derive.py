"""Rules from frequent itemsets, computed exactly from the itemset counts.

Every frequent itemset S of 2+ items gives one rule S - {c} -> c per item c (single-item
consequents: the recommender ranks items, and a multi-item consequent never has a higher confidence
than each of its items). support = n(S)/n, confidence = n(S)/n(S - {c}), lift = confidence /
(n({c})/n). Rules below min_confidence or min_lift are dropped; the miner's max_len bounds |S|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.baskets import basket_matrix
from training.rules.mining import Itemsets


@dataclass
class Rules:
    """Rules A -> c: antecedents as a CSR incidence (rules x items), the rest one value per rule."""

    antecedents: sp.csr_matrix
    consequents: np.ndarray
    count: np.ndarray  # baskets holding A and c
    antecedent_count: np.ndarray
    consequent_count: np.ndarray
    n_baskets: int

    def __len__(self) -> int:
        return len(self.consequents)

    @property
    def support(self) -> np.ndarray:
        return self.count / self.n_baskets

    @property
    def confidence(self) -> np.ndarray:
        return self.count / self.antecedent_count

    @property
    def lift(self) -> np.ndarray:
        return self.count * self.n_baskets / (self.antecedent_count * self.consequent_count)

    def antecedent(self, r: int) -> tuple[int, ...]:
        ptr = self.antecedents.indptr
        return tuple(self.antecedents.indices[ptr[r] : ptr[r + 1]].tolist())

    def frame(self, labels: np.ndarray) -> pd.DataFrame:
        ante = [tuple(labels[list(self.antecedent(r))].tolist()) for r in range(len(self))]
        return pd.DataFrame(
            {
                "antecedent": ante,
                "consequent": labels[self.consequents].tolist() if len(self) else [],
                "count": self.count,
                "support": self.support,
                "confidence": self.confidence,
                "lift": self.lift,
                "antecedent_count": self.antecedent_count,
                "consequent_count": self.consequent_count,
            }
        )


def rules_from_itemsets(
    itemsets: Itemsets, n_items: int, min_confidence: float = 0.0, min_lift: float = 0.0
) -> Rules:
    """Every rule S - {c} -> c of the frequent itemsets, kept when it meets both thresholds."""
    single = np.zeros(n_items, dtype=np.int64)
    if 1 in itemsets.sets:
        single[itemsets.sets[1][:, 0]] = itemsets.counts[1]
    parts = []
    for size in sorted(s for s in itemsets.sets if s >= 2):
        sets, counts = itemsets.sets[size], itemsets.counts[size]
        lookup = _index(itemsets.sets[size - 1])
        for j in range(size):
            ante = np.delete(sets, j, axis=1)
            pos = lookup.get_indexer(pd.MultiIndex.from_arrays(list(ante.T)) if size > 2 else ante[:, 0])
            if (pos < 0).any():
                raise AssertionError("a subset of a frequent itemset is missing: the engine's output is incomplete")
            parts.append((ante, sets[:, j], counts, itemsets.counts[size - 1][pos]))
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return Rules(sp.csr_matrix((0, n_items), dtype=np.int32), empty, empty, empty, empty, itemsets.n_baskets)
    cons = np.concatenate([p[1] for p in parts])
    count = np.concatenate([p[2] for p in parts])
    ante_count = np.concatenate([p[3] for p in parts])
    cons_count = single[cons]
    n = itemsets.n_baskets
    keep = (count / ante_count >= min_confidence) & (count * n / (ante_count * cons_count) >= min_lift)
    rows, cols, offset = [], [], 0
    for ante, *_ in parts:
        m, width = ante.shape
        rows.append(np.repeat(np.arange(offset, offset + m), width))
        cols.append(ante.ravel())
        offset += m
    antecedents = basket_matrix(np.concatenate(rows), np.concatenate(cols), (offset, n_items))[np.flatnonzero(keep)]
    return Rules(antecedents, cons[keep], count[keep], ante_count[keep], cons_count[keep], n)


def _index(sets: np.ndarray) -> pd.Index:
    return pd.MultiIndex.from_arrays(list(sets.T)) if sets.shape[1] > 1 else pd.Index(sets[:, 0])
