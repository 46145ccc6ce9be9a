"""Sales KPIs on Spark: totals, order values, revenue by period, category and channel, engagement by channel.

The figures come from `SparkPrepared.tables` (one job for all of them); the pandas module's finishing
code (`features.kpis.sales` / `periods`) shapes them, so the two engines present them alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.kpis import KpiUnavailable
from features.kpis.periods import _all_starts, _bounds, _label as period_label
from features.kpis.sales import engagement_by_channel
from features.spark.kpis.prepared import MISSING, F, SparkPrepared, period_start

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Row

Frame = pd.DataFrame | None


def _n(value: Any) -> Any:
    return 0 if value is None else value


def sales_summary(data: SparkPrepared) -> dict[str, Any]:
    s = data.stats
    gross, returned = float(s["gross"]), float(s["returned"])
    return {
        "lines": s["lines"], "sales_lines": s["sales_lines"], "return_lines": s["return_lines"], "orders": s["orders"],
        "customers": s["customers"], "lines_without_customer": s["lines_without_customer"], "products": s["products"],
        "gross_revenue": gross, "returned_value": returned, "net_revenue": gross - returned,
        "units_sold": int(s["sold"]), "units_returned": int(s["back"]),
        "first_date": str(np.datetime64(int(s["first_day"]), "D")), "reference_date": data.reference_date,
    }


def order_values(data: SparkPrepared) -> dict[str, Any]:
    if data.stats["sales_lines"] == 0:
        raise KpiUnavailable("no sales lines")
    row = data.tables["orders"][0]
    return {"orders": int(row["n_orders"]), "average_order_value": float(row["aov"]), "median_order_value": float(row["median"]),
            "lines_per_order": float(row["per_order"]), "units_per_order": float(row["units_per_order"])}


def _by_group(data: SparkPrepared, column: str) -> tuple[pd.DataFrame, int]:
    """`features.kpis.sales._by_group` from the per-value sums: sales lines only; null values counted apart."""
    rows = data.tables[column]
    missing = sum(int(r["sales_lines"]) for r in rows if r["key"] == MISSING)
    rows = sorted((r for r in rows if r["key"] != MISSING and r["sales_lines"] > 0), key=lambda r: r["key"])
    revenue = np.array([_n(r["gross"]) for r in rows], dtype=np.float64)
    orders = np.array([r["orders"] for r in rows], dtype=np.int64)
    n = len(rows)
    table = pd.DataFrame({
        column: np.array([r["key"] for r in rows], dtype=object),
        "revenue": revenue,
        "revenue_share": revenue / revenue.sum() if revenue.sum() else np.nan,
        "orders": orders,
        "customers": np.array([r["customers"] for r in rows], dtype=np.int64),
        "units": np.array([_n(r["sold"]) for r in rows], dtype=np.int64),
        "lines": np.array([r["sales_lines"] for r in rows], dtype=np.int64),
        "average_order_value": np.divide(revenue, orders, out=np.full(n, np.nan), where=orders > 0),
    })
    return table.sort_values(["revenue", column], ascending=[False, True], ignore_index=True), missing


def category_revenue(data: SparkPrepared, top_n: int = 10) -> dict[str, Any]:
    table, missing = _by_group(data, "category")
    if table.empty or set(table["category"]) == {"all"}:
        raise KpiUnavailable("the data has no categories (every line is 'all')")
    return {"categories": len(table), "lines_without_category": missing,
            "top_categories": table["category"].head(top_n).tolist(), "by_category": table}


def channel_performance(data: SparkPrepared) -> dict[str, Any]:
    table, missing = _by_group(data, "channel")
    if table.empty:
        raise KpiUnavailable("no sales line has a channel")
    return {"channels": len(table), "sales_lines_without_channel": missing, "by_channel": table}


def engagement(data: SparkPrepared, customers: Frame) -> dict[str, Any]:
    """The customers table's part is the pandas function's; revenue and orders per customer come from Spark."""
    out = engagement_by_channel(customers, None)
    if data.lines_without_customer < data.stats["lines"] and data.stats["sales_lines"] > 0:
        f = F()
        assert customers is not None
        score = pd.to_numeric(customers["engagement_score"], errors="coerce")
        usable = customers["channel"].notna() & score.notna()
        frame = pd.DataFrame({"customer_id": customers["customer_id"].astype("string").astype(object),
                              "channel": customers["channel"].astype("string").astype(object)})[usable]
        spark = data.lines.sparkSession
        side = spark.createDataFrame(frame.where(frame.notna(), None), "customer_id string, channel string")
        joined = side.join(data.customer_table.select("customer_id", "orders", "revenue"), "customer_id", "left")
        per = {r["channel"]: r for r in joined.groupBy("channel").agg(
            f.avg(f.coalesce(f.col("orders"), f.lit(0))).alias("opc"),
            f.avg(f.coalesce(f.col("revenue"), f.lit(0.0))).alias("rpc")).collect()}
        table = out["by_channel"]
        table["orders_per_customer"] = [float(per[c]["opc"]) for c in table["channel"]]
        table["revenue_per_customer"] = [float(per[c]["rpc"]) for c in table["channel"]]
    return out


def _period_rows(data: SparkPrepared, period: str) -> list[Row]:
    if period == data.period:
        return data.tables["period"]
    return data._sums(period_start(period), "period")  # another period than the prepared one: one more job


def revenue_by_period(data: SparkPrepared, period: str = "month") -> dict[str, Any]:
    """`features.kpis.periods.revenue_by_period`: every period from the first to the last, partial ones flagged."""
    if data.stats["sales_lines"] == 0:
        raise KpiUnavailable("no sales lines: revenue by period needs sales")
    got = {int(r["key"]): r for r in _period_rows(data, period)}
    starts = _all_starts(min(got), max(got), period)  # type: ignore[arg-type]
    pick = lambda key: np.array([_n(got[s][key]) if s in got else 0 for s in starts])  # noqa: E731
    revenue, returned = pick("gross").astype(np.float64), pick("returned").astype(np.float64)
    ends = _bounds(starts, period)  # type: ignore[arg-type]
    partial = np.zeros(len(starts), dtype=bool)
    partial[0] |= int(data.stats["first_day"]) > starts[0]
    partial[-1] |= data.last_day < ends[-1] - 1
    table = pd.DataFrame({
        "period": period_label(starts, period),  # type: ignore[arg-type]
        "start": [str(d) for d in starts.astype("datetime64[D]")],
        "end": [str(d) for d in (ends - 1).astype("datetime64[D]")],
        "revenue": revenue, "returned_value": returned, "net_revenue": revenue - returned,
        "orders": pick("orders").astype(np.int64), "customers": pick("customers").astype(np.int64),
        "units": pick("sold").astype(np.int64), "partial": partial,
    })
    best = table.iloc[int(np.argmax(table["revenue"].to_numpy()))]
    return {
        "period": period,
        "definition": "revenue = sales revenue after discount; net_revenue = revenue - value of the returns dated in the period",
        "periods": len(table), "partial_periods": table.loc[table["partial"], "period"].tolist(),
        "best_period": {key: best[key] for key in ("period", "start", "end", "revenue", "orders", "partial")},
        "mean_revenue": float(table["revenue"].mean()), "by_period": table,
    }
