"""KPI calculators: pure, vectorised functions of a validated `OrderLines` frame (plus optional side tables).

Each calculator is importable on its own (its docstring states its formula). `KPIS` names them
for the CLI and the service (`/kpis/{name}`): every entry is called as
`KPIS[name](lines, customers=None, inventory=None, options=None)` and returns a JSON-ready dict,
raising `KpiUnavailable` when the data lacks its inputs. `kpi_report` runs them all on one prepared
view of the lines and shows a missing input as `{"status": "unavailable", "reason": ...}`.

Names: summary, revenue_by_period, order_value, orders_per_customer, churn, clv, categories, channels,
engagement (needs the customers table), cohort_retention, rfm, returns, stockout_risk (needs the
inventory table). Options (`KpiOptions`): churn_window_days, high_value_share, profit_margin,
demand_window_days, revenue_period (month, week or day), top_n, discount_bands.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import pandas as pd

from features.jsonsafe import json_safe
from features.kpis.base import KpiOptions, KpiUnavailable, Prepared, prepare
from features.kpis.cohorts import cohort_retention
from features.kpis.customer_value import churn, clv, customer_clv, orders_per_customer
from features.kpis.periods import period_table, revenue_by_period
from features.kpis.returns import return_rates
from features.kpis.rfm import rfm, rfm_table
from features.kpis.sales import category_revenue, channel_performance, engagement_by_channel, order_values, sales_summary
from features.kpis.stock import stock_cover, stockout_risk

__all__ = [
    "KPIS", "KpiOptions", "KpiUnavailable", "Prepared", "churn", "clv", "cohort_retention", "customer_clv",
    "category_revenue", "channel_performance", "engagement_by_channel", "headline", "kpi_report", "order_values",
    "orders_per_customer", "period_table", "prepare", "return_rates", "revenue_by_period", "rfm", "rfm_table",
    "run_kpi", "sales_summary", "json_safe", "stock_cover", "stockout_risk",
]

Frame = pd.DataFrame | None
KpiFn = Callable[..., dict[str, Any]]
KPIS: dict[str, KpiFn] = {}


def _register(name: str) -> Callable[[Callable[[Prepared, Frame, Frame, KpiOptions], dict[str, Any]]], KpiFn]:
    """Wrap an adapter (prepared lines, customers, inventory, options) into the uniform JSON-returning entry."""

    def decorate(adapter: Callable[[Prepared, Frame, Frame, KpiOptions], dict[str, Any]]) -> KpiFn:
        @wraps(adapter)
        def run(lines: pd.DataFrame | Prepared, customers: Frame = None, inventory: Frame = None,
                options: KpiOptions | dict[str, Any] | None = None) -> dict[str, Any]:
            return json_safe(adapter(prepare(lines), customers, inventory, KpiOptions.parse(options)))

        KPIS[name] = run
        return run

    return decorate


@_register("summary")
def _summary(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return sales_summary(data)


@_register("revenue_by_period")
def _revenue_by_period(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return revenue_by_period(data, o.revenue_period)


@_register("order_value")
def _order_value(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return order_values(data)


@_register("orders_per_customer")
def _orders_per_customer(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return orders_per_customer(data)


@_register("churn")
def _churn(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return churn(data, o.churn_window_days)


@_register("clv")
def _clv(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return clv(data, o.churn_window_days, o.high_value_share, o.profit_margin, o.top_n)


@_register("categories")
def _categories(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return category_revenue(data, o.top_n)


@_register("channels")
def _channels(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return channel_performance(data)


@_register("engagement")
def _engagement(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return engagement_by_channel(customers, data)


@_register("cohort_retention")
def _cohorts(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return cohort_retention(data, customers)


@_register("rfm")
def _rfm(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return rfm(data)


@_register("returns")
def _returns(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return return_rates(data, o.discount_bands)


@_register("stockout_risk")
def _stockout(data: Prepared, customers: Frame, inventory: Frame, o: KpiOptions) -> dict[str, Any]:
    return stockout_risk(data, inventory, o.demand_window_days)


def run_kpi(name: str, lines: pd.DataFrame | Prepared, customers: Frame = None, inventory: Frame = None,
            options: KpiOptions | dict[str, Any] | None = None) -> dict[str, Any]:
    """One KPI by name, JSON-ready; a missing input gives the "unavailable" entry instead of raising."""
    if name not in KPIS:
        raise KeyError(f"unknown KPI {name!r}; known: {sorted(KPIS)}")
    try:
        return KPIS[name](lines, customers, inventory, options)
    except KpiUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}


def kpi_report(lines: pd.DataFrame, customers: Frame = None, inventory: Frame = None,
               options: KpiOptions | dict[str, Any] | None = None) -> dict[str, Any]:
    """Every KPI in `KPIS` order, JSON-serialisable; unavailable ones carry their reason, the others still run."""
    opts = KpiOptions.parse(options)
    data = prepare(lines)
    return {name: run_kpi(name, data, customers, inventory, opts) for name in KPIS}


HEADLINE = {
    "lines": ("summary", "lines"),
    "orders": ("summary", "orders"),
    "customers": ("summary", "customers"),
    "gross_revenue": ("summary", "gross_revenue"),
    "net_revenue": ("summary", "net_revenue"),
    "best_period_revenue": ("revenue_by_period", "best_period", "revenue"),
    "average_order_value": ("order_value", "average_order_value"),
    "orders_per_customer": ("orders_per_customer", "orders_per_customer"),
    "churn_rate": ("churn", "churn_rate"),
    "clv_mean": ("clv", "clv_mean"),
    "high_value_revenue_share": ("clv", "high_value", "revenue_share"),
    "return_rate": ("returns", "return_rate"),
    "return_discount_correlation": ("returns", "discount_correlation"),
    "products_at_risk": ("stockout_risk", "items_at_risk"),
}


def headline(report: dict[str, Any]) -> dict[str, float | int]:
    """The report's key numbers, flat, for a terminal table and MLflow metrics; figures that are missing are left out."""
    out: dict[str, float | int] = {}
    for key, path in HEADLINE.items():
        value: Any = report
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
    return out
