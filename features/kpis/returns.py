"""Return KPIs: how much comes back, per category and per discount band, and how returns track discount.

Definitions (return lines have negative quantity and returned=True, see the contract):
- return_rate (the headline rate) = returned units / sold units = -sum(qty of return lines) / sum(qty of sales lines)
- return_line_share = return lines / sales lines
- returned_value_share = -revenue of return lines / revenue of sales lines
A return line is attributed to its own category and discount (loaders keep the sale's values).
Per discount band: the band of each line's discount; band 0 is "no discount" (discount == 0), then
(edge_i, edge_i+1]. `discount_correlation` = Pearson correlation, over all lines, between the
line's discount and its returned flag (0/1): positive when return lines carry higher discounts than
sales lines; None when either is constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.kpis.base import KpiUnavailable, Prepared, prepare, share

DEFAULT_BANDS = [0.0, 0.1, 0.2, 0.3, 0.5, 1.0]


def _rates(group: np.ndarray, n: int, data: Prepared) -> pd.DataFrame:
    """Sold/returned units, lines and value per group code (all lines have a code >= 0)."""
    sale, ret = data.sale, data.returned
    sold = np.bincount(group[sale], weights=data.quantity[sale], minlength=n)
    back = -np.bincount(group[ret], weights=data.quantity[ret], minlength=n)
    sales_lines = np.bincount(group[sale], minlength=n)
    return_lines = np.bincount(group[ret], minlength=n)
    return pd.DataFrame({
        "units_sold": sold.astype(np.int64),
        "units_returned": back.astype(np.int64),
        "return_rate": np.divide(back, sold, out=np.full(n, np.nan), where=sold > 0),
        "sales_lines": sales_lines,
        "return_lines": return_lines,
        "return_line_share": np.divide(return_lines, sales_lines, out=np.full(n, np.nan), where=sales_lines > 0),
    })


def band_labels(edges: list[float]) -> list[str]:
    """"0%" for no discount, then half-open bands such as "(10%, 20%]"."""
    return ["0%"] + [f"({a:.0%}, {b:.0%}]" for a, b in zip(edges, edges[1:])]


def discount_band(discount: np.ndarray, edges: list[float]) -> np.ndarray:
    """0 for no discount, else i + 1 for a discount in (edges[i], edges[i+1]]."""
    return np.where(discount <= 0, 0, np.searchsorted(np.asarray(edges), discount, side="left"))


def return_rates(lines: pd.DataFrame | Prepared, discount_bands: list[float] | None = None) -> dict[str, Any]:
    """Return rate overall, by category and by discount band, and its correlation with discount (module docstring)."""
    data = prepare(lines)
    if not data.sale.any():
        raise KpiUnavailable("no sales lines: a return rate needs units sold")
    edges = discount_bands or DEFAULT_BANDS
    overall = _rates(np.zeros(len(data.lines), dtype=np.int64), 1, data)
    cat_codes, cats = data.codes_of("category")
    by_cat = _rates(np.where(cat_codes < 0, len(cats), cat_codes), len(cats) + 1, data)
    by_cat.insert(0, "category", [*cats, "(missing)"])
    by_cat = by_cat[(by_cat["sales_lines"] + by_cat["return_lines"]) > 0]
    discount = data.lines["discount"].to_numpy(dtype=np.float64)
    labels = band_labels(edges)
    by_band = _rates(discount_band(discount, edges), len(labels), data)
    by_band.insert(0, "discount_band", labels)
    gross = float(data.revenue[data.sale].sum())
    return {
        "definition": "return_rate = returned units / sold units; return_line_share = return lines / sales lines",
        **{column: overall[column].iloc[0] for column in overall.columns},
        "returned_value_share": share(float(-data.revenue[data.returned].sum()), gross),
        "discount_correlation": _pearson(discount, data.returned.astype(np.float64)),
        "note": None if data.returned.any() else "the data has no return lines: every rate is 0",
        "by_category": by_cat.sort_values("return_rate", ascending=False, ignore_index=True),
        "by_discount_band": by_band[(by_band["sales_lines"] + by_band["return_lines"]) > 0].reset_index(drop=True),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
