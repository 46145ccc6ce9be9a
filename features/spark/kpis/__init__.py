"""Every KPI of `features.kpis`, computed on Spark order lines; the same JSON-ready dicts as the pandas entries.

Why this shape: each figure is aggregated on Spark down to a small table (per period, category, channel,
discount band, segment, cohort cell, the top customers), only that table is collected, and the pandas
module's own finishing code (sorting, shares, labels, the "unavailable" reasons) shapes it, so the two
engines cannot drift apart in presentation. Per-customer sums are added in the local engine's line order
(`_seq`), so ties between customers (RFM quintiles, top customers) fall exactly as they do in pandas.
The shared passes are few (`prepared`): a full report is about eight Spark jobs. The lines are never
collected; pyspark is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.jsonsafe import json_safe
from features.kpis import KPIS, KpiOptions, KpiUnavailable
from features.spark.kpis.cohorts import cohort_retention
from features.spark.kpis.customers import churn, clv, orders_per_customer, rfm
from features.spark.kpis.prepared import SparkPrepared
from features.spark.kpis.returns import return_rates
from features.spark.kpis.sales import (category_revenue, channel_performance, engagement, order_values, revenue_by_period,
                                       sales_summary)
from features.spark.kpis.stock import stockout_risk

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["SPARK_KPIS", "SparkPrepared", "kpi_report_spark", "prepare_spark", "run_kpi_spark"]

Frame = pd.DataFrame | None
Adapter = Callable[[SparkPrepared, Frame, Frame, KpiOptions], dict[str, Any]]
SPARK_KPIS: dict[str, Adapter] = {
    "summary": lambda d, c, i, o: sales_summary(d),
    "revenue_by_period": lambda d, c, i, o: revenue_by_period(d, o.revenue_period),
    "order_value": lambda d, c, i, o: order_values(d),
    "orders_per_customer": lambda d, c, i, o: orders_per_customer(d),
    "churn": lambda d, c, i, o: churn(d, o.churn_window_days),
    "clv": lambda d, c, i, o: clv(d, o.churn_window_days, o.high_value_share, o.profit_margin, o.top_n),
    "categories": lambda d, c, i, o: category_revenue(d, o.top_n),
    "channels": lambda d, c, i, o: channel_performance(d),
    "engagement": lambda d, c, i, o: engagement(d, c),
    "cohort_retention": lambda d, c, i, o: cohort_retention(d, c),
    "rfm": lambda d, c, i, o: rfm(d),
    "returns": lambda d, c, i, o: return_rates(d, o.discount_bands),
    "stockout_risk": lambda d, c, i, o: stockout_risk(d, i, o.demand_window_days),
}
assert list(SPARK_KPIS) == list(KPIS), "the Spark engine computes every KPI of features.kpis, in its order"


def prepare_spark(lines: DataFrame, options: KpiOptions | dict[str, Any] | None = None) -> SparkPrepared:
    """The prepared view whose shared passes are shaped by `options` (period, discount bands, churn window)."""
    opts = KpiOptions.parse(options)
    return SparkPrepared(lines, opts.revenue_period, opts.discount_bands, opts.churn_window_days)


def run_kpi_spark(name: str, data: SparkPrepared, customers: Frame = None, inventory: Frame = None,
                  options: KpiOptions | dict[str, Any] | None = None) -> dict[str, Any]:
    """One KPI by name on Spark, JSON-ready; a missing input gives the "unavailable" entry instead of raising."""
    if name not in SPARK_KPIS:
        raise KeyError(f"unknown KPI {name!r}; known: {sorted(SPARK_KPIS)}")
    try:
        return json_safe(SPARK_KPIS[name](data, customers, inventory, KpiOptions.parse(options)))
    except KpiUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}


def kpi_report_spark(lines: DataFrame, customers: Frame = None, inventory: Frame = None,
                     options: KpiOptions | dict[str, Any] | None = None) -> dict[str, Any]:
    """`features.kpis.kpi_report` on Spark lines: every KPI in `KPIS` order, unavailable ones with their reason."""
    opts = KpiOptions.parse(options)
    data = prepare_spark(lines, opts)  # no lines at all: KpiUnavailable, as `kpi_report` raises it
    try:
        return {name: run_kpi_spark(name, data, customers, inventory, opts) for name in SPARK_KPIS}
    finally:
        data.release()
