"""Return rates on Spark: overall, by category and by discount band, and the discount-return correlation.

The per-group sums come from `SparkPrepared.tables`; `features.kpis.returns` defines the rates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.kpis import KpiUnavailable
from features.kpis.base import share
from features.kpis.returns import band_labels
from features.spark.kpis.prepared import MISSING, SparkPrepared, discount_band

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Row

EMPTY = {"sold": 0, "back": 0, "sales_lines": 0, "return_lines": 0}


def _rates(rows: list[Any]) -> pd.DataFrame:
    """`features.kpis.returns._rates` from per-group sums (sold, back, sales_lines, return_lines)."""
    sold = np.array([r["sold"] or 0 for r in rows], dtype=np.float64)
    back = np.array([r["back"] or 0 for r in rows], dtype=np.float64)
    sales_lines = np.array([r["sales_lines"] for r in rows], dtype=np.int64)
    return_lines = np.array([r["return_lines"] for r in rows], dtype=np.int64)
    n = len(rows)
    return pd.DataFrame({
        "units_sold": sold.astype(np.int64), "units_returned": back.astype(np.int64),
        "return_rate": np.divide(back, sold, out=np.full(n, np.nan), where=sold > 0),
        "sales_lines": sales_lines, "return_lines": return_lines,
        "return_line_share": np.divide(return_lines, sales_lines, out=np.full(n, np.nan), where=sales_lines > 0),
    })


def _band_rows(data: SparkPrepared, edges: list[float]) -> list[Row]:
    if edges == data.edges:
        return data.tables["band"]
    return data._sums(discount_band(edges), "band")  # other bands than the prepared ones: one more job


def return_rates(data: SparkPrepared, discount_bands: list[float] | None = None) -> dict[str, Any]:
    if data.stats["sales_lines"] == 0:
        raise KpiUnavailable("no sales lines: a return rate needs units sold")
    edges = discount_bands or [0.0, 0.1, 0.2, 0.3, 0.5, 1.0]
    overall = _rates([data.stats])
    cats = {r["key"]: r for r in data.tables["category"]}
    order = [*sorted(k for k in cats if k != MISSING), MISSING]
    by_cat = _rates([cats.get(k, EMPTY) for k in order])
    by_cat.insert(0, "category", [k if k != MISSING else "(missing)" for k in order])
    by_cat = by_cat[(by_cat["sales_lines"] + by_cat["return_lines"]) > 0]
    labels = band_labels(edges)
    bands = {int(r["key"]): r for r in _band_rows(data, edges)}
    by_band = _rates([bands.get(i, EMPTY) for i in range(len(labels))])
    by_band.insert(0, "discount_band", labels)
    s = data.stats
    return {
        "definition": "return_rate = returned units / sold units; return_line_share = return lines / sales lines",
        **{column: overall[column].iloc[0] for column in overall.columns},
        "returned_value_share": share(float(s["returned"]), float(s["gross"])),
        "discount_correlation": _correlation(s),
        "note": None if s["return_lines"] else "the data has no return lines: every rate is 0",
        "by_category": by_cat.sort_values("return_rate", ascending=False, ignore_index=True),
        "by_discount_band": by_band[(by_band["sales_lines"] + by_band["return_lines"]) > 0].reset_index(drop=True),
    }


def _correlation(s: dict[str, Any]) -> float | None:
    """`features.kpis.returns._pearson` of discount and the returned flag, over all lines."""
    if s["lines"] < 2 or s["d_lo"] == s["d_hi"] or s["r_lo"] == s["r_hi"]:
        return None
    return float(s["d_corr"])
