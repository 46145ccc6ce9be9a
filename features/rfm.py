"""RFM: the one definition of quintile scores and of the customer segment names vocabulary.

The KPI report's RFM grid (`features.kpis.rfm`), the segmenter's RFM baseline and the names the
K-means segmenter gives its clusters (`training.segment`) all use this module, so "champions"
or "at risk" means the same in a KPI table and in a model's output. Recency, frequency and
monetary themselves are defined once, in `features.customers`.

Scores: a value's average rank among the reference values (ties share their average rank) gives
`score = floor(5 * (rank - 0.5) / n) + 1`, clipped to 1..5. Scored against themselves (the KPI),
n distinct values split into five equal quintiles and identical customers always get identical
scores; scored against training customers (a model), new customers get the training quintiles.
Recency is scored reversed (the most recent purchase scores 5). FM = ceil((F + M) / 2).

Segments, by R (rows) and FM (columns), a fixed documented grid:

    R \\ FM   1                2                3                4           5
    5        new              potential loyalist potential loyalist champions champions
    4        promising        potential loyalist potential loyalist loyal      loyal
    3        about to sleep   about to sleep   need attention     loyal       loyal
    2        hibernating      hibernating      at risk            at risk     cannot lose
    1        lost             lost             at risk            at risk     cannot lose

Features beyond R, F and M add a qualifier to a name (`QUALIFIERS`, e.g. "loyal (high returns)").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RFM = ["recency", "frequency", "monetary"]
SCORES = {"recency": "r", "frequency": "f", "monetary": "m"}
MIDDLE = 3  # the score of an axis nobody measured: neither high nor low

SEGMENT_GRID = np.array([
    ["lost", "lost", "at risk", "at risk", "cannot lose"],
    ["hibernating", "hibernating", "at risk", "at risk", "cannot lose"],
    ["about to sleep", "about to sleep", "need attention", "loyal", "loyal"],
    ["promising", "potential loyalist", "potential loyalist", "loyal", "loyal"],
    ["new", "potential loyalist", "potential loyalist", "champions", "champions"],
])  # [R - 1, FM - 1]
SEGMENTS = ["champions", "loyal", "potential loyalist", "new", "promising", "need attention", "about to sleep",
            "at risk", "cannot lose", "hibernating", "lost"]

#: feature -> (qualifier when its segment mean is high, when it is low)
QUALIFIERS = {
    "return_rate": ("high returns", "few returns"),
    "tenure": ("long-standing", "recently joined"),
    "aov": ("big baskets", "small baskets"),
    "quantity": ("many units", "few units"),
}


def quintile_score(values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """1..5 from the average rank of each value among `reference` (default: the values themselves)."""
    v = np.asarray(values, dtype=np.float64)
    ref = np.sort(v if reference is None else np.asarray(reference, dtype=np.float64))
    if len(ref) == 0:
        raise ValueError("quintile scores need at least one reference value")
    below = np.searchsorted(ref, v, side="left")
    ties = np.searchsorted(ref, v, side="right") - below
    score = np.floor(5 * (below + ties / 2) / len(ref)) + 1  # rank - 0.5 = below + ties / 2
    return np.clip(score, 1, 5).astype(np.int64)


def axis_score(feature: str, values: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The R, F or M score of `values`: recency is scored reversed (recent is good)."""
    sign = -1.0 if feature == "recency" else 1.0
    ref = None if reference is None else sign * np.asarray(reference, dtype=np.float64)
    return quintile_score(sign * np.asarray(values, dtype=np.float64), ref)


def rfm_scores(table: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Columns r, f, m (1..5) of the RFM features in `table`, scored against `reference` (default: `table`)."""
    return pd.DataFrame(
        {
            SCORES[c]: axis_score(c, table[c].to_numpy(), None if reference is None else reference[c].to_numpy())
            for c in RFM
        },
        index=table.index,
    )


def fm_score(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """FM = ceil((F + M) / 2)."""
    return (np.asarray(f, dtype=np.int64) + np.asarray(m, dtype=np.int64) + 1) // 2


def grid_segment(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The grid's segment name of each (R, F, M) score triple."""
    r = np.asarray(r, dtype=np.int64)
    return SEGMENT_GRID[r - 1, fm_score(f, m) - 1]


def qualified(name: str, feature: str, high: bool) -> str:
    """`name` with the qualifier of a feature that sets the segment apart, e.g. "loyal (high returns)"."""
    return f"{name} ({QUALIFIERS[feature][0 if high else 1]})"
