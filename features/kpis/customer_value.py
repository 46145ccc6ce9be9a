"""Customer-level value KPIs: churn, customer lifetime value, high-value customers, orders per customer.

All of them use sales lines with a customer id; lines without one are excluded and counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.kpis.base import KpiUnavailable, Prepared, prepare, share


def _customers(data: Prepared) -> pd.DataFrame:
    if data.lines_without_customer == len(data.lines):
        raise KpiUnavailable("no line has a customer id")
    return data.customer_sales


def churn(lines: pd.DataFrame | Prepared, churn_window_days: int = 90) -> dict[str, Any]:
    """Churn from inactivity: churned = no purchase in the `churn_window_days` days before the reference date.

    reference date = the last order date in the data (calendar days); a customer is churned when
    `reference_day - last_purchase_day > churn_window_days`.
    churn_rate = churned customers / customers with at least one purchase.
    """
    data = prepare(lines)
    table = _customers(data)
    churned = int((data.reference_day - table["last_day"].to_numpy() > churn_window_days).sum())
    return {
        "reference_date": data.reference_date,
        "churn_window_days": churn_window_days,
        "customers": len(table),
        "active_customers": len(table) - churned,
        "churned_customers": churned,
        "churn_rate": churned / len(table),
        "lines_without_customer": data.lines_without_customer,
    }


def customer_clv(lines: pd.DataFrame | Prepared, churn_window_days: int = 90, profit_margin: float = 1.0) -> pd.DataFrame:
    """CLV per customer: `revenue_i * profit_margin / churn_rate`, largest first.

    Same as `APV_i * PF_i * margin * expected lifetime` with APV_i = revenue_i / orders_i,
    PF_i = orders_i and lifetime = 1 / churn_rate (in observation spans). NaN when nobody churned
    (the expected lifetime is unbounded).
    """
    data = prepare(lines)
    table = _customers(data)[["customer_id", "orders", "revenue"]].copy()
    rate = churn(data, churn_window_days)["churn_rate"]
    table["clv"] = table["revenue"] * profit_margin / rate if rate > 0 else np.nan
    return table.sort_values(["revenue", "customer_id"], ascending=[False, True], ignore_index=True)


def clv(
    lines: pd.DataFrame | Prepared,
    churn_window_days: int = 90,
    high_value_share: float = 0.2,
    profit_margin: float = 1.0,
    top_n: int = 10,
) -> dict[str, Any]:
    """Customer lifetime value, textbook form, from sales lines with a customer id.

    - average purchase value APV = customer sales revenue / customer orders
    - purchase frequency PF = customer orders / customers (over the observed span)
    - churn rate = churned / customers (see `churn`); expected lifetime = 1 / churn rate, in spans
    - CLV (average) = APV * PF * profit_margin / churn rate = mean of per-customer CLV
      (`customer_clv`: revenue_i * margin / churn rate); None when no customer churned
    - high-value customers: the top `ceil(high_value_share * customers)` by CLV (= by revenue),
      ties broken by customer id; `revenue_share` = their revenue / all customers' revenue.
    """
    data = prepare(lines)
    table = customer_clv(data, churn_window_days, profit_margin)
    ch = churn(data, churn_window_days)
    orders, revenue, n = int(table["orders"].sum()), float(table["revenue"].sum()), len(table)
    apv, pf = revenue / orders, orders / n
    rate = ch["churn_rate"]
    top = table.head(max(1, math.ceil(high_value_share * n)))
    return {
        "customers": n,
        "lines_without_customer": data.lines_without_customer,
        "observation_days": int(data.last_day - data.day.min()) + 1,
        "average_purchase_value": apv,
        "purchase_frequency": pf,
        "churn_rate": rate,
        "churn_window_days": churn_window_days,
        "expected_lifetime": 1 / rate if rate > 0 else None,
        "profit_margin": profit_margin,
        "clv_mean": apv * pf * profit_margin / rate if rate > 0 else None,
        "clv_median": float(table["clv"].median()) if rate > 0 else None,
        "note": None if rate > 0 else "no customer churned: expected lifetime and CLV are unbounded",
        "high_value": {
            "share_of_customers": high_value_share,
            "customers": len(top),
            "revenue_share": share(float(top["revenue"].sum()), revenue),
            "clv_threshold": float(top["clv"].iloc[-1]) if rate > 0 else None,
            "revenue_threshold": float(top["revenue"].iloc[-1]),
        },
        "top_customers": table.head(top_n),
    }


def orders_per_customer(lines: pd.DataFrame | Prepared) -> dict[str, Any]:
    """Orders per customer = distinct orders with a sales line and a customer id / customers; with its spread."""
    data = prepare(lines)
    table = _customers(data)
    orders = table["orders"].to_numpy()
    return {
        "customers": len(table),
        "orders": int(orders.sum()),
        "orders_per_customer": float(orders.mean()),
        "median_orders": float(np.median(orders)),
        "one_time_customers": int((orders == 1).sum()),
        "repeat_customer_share": float((orders > 1).mean()),
        "revenue_per_customer": float(table["revenue"].mean()),
        "lines_without_customer": data.lines_without_customer,
    }
