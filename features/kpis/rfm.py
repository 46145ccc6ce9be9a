"""RFM scoring: recency, frequency and monetary quintile scores (1-5) and named segments.

Scores: each customer's value is ranked among all customers (ties get their average rank) and
`score = floor(5 * (rank - 0.5) / n) + 1`, so with n distinct values the customers split into five
equal quintiles, and identical customers always get identical scores. Recency is ranked reversed
(the most recent purchase scores 5). FM = ceil((F + M) / 2).

Segments, by R (rows) and FM (columns), a fixed documented grid:

    R \\ FM   1                2                3                4           5
    5        new              potential loyalist potential loyalist champions champions
    4        promising        potential loyalist potential loyalist loyal      loyal
    3        about to sleep   about to sleep   need attention     loyal       loyal
    2        hibernating      hibernating      at risk            at risk     cannot lose
    1        lost             lost             at risk            at risk     cannot lose
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.kpis.base import Prepared, prepare
from features.kpis.customer_value import _customers

SEGMENT_GRID = np.array([
    ["lost", "lost", "at risk", "at risk", "cannot lose"],
    ["hibernating", "hibernating", "at risk", "at risk", "cannot lose"],
    ["about to sleep", "about to sleep", "need attention", "loyal", "loyal"],
    ["promising", "potential loyalist", "potential loyalist", "loyal", "loyal"],
    ["new", "potential loyalist", "potential loyalist", "champions", "champions"],
])  # [R - 1, FM - 1]
SEGMENTS = ["champions", "loyal", "potential loyalist", "new", "promising", "need attention", "about to sleep",
            "at risk", "cannot lose", "hibernating", "lost"]


def quintile_score(values: np.ndarray) -> np.ndarray:
    """1..5 from the average rank: floor(5 * (rank - 0.5) / n) + 1."""
    rank = pd.Series(values).rank(method="average").to_numpy()
    return (np.floor(5 * (rank - 0.5) / len(values)) + 1).astype(np.int64)


def rfm_table(lines: pd.DataFrame | Prepared) -> pd.DataFrame:
    """Per customer: recency (days before the reference date), frequency (orders), monetary (sales revenue),
    the three scores, FM and the segment."""
    data = prepare(lines)
    table = _customers(data)
    recency = data.reference_day - table["last_day"].to_numpy()
    out = pd.DataFrame({
        "customer_id": table["customer_id"],
        "recency": recency,
        "frequency": table["orders"],
        "monetary": table["revenue"],
        "r": quintile_score(-recency),
        "f": quintile_score(table["orders"].to_numpy()),
        "m": quintile_score(table["revenue"].to_numpy()),
    })
    out["fm"] = (out["f"] + out["m"] + 1) // 2
    out["segment"] = SEGMENT_GRID[out["r"] - 1, out["fm"] - 1]
    return out


def rfm(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Segment sizes and revenue shares (sales revenue), with each segment's mean R, F and M values."""
    data = prepare(lines)
    table = rfm_table(data)
    grouped = table.groupby("segment", sort=False).agg(
        customers=("customer_id", "size"), revenue=("monetary", "sum"),
        mean_recency=("recency", "mean"), mean_frequency=("frequency", "mean"), mean_monetary=("monetary", "mean"),
    )
    grouped = grouped.reindex([s for s in SEGMENTS if s in grouped.index])
    grouped.insert(1, "customer_share", grouped["customers"] / len(table))
    grouped.insert(3, "revenue_share", grouped["revenue"] / table["monetary"].sum())
    return {
        "reference_date": data.reference_date,
        "customers": len(table),
        "lines_without_customer": data.lines_without_customer,
        "rule": "scores 1-5 by average-rank quintile (recency reversed); FM = ceil((F + M) / 2); "
                "segment from the (R, FM) grid in features.kpis.rfm",
        "segments": grouped.rename_axis("segment").reset_index(),
    }
