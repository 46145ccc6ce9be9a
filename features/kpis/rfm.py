"""RFM KPI: recency, frequency and monetary quintile scores (1-5) and named segments, per customer.

Nothing is defined here: recency (days to the reference date = last order date + 1 day), frequency
(orders) and monetary (NET revenue: sales minus returns) are `features.customers`' customer features,
the very values the segmenter is trained on; the quintile scores, FM and the (R, FM) segment grid
are `features.rfm`'s, the vocabulary the segmenter names its segments with. Customers with at least
one purchase (sales line) are scored; lines without a customer id are counted, not scored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.customers import build_customer_features
from features.kpis.base import KpiUnavailable, Prepared, prepare
from features.rfm import RFM, SEGMENT_GRID, SEGMENTS, fm_score, grid_segment, quintile_score, rfm_scores

__all__ = ["SEGMENT_GRID", "SEGMENTS", "quintile_score", "rfm", "rfm_table"]


def _scored(data: Prepared) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The per-customer table of `rfm_table` and the reference date recency is counted to."""
    if data.lines_without_customer == len(data.lines):
        raise KpiUnavailable("no line has a customer id")
    feats = build_customer_features(data.lines, candidates=RFM)
    out = feats.table.loc[feats.table["frequency"] > 0, ["customer_id", *RFM]].reset_index(drop=True)
    if out.empty:
        raise KpiUnavailable("no sales line has a customer id")
    out = out.join(rfm_scores(out))
    out["fm"] = fm_score(out["f"], out["m"])
    out["segment"] = grid_segment(out["r"], out["f"], out["m"])
    return out, feats.reference_date


def rfm_table(lines: pd.DataFrame | Prepared) -> pd.DataFrame:
    """Per customer with a purchase: recency, frequency, monetary, the three scores, FM and the segment."""
    return _scored(prepare(lines))[0]


def rfm(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Segment sizes and (net) revenue shares, with each segment's mean R, F and M values."""
    data = prepare(lines)
    table, reference = _scored(data)
    grouped = table.groupby("segment", sort=False).agg(
        customers=("customer_id", "size"), revenue=("monetary", "sum"),
        mean_recency=("recency", "mean"), mean_frequency=("frequency", "mean"), mean_monetary=("monetary", "mean"),
    )
    grouped = grouped.reindex([s for s in SEGMENTS if s in grouped.index])
    grouped.insert(1, "customer_share", grouped["customers"] / len(table))
    total = table["monetary"].sum()
    grouped.insert(3, "revenue_share", grouped["revenue"] / total if total else float("nan"))
    return {
        "reference_date": str(reference.date()),
        "customers": len(table),
        "lines_without_customer": data.lines_without_customer,
        "rule": "scores 1-5 by average-rank quintile (recency reversed); FM = ceil((F + M) / 2); segment from the "
                "(R, FM) grid in features.rfm; recency counted to the last order date + 1 day; monetary is net revenue",
        "segments": grouped.rename_axis("segment").reset_index(),
    }
