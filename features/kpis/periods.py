"""Revenue by period (month, week or day) and the best period: the first question of any sales analysis.

Periods are calendar days, Monday-Sunday weeks or calendar months, started as `features.series`
starts them (one definition of a period for the KPIs and the forecaster). Per period:
- revenue = sales revenue after discount (`contract.line_revenue` of sales lines), as in `summary`
- returned_value = -revenue of the return lines dated in the period; net_revenue = revenue - returned_value
- orders = distinct orders with a sales line in the period; units = units sold; customers = distinct buyers
Every period from the first to the last one of the data is listed: a period without sales is 0, not a gap.
An edge period the data covers only partly (an extract ending on 9 December) is flagged `partial`, so
its low figure does not read as a collapse. The best period is the one with the most revenue (the
earliest on a tie).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.counting import distinct_count
from features.kpis.base import KpiUnavailable, Period, Prepared, prepare
from features.series import Freq, period_start

#: the `features.series` frequency of each period name
FREQ: dict[str, Freq] = {"month": "M", "week": "W", "day": "D"}


def _bounds(starts: np.ndarray, period: Period) -> np.ndarray:
    """The day after each period (days since 1970-01-01): where the next one starts."""
    if period == "day":
        return starts + 1
    if period == "week":
        return starts + 7
    months = starts.astype("datetime64[D]").astype("datetime64[M]") + 1
    return months.astype("datetime64[D]").astype(np.int64)


def _label(starts: np.ndarray, period: Period) -> list[str]:
    """"2011-11" for a month; the first day ("2011-11-07", a Monday) for a week or a day."""
    unit = "M" if period == "month" else "D"
    return [str(d) for d in starts.astype("datetime64[D]").astype(f"datetime64[{unit}]")]


def period_table(lines: pd.DataFrame | Prepared, period: Period = "month") -> pd.DataFrame:
    """One row per period from the data's first to its last: label, start, end, sales, returns, orders, flags."""
    if period not in FREQ:
        raise ValueError(f"unknown period {period!r}; use one of {sorted(FREQ)}")
    data = prepare(lines)
    line_start = period_start(data.lines["order_date"], FREQ[period]).to_numpy().astype("datetime64[D]").astype(np.int64)
    starts = _all_starts(int(line_start.min()), int(line_start.max()), period)
    code = np.searchsorted(starts, line_start)
    n, sale, ret = len(starts), data.sale, data.returned
    revenue = np.bincount(code[sale], weights=data.revenue[sale], minlength=n).astype(np.float64)
    returned = np.bincount(code[ret], weights=-data.revenue[ret], minlength=n).astype(np.float64)  # float even when empty
    customers = data.customer[0]
    buyer = sale & (customers >= 0)
    ends = _bounds(starts, period)
    partial = np.zeros(n, dtype=bool)
    partial[0] |= int(data.day.min()) > starts[0]
    partial[-1] |= data.last_day < ends[-1] - 1
    return pd.DataFrame({
        "period": _label(starts, period),
        "start": [str(d) for d in starts.astype("datetime64[D]")],
        "end": [str(d) for d in (ends - 1).astype("datetime64[D]")],
        "revenue": revenue,
        "returned_value": returned,
        "net_revenue": revenue - returned,
        "orders": distinct_count(code[sale], data.order[0][sale], n),
        "customers": distinct_count(code[buyer], customers[buyer], n),
        "units": np.bincount(code[sale], weights=data.quantity[sale], minlength=n).astype(np.int64),
        "partial": partial,
    })


def _all_starts(first: int, last: int, period: Period) -> np.ndarray:
    """Every period start from `first` to `last` (both period starts, in days since 1970-01-01)."""
    if period == "month":
        months = np.arange(np.datetime64(first, "D").astype("datetime64[M]"), np.datetime64(last, "D").astype("datetime64[M]") + 1)
        return months.astype("datetime64[D]").astype(np.int64)
    return np.arange(first, last + 1, 7 if period == "week" else 1, dtype=np.int64)


def revenue_by_period(lines: pd.DataFrame | Prepared, period: Period = "month") -> dict[str, Any]:
    """Revenue per period and the best period (module docstring); the table keeps every period."""
    data = prepare(lines)
    if not data.sale.any():
        raise KpiUnavailable("no sales lines: revenue by period needs sales")
    table = period_table(data, period)
    best = table.iloc[int(np.argmax(table["revenue"].to_numpy()))]
    return {
        "period": period,
        "definition": "revenue = sales revenue after discount; net_revenue = revenue - value of the returns dated in the period",
        "periods": len(table),
        "partial_periods": table.loc[table["partial"], "period"].tolist(),
        "best_period": {key: best[key] for key in ("period", "start", "end", "revenue", "orders", "partial")},
        "mean_revenue": float(table["revenue"].mean()),
        "by_period": table,
    }
